#!/usr/bin/env bash
# scripts/pi-check.sh: build midge for the Raspberry Pi Zero W (armv6) and the Pi 4 (aarch64)
# without Docker, on a Debian 12 (bookworm) x86_64 machine as root, and run the whole test suite
# under qemu-user on each board's CPU.
#
#   scripts/pi-check.sh [--boards "pizero pi4"] [--no-tests] [--no-install] [--libc musl|gnu]
#                       [--target-dir DIR] [-h]
#
# Output (stable paths, stripped, static), and the same for midge_passwd (not midge_bench):
#   target/pi/midge-armv6     Pi Zero / Zero W / Pi 1 (ARM1176JZF-S); runs on any 32- or 64-bit Pi OS
#   target/pi/midge-aarch64   Pi 3 / 4 / 5 with a 64-bit OS
#
# For each board it: builds the release binaries; checks they are static; for armv6 checks that
# `readelf -A` says `Tag_CPU_arch: v6...` and that the disassembly has no armv7 instruction, and
# that the stripped midge is at most 2 MiB with TLS (the default build) and, built again without
# it (`--no-default-features`, target/pi/midge-armv6-notls), at most 1 MiB; prints the sizes;
# runs `midge -h` (and
# `midge_passwd -c -b FILE USER PASSWORD`) under qemu; then runs
# `cargo test --all-targets` (unit, integration and interop tests) with the test binaries under
# qemu and XCHECK_EXEC_WRAPPER exported, so the integration tests start the ARM broker under qemu.
# Exits non-zero if any of this fails.
#
# How (see also ../shared/tools/README.md):
#   * `cross` needs Docker (scripts/cross-build.sh); rustup cannot add targets here. So this uses
#     Debian's own Rust (rustc-web/cargo-web, /usr/bin/cargo with RUSTC=/usr/bin/rustc; the rustup
#     cargo on PATH is left alone) and compiles std for the target from Debian's rust-web-src with
#     `-Z build-std` (RUSTC_BOOTSTRAP=1), linking with Debian's cross gcc.
#   * Pi Zero W: arm-unknown-linux-musleabi (armv6, soft-float calling convention) with
#     -C target-cpu=arm1176jzf-s (VFPv2 instructions), static musl from Debian's musl-dev:armel
#     (armv5te code). Not ...-musleabihf: Debian's hard-float (armhf) libraries are armv7 and
#     would put armv7 code into the binary. A static binary needs no libc on the Pi, and the
#     calling convention is internal to it, so it runs on 32-bit (armhf) and 64-bit Pi OS alike.
#   * Pi 4: aarch64-unknown-linux-musl, generic ARMv8.0. Deliberately NOT
#     -C target-cpu=cortex-a72: that enables the ARMv8 crypto extensions, which the Pi 4's BCM2711
#     lacks, and qemu's cortex-a72 model would not notice.
#   * --libc gnu builds static glibc binaries instead (arm-unknown-linux-gnueabi,
#     aarch64-unknown-linux-gnu): they pass the same tests but are about twice the size
#     (armv6: 1,199,444 bytes against 555,584 for musl, measured on the same source).
#   * TLS (the `tls` feature) brings ring, which compiles C and assembly with the `cc` crate: it
#     gets the same cross gcc (CC_<triple>, AR_<triple>) and, for armv6,
#     CFLAGS_<triple>=-mcpu=arm1176jzf-s -mfloat-abi=softfp -marm (the Pi Zero's core and VFPv2,
#     the soft-float calling convention of ...-musleabi). ring also assembles NEON and ARMv8
#     crypto variants that it picks at run time only when the CPU reports them (AT_HWCAP); on a
#     Pi Zero it never does, so the armv7 check below skips ring's functions that are only
#     reached that way (names ending in _neon / containing _hw_ or bsaes, vpaes, ...).
#   * qemu: `qemu-arm -cpu arm1176` is the Pi Zero's exact CPU, so an armv7 instruction dies with
#     SIGILL; `qemu-aarch64 -cpu cortex-a72` is the Pi 4's.
#   * The tests are built with opt-level 1 (debug assertions and overflow checks stay on): the
#     hashing and randomized tests run ~20x faster under qemu than unoptimized. They run one at a
#     time (RUST_TEST_THREADS=1, as cross's images do): Debian's qemu-user 7.2 can deadlock in a
#     child forked while other guest threads run (seen here: a test stuck for 18 minutes).
#     `timeout -k` bounds every run, so a hang fails the check instead of eating CI's time.
#
# Caching: Debian packages stay installed (a run with nothing missing does no apt-get at all);
# the musl unwinder shims live in /var/cache/midge-pi; cargo's target dir is target/pi (or
# --target-dir / $PI_TARGET_DIR: point it outside the work tree, e.g. /var/cache/midge-pi/target,
# to keep std, the dependencies and the test builds between fresh clones such as CI's; the
# binaries still land in target/pi). Knobs as environment variables too: PI_BOARDS, PI_NO_TESTS=1,
# PI_SKIP_INSTALL=1, PI_LIBC, PI_TARGET_DIR, PI_TIMEOUT (seconds per cargo test, default 1200),
# PI_TEST_OPT_LEVEL (default 1), PI_TEST_THREADS (default 1).
set -euo pipefail

die() { echo "pi-check: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*"; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BOARDS=${PI_BOARDS:-pizero pi4}
LIBC=${PI_LIBC:-musl}
NO_TESTS=${PI_NO_TESTS:-0}
SKIP_INSTALL=${PI_SKIP_INSTALL:-0}
TARGET_DIR=${PI_TARGET_DIR:-$ROOT/target/pi} # cargo's target dir (the build cache)
OUT_DIR=$ROOT/target/pi                        # where the stripped binaries go, always
TIMEOUT=${PI_TIMEOUT:-1200}
TEST_OPT=${PI_TEST_OPT_LEVEL:-1}
TEST_THREADS=${PI_TEST_THREADS:-1}
SHIM_DIR=/var/cache/midge-pi
MAX_ARMV6_BYTES=2097152       # 2 MiB: the size budget of the stripped armv6 binary (with TLS)
MAX_ARMV6_NOTLS_BYTES=1048576 # 1 MiB: the same built without TLS, for the smallest boards
# std for the release binaries without its backtrace symbolizer (gimli, addr2line, miniz_oxide,
# rustc-demangle: about 100 kB on armv6). The release profile aborts on panic, and a panic
# still prints its message and location; only RUST_BACKTRACE's symbol names are gone. The
# test builds keep cargo's default std features.
RELEASE_STD=panic-unwind

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --boards) [[ $# -ge 2 ]] || die "--boards needs a value"; BOARDS=$2; shift 2 ;;
    --boards=*) BOARDS=${1#*=}; shift ;;
    --no-tests) NO_TESTS=1; shift ;;
    --no-install) SKIP_INSTALL=1; shift ;;
    --libc) [[ $# -ge 2 ]] || die "--libc needs a value"; LIBC=$2; shift 2 ;;
    --libc=*) LIBC=${1#*=}; shift ;;
    --target-dir) [[ $# -ge 2 ]] || die "--target-dir needs a value"; TARGET_DIR=$2; shift 2 ;;
    --target-dir=*) TARGET_DIR=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
case $LIBC in musl|gnu) ;; *) die "--libc must be musl or gnu" ;; esac
for b in $BOARDS; do
  case $b in pizero|pi4) ;; *) die "unknown board '$b' (pizero, pi4)" ;; esac
done
[[ -n ${BOARDS// /} ]] || die "no boards given"
mkdir -p "$TARGET_DIR" "$OUT_DIR"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd)

START=$(date +%s)
elapsed() { echo $(( $(date +%s) - $1 )); }

# ------------------------------------------------------------------------------ packages
apt_get() {
  # Wait for another apt/dpkg (up to 10 min) rather than fail on its lock.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

installed() { # PKG[:ARCH]...: true if every one is installed
  local p
  for p in "$@"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || return 1
  done
}

PKGS=(
  rustc-web cargo-web rust-web-src              # Debian's Rust (1.96) and std's source
  gcc-arm-linux-gnueabi libc6-dev-armel-cross   # armel cross gcc (linker, libgcc_eh)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross   # arm64 cross gcc
  qemu-user                                     # qemu-arm, qemu-aarch64 (no binfmt_misc)
  binutils file ca-certificates
)
# musl-dev:<arch> ships libc.a, the crt files and an arm-linux-musleabi-gcc /
# aarch64-linux-musl-gcc wrapper around the gnu cross gcc (multiarch: armel and arm64 only;
# never armhf, which is armv7 code and whose index has been seen half-synced).
MUSL_PKGS=(musl-dev:armel musl-dev:arm64)
# What the interop tests drive the broker with, as in scripts/test.sh: mosquitto_pub/_sub, the
# mosquitto package for mosquitto_passwd and the reference broker, openssl for the TLS tests.
TEST_PKGS=(mosquitto-clients mosquitto openssl)

install_packages() {
  local want=("${PKGS[@]}") missing=() p
  [[ $LIBC == musl ]] && want+=("${MUSL_PKGS[@]}")
  [[ $NO_TESTS == 1 ]] || want+=("${TEST_PKGS[@]}")
  for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    [[ $(id -u) -eq 0 ]] || die "run as root to install ${missing[*]} (or install them and use --no-install)"
    log "installing Debian packages: ${missing[*]}"
    if [[ $LIBC == musl ]]; then
      local foreign; foreign=$(dpkg --print-foreign-architectures)
      grep -qx armel <<<"$foreign" || dpkg --add-architecture armel
      grep -qx arm64 <<<"$foreign" || dpkg --add-architecture arm64
    fi
    local i
    for i in 1 2 3; do
      apt_get update -qq && break
      [[ $i -lt 3 ]] || die "apt-get update failed"
      echo "apt-get update failed (try $i), again in 10 s"; sleep 10
    done
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [[ $NO_TESTS != 1 ]] &&
     ! python3 -c 'import paho.mqtt, sys; sys.exit(0 if paho.mqtt.__version__.startswith("2.") else 1)' 2>/dev/null; then
    log "installing paho-mqtt 2 (interop tests)"
    python3 -m pip install -q 'paho-mqtt>=2,<3' 2>/dev/null ||
      python3 -m pip install -q --break-system-packages 'paho-mqtt>=2,<3'
  fi
  # MQTT.js under node for the WebSocket client tests, as scripts/test.sh installs it (the
  # browser test does not run under qemu, so Chromium is not needed here).
  if [[ $NO_TESTS != 1 ]]; then
    if ! command -v node >/dev/null; then
      log "installing nodejs and npm (WebSocket client tests)"
      apt_get update -qq && apt_get install -y -qq nodejs npm >/dev/null
    fi
    if [[ ! -d $ROOT/tests/js/node_modules/mqtt ]]; then
      log "installing MQTT.js (tests/js)"
      (cd "$ROOT/tests/js" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  fi
  if [[ $LIBC == musl ]]; then build_musl_shims; fi
}

# musl + build-std: std's `unwind` crate links a static -lunwind on musl, which normally comes
# from rustup's self-contained files. Supplied here, once per machine:
#  * armel: gcc's libgcc_eh.a as it is (ARM EHABI unwinder, nothing glibc-only in it).
#  * arm64: gcc's libgcc_eh.a needs glibc's _dl_find_object, so LLVM's libunwind.a from
#    libunwind-14-dev:arm64 (extracted, not installed), plus a __fprintf_chk (it was built with
#    _FORTIFY_SOURCE against glibc).
build_musl_shims() {
  [[ -s $SHIM_DIR/armel/libunwind.a && -s $SHIM_DIR/arm64/libunwind.a ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "run as root once to build the unwinder shims in $SHIM_DIR"
  log "building the musl unwinder shims in $SHIM_DIR"
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$SHIM_DIR/armel" "$SHIM_DIR/arm64"
  cp "$(arm-linux-gnueabi-gcc -print-file-name=libgcc_eh.a)" "$SHIM_DIR/armel/libunwind.a"
  (cd "$tmp" && apt-get -o APT::Sandbox::User=root download libunwind-14-dev:arm64 >/dev/null)
  dpkg-deb -x "$tmp"/libunwind-14-dev_*_arm64.deb "$tmp/x"
  cp "$tmp/x/usr/lib/llvm-14/lib/libunwind.a" "$tmp/libunwind.a"
  chmod u+w "$tmp/libunwind.a"
  cat >"$tmp/fortify.c" <<'EOF'
#include <stdarg.h>
#include <stdio.h>
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
    (void)flag; va_list ap; va_start(ap, fmt);
    int r = vfprintf(f, fmt, ap); va_end(ap); return r;
}
EOF
  aarch64-linux-musl-gcc -O2 -c "$tmp/fortify.c" -o "$tmp/fortify.o"
  aarch64-linux-gnu-ar rs "$tmp/libunwind.a" "$tmp/fortify.o" 2>/dev/null
  mv "$tmp/libunwind.a" "$SHIM_DIR/arm64/libunwind.a"
  rm -rf "$tmp"
}

t0=$(date +%s)
if [[ $SKIP_INSTALL == 1 ]]; then
  echo "skipping package installation (--no-install)"
else
  install_packages
fi
INSTALL_S=$(elapsed "$t0")

for tool in /usr/bin/cargo /usr/bin/rustc qemu-arm qemu-aarch64 readelf; do
  command -v "$tool" >/dev/null || die "$tool missing (run without --no-install, as root)"
done
# Debian's compiler and its std source must be the same release.
RUSTC_V=$(/usr/bin/rustc --version | awk '{print $2}')
SRC_V=$(dpkg-query -W -f='${Version}' rust-web-src 2>/dev/null | sed 's/+.*//')
[[ $RUSTC_V == "$SRC_V" ]] || die "rustc-web $RUSTC_V and rust-web-src ${SRC_V:-(none)} differ"
echo "compiler: $(/usr/bin/rustc --version); cargo: $(/usr/bin/cargo --version)"
echo "target dir: $TARGET_DIR; boards: $BOARDS; libc: $LIBC"

# ------------------------------------------------------------------------------ boards
# Sets TRIPLE, LINKER, RFLAGS, QEMU, STRIP, ARCH (the suffix of the binaries) for a board, and
# XCC, XAR, XCFLAGS: the C compiler, archiver and flags for C code in dependencies (ring).
board_config() {
  case $1/$LIBC in
    pizero/musl)
      TRIPLE=arm-unknown-linux-musleabi LINKER=arm-linux-musleabi-gcc
      RFLAGS="-C target-cpu=arm1176jzf-s -C target-feature=+crt-static -C link-self-contained=no -L $SHIM_DIR/armel" ;;
    pizero/gnu)
      TRIPLE=arm-unknown-linux-gnueabi LINKER=arm-linux-gnueabi-gcc
      RFLAGS="-C target-cpu=arm1176jzf-s -C target-feature=+crt-static" ;;
    pi4/musl)
      TRIPLE=aarch64-unknown-linux-musl LINKER=aarch64-linux-musl-gcc
      RFLAGS="-C target-feature=+crt-static -C link-self-contained=no -L $SHIM_DIR/arm64" ;;
    pi4/gnu)
      TRIPLE=aarch64-unknown-linux-gnu LINKER=aarch64-linux-gnu-gcc
      RFLAGS="-C target-feature=+crt-static" ;;
  esac
  XCC=$LINKER
  case $1 in
    pizero) QEMU="qemu-arm -cpu arm1176" STRIP=arm-linux-gnueabi-strip ARCH=armv6
            XAR=arm-linux-gnueabi-ar XCFLAGS="-mcpu=arm1176jzf-s -mfloat-abi=softfp -marm" ;;
    pi4) QEMU="qemu-aarch64 -cpu cortex-a72" STRIP=aarch64-linux-gnu-strip ARCH=aarch64
         XAR=aarch64-linux-gnu-ar XCFLAGS="" ;;
  esac
}

# Debian's cargo for $TRIPLE, with its linker, flags and qemu runner. Flags from the caller's
# environment (RUSTFLAGS would override the per-target ones) are dropped.
xcargo() {
  local limit=$1 T=${TRIPLE^^} t=${TRIPLE//-/_}; shift
  T=${T//-/_}
  (
    cd "$ROOT"
    unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_DIR="$TARGET_DIR" \
      "CC_$t=$XCC" "AR_$t=$XAR" "CFLAGS_$t=$XCFLAGS" \
      "CARGO_TARGET_${T}_LINKER=$LINKER" \
      "CARGO_TARGET_${T}_RUSTFLAGS=$RFLAGS" \
      "CARGO_TARGET_${T}_RUSTDOCFLAGS=$RFLAGS" \
      "CARGO_TARGET_${T}_RUNNER=$QEMU" \
      XCHECK_EXEC_WRAPPER="$QEMU"
    # -k: a qemu process stuck after fork ignores SIGTERM.
    # XSTD_FEATURES: std's features for this build (cargo's default when unset).
    timeout -k 30 "$limit" /usr/bin/cargo "$@" --target "$TRIPLE" -Z build-std=std,panic_abort \
      ${XSTD_FEATURES:+-Z build-std-features=$XSTD_FEATURES}
  )
}

# Prints the armv7+ (or Thumb-2, or NEON/VFPv3) instructions in an unstripped ARM binary, with
# the function they are in; false if there are any. musl's __a_barrier_v7 and __a_cas_v7 are
# allowed: musl calls them only when the kernel says the CPU is armv7 or later (AT_PLATFORM).
armv7_instructions() {
  arm-linux-gnueabi-objdump -d --no-show-raw-insn "$1" | awk -F'\t' '
    # ring (TLS): its NEON code (entry points named ..._neon/_NEON, bsaes, vpaes, and their
    # static helpers _bsaes_*/_vpaes_*), called only when AT_HWCAP says the CPU has NEON. A
    # "._label" is a local label inside the function before it (x25519_NEON has several).
    function runtime_selected(f) {
      return (f ~ /^ring_core_[0-9_]+_/ && f ~ /(neon|NEON|bsaes|vpaes)/) || f ~ /^_(bsaes|vpaes)_/
    }
    /^[0-9a-f]+ <.*>:$/ {
      fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn)
      if (fn !~ /^\._/) ok = runtime_selected(fn)
      next
    }
    NF >= 2 {
      m = $2; sub(/ .*/, "", m)
      if (m ~ /\.w$/ ||
          m ~ /^(dmb|dsb|isb|movw|movt|ubfx|sbfx|bfi|bfc|rbit|sdiv|udiv|mls|pli|cbz|cbnz)(eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?$/ ||
          m ~ /^it[te]*$/ || m ~ /^v(ld|st)[1-4]/ || m ~ /^vdup/ ||
          m ~ /\.(i8|i16|i32|i64|s8|u8|s16|u16|s64|u64|p8|p16)$/ ||    # NEON data types
          $3 ~ /(^|[ ,{[])q([0-9]|1[0-5])([ ,}\]]|$)/ ||                # NEON q registers
          (m ~ /^v(mov|cvt)/ && $3 ~ /#/)) {                           # VFPv3 immediates
        if (fn != "__a_barrier_v7" && fn != "__a_cas_v7" && !ok) { print fn ": " $0; n++ }
      }
    }
    END { exit n > 0 }'
}

# Checks the merged build attributes of an armv6 binary ($1, called $2; $3 unstripped): v6/v6K/
# v6KZ (or older) only, VFPv2 at most. v6T2 has Thumb-2 and v7 is armv7: the ARM1176 has
# neither. ring's NEON assembly declares armv7-a and NEON, which the linker merges into the
# whole binary's attributes; with ring linked (its NEON symbols are there) v7/VFPv3/NEON
# attributes are accepted, and the disassembly check (every instruction outside the
# run-time-selected functions) is what decides.
armv6_attributes() {
  local arch fp ring=0 note=""
  arch=$(readelf -A "$1" | awk -F': *' '/Tag_CPU_arch:/ {print $2}')
  fp=$(readelf -A "$1" | awk -F': *' '/Tag_FP_arch:/ {print $2}')
  # (grep without -q: an early exit would SIGPIPE nm and fail the pipeline)
  if arm-linux-gnueabi-nm "$3" 2>/dev/null | grep ' ring_core_[0-9_]*_ChaCha20_ctr32_neon$' >/dev/null; then
    ring=1 note=" (from ring's NEON objects)"
  fi
  echo "  readelf -A: Tag_CPU_arch: ${arch:-(none)}, Tag_FP_arch: ${fp:-(none)}$note"
  case $arch in
    v6|v6K|v6KZ|v5*|v4*) ;;
    v7) [[ $ring == 1 ]] || fail "$board: $2: Tag_CPU_arch is 'v7', not armv6: it would die with SIGILL on a Pi Zero" ;;
    *) fail "$board: $2: Tag_CPU_arch is '${arch:-none}', not armv6: it would die with SIGILL on a Pi Zero" ;;
  esac
  case $fp in
    ''|VFPv1|VFPv2) ;;
    VFPv3*|VFPv4*) [[ $ring == 1 ]] || fail "$board: $2: Tag_FP_arch is '$fp': the ARM1176 has VFPv2 only" ;;
    *) fail "$board: $2: Tag_FP_arch is '$fp': the ARM1176 has VFPv2 only" ;;
  esac
}

# Which of the binaries a Pi needs the package has (cargo metadata lists its targets).
mapfile -t SHIP < <(cd "$ROOT" && RUSTC=/usr/bin/rustc /usr/bin/cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json, sys
names = {t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"]}
print("\n".join(n for n in ("midge", "midge_passwd") if n in names))')
[[ ${SHIP[0]:-} == midge ]] || die "the package has no midge binary"

FAIL=0
PASSED=0 FAILED=0 # tests, over both boards
SUMMARY=()
fail() { echo "FAILED: $*" >&2; SUMMARY+=("FAILED: $*"); FAIL=1; }

for board in $BOARDS; do
  board_config "$board"
  log "$board: release build for $TRIPLE ($RFLAGS)"
  t0=$(date +%s)
  json=$TARGET_DIR/$TRIPLE.build.json
  # The binaries that go onto a Pi (midge, and midge_passwd if the package has it; not
  # midge_bench), built unstripped so the disassembly below has its symbols; the copies in
  # target/pi are stripped.
  bin_args=()
  for b in "${SHIP[@]}"; do bin_args+=(--bin "$b"); done
  if ! CARGO_PROFILE_RELEASE_STRIP=false XSTD_FEATURES=$RELEASE_STD xcargo 3600 build --release "${bin_args[@]}" \
         --message-format=json-render-diagnostics >"$json"; then
    fail "$board: release build"
    continue
  fi
  build_s=$(elapsed "$t0")
  SUMMARY+=("$board: release build ${build_s}s")
  mapfile -t BINS < <(grep -o '"executable":"[^"]*"' "$json" | sed 's/^"executable":"//; s/"$//' | sort -u)
  [[ ${#BINS[@]} -gt 0 ]] || { fail "$board: the build made no binaries"; continue; }
  for bin in "${BINS[@]}"; do
    name=$(basename "$bin")
    out=$OUT_DIR/$name-$ARCH
    "$STRIP" --strip-all -o "$out.tmp" "$bin"
    mv "$out.tmp" "$out"
    size=$(stat -c %s "$out")
    info=$(file -b "$out")
    echo "$out: $size bytes ($(( (size + 1023) / 1024 )) KiB) stripped; $info"
    SUMMARY+=("$board $TRIPLE: $(basename "$out") $size bytes stripped")
    case $info in
      *statically\ linked*|*static-pie\ linked*) ;;
      *) fail "$board: $out is not statically linked" ;;
    esac
    if [[ $board == pizero ]]; then
      armv6_attributes "$out" "$name" "$bin"
      # The attributes are what the objects declare; also look at every instruction. (musl's
      # atomics.s declares Thumb-2, so readelf shows Tag_THUMB_ISA_use: Thumb-2; it has no Thumb
      # code, and its armv7 `dmb` variants are chosen at run time only on armv7+ CPUs.)
      if bad=$(armv7_instructions "$bin"); then
        echo "  disassembly: no armv7/Thumb-2/NEON instruction (but the run-time-selected ones: musl's __a_barrier_v7/__a_cas_v7, ring's NEON functions)"
      else
        head -n 20 <<<"$bad"
        fail "$board: $name: armv7-only instructions (first ones above)"
      fi
      if [[ $name == midge && $size -gt $MAX_ARMV6_BYTES ]]; then
        fail "$board: midge is $size bytes stripped, over the budget of $MAX_ARMV6_BYTES (2 MiB)"
      fi
    fi
  done
  if [[ $board == pizero ]]; then
    # The smallest boards' build: no TLS.
    log "$board: release build without TLS (--no-default-features)"
    if CARGO_PROFILE_RELEASE_STRIP=false XSTD_FEATURES=$RELEASE_STD xcargo 3600 build --release --bin midge --no-default-features \
         --message-format=json-render-diagnostics >"$json.notls"; then
      bin=$(grep -o '"executable":"[^"]*"' "$json.notls" | sed 's/^"executable":"//; s/"$//' | tail -n1)
      out=$OUT_DIR/midge-$ARCH-notls
      "$STRIP" --strip-all -o "$out.tmp" "$bin" && mv "$out.tmp" "$out"
      size=$(stat -c %s "$out")
      echo "$out: $size bytes ($(( (size + 1023) / 1024 )) KiB) stripped, without TLS"
      # Without ring nothing may declare more than armv6 + VFPv2.
      armv6_attributes "$out" midge-notls "$bin"
      if bad=$(armv7_instructions "$bin"); then
        echo "  disassembly: no armv7/Thumb-2/NEON instruction (but musl's run-time-selected ones)"
      else
        head -n 20 <<<"$bad"
        fail "$board: midge without TLS: armv7-only instructions (first ones above)"
      fi
      SUMMARY+=("$board $TRIPLE: $(basename "$out") $size bytes stripped (no TLS)")
      if [[ $size -gt $MAX_ARMV6_NOTLS_BYTES ]]; then
        fail "$board: midge without TLS is $size bytes stripped, over the budget of $MAX_ARMV6_NOTLS_BYTES (1 MiB)"
      fi
    else
      fail "$board: release build without TLS"
    fi
  fi

  # Smoke runs under qemu on the board's CPU.
  # shellcheck disable=SC2086 # QEMU is a command and its options
  if help=$(timeout -k 10 120 $QEMU "$OUT_DIR/midge-$ARCH" -h 2>&1) && grep -q "^Usage: midge" <<<"$help"; then
    echo "$QEMU midge-$ARCH -h: ok ($(head -n1 <<<"$help"))"
  else
    echo "$help"
    fail "$board: '$QEMU midge-$ARCH -h' did not print the usage"
  fi
  if [[ -f $OUT_DIR/midge_passwd-$ARCH ]]; then
    pw=$(mktemp -d)
    # shellcheck disable=SC2086
    if timeout -k 10 120 $QEMU "$OUT_DIR/midge_passwd-$ARCH" -c -b "$pw/passwd" alice secret &&
       grep -q '^alice:\$' "$pw/passwd"; then
      echo "$QEMU midge_passwd-$ARCH -c -b FILE alice secret: ok"
    else
      fail "$board: '$QEMU midge_passwd-$ARCH -c -b FILE alice secret' did not write a hash"
    fi
    rm -rf "$pw"
  fi

  if [[ $NO_TESTS != 1 ]]; then
    log "$board: cargo test --all-targets under $QEMU"
    t0=$(date +%s)
    tlog=$TARGET_DIR/$TRIPLE.test.log
    if CARGO_PROFILE_DEV_OPT_LEVEL=$TEST_OPT CARGO_PROFILE_TEST_OPT_LEVEL=$TEST_OPT \
       RUST_TEST_THREADS=$TEST_THREADS xcargo "$TIMEOUT" test --all-targets --no-fail-fast 2>&1 |
       tee "$tlog"; then res=passed; else res="FAILED (exit ${PIPESTATUS[0]})"; fi
    read -r p f < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$tlog" |
                    awk '{p += $1; f += $2} END {print p + 0, f + 0}')
    PASSED=$(( PASSED + p )) FAILED=$(( FAILED + f ))
    test_s=$(elapsed "$t0")
    echo "$board: cargo test --all-targets under $QEMU: $res (${test_s}s)"
    if [[ $res == passed ]]; then
      SUMMARY+=("$board: cargo test --all-targets under $QEMU: passed (${test_s}s)")
    else
      fail "$board: cargo test --all-targets under $QEMU: $res (${test_s}s)"
    fi
  fi
done

log "summary"
echo "packages: ${INSTALL_S}s"
printf '%s\n' "${SUMMARY[@]}"
echo "total: $(elapsed "$START")s"
if [[ $FAIL != 0 ]]; then echo "pi-check: FAILED"; else echo "pi-check: all good"; fi
# The tests run under qemu, all boards together, as the one closing line CI reads.
[[ $NO_TESTS == 1 ]] || echo "pi-check: $PASSED passed, $FAILED failed"
exit "$FAIL"
