#!/usr/bin/env bash
# scripts/cross-build.sh: build midge release binaries for the Raspberry Pi Zero W (armv6) and
# the Pi 4 (aarch64) with `cross` (https://github.com/cross-rs/cross), which runs the build in a
# Docker or Podman container. Settings: cross.toml.
#
#   scripts/cross-build.sh [--boards "pizero pi4"] [-h]
#
#   --boards LIST  which boards (default "pizero pi4")
#
# Output (static musl, stripped), and the same for midge_passwd:
#   target/cross/midge-armv6     from arm-unknown-linux-musleabihf, -C target-cpu=arm1176jzf-s
#   target/cross/midge-aarch64   from aarch64-unknown-linux-musl
#
# Fails if the armv6 binary's build attributes (`readelf -A`) do not say `Tag_CPU_arch: v6...`:
# some toolchains put armv7 code into "armv6" builds, which dies with SIGILL on a Pi Zero.
# Fails too if the stripped armv6 binary is over 2 MiB, or a binary is not static. A build with
# TLS (the default) declares v7 in its attributes: ring's NEON assembly, which it runs only on
# CPUs that report NEON; scripts/pi-check.sh checks every instruction of it instead.
#
# The tests under qemu are scripts/pi-check.sh's job (it needs no Docker, and CI runs it).
set -euo pipefail

die() { echo "cross-build: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*"; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BOARDS="pizero pi4"
MAX_ARMV6_BYTES=2097152 # 2 MiB

while [[ $# -gt 0 ]]; do
  case $1 in
    --boards) [[ $# -ge 2 ]] || die "--boards needs a value"; BOARDS=$2; shift 2 ;;
    --boards=*) BOARDS=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
for b in $BOARDS; do
  case $b in pizero|pi4) ;; *) die "unknown board '$b' (pizero, pi4)" ;; esac
done

# A container engine that answers (the docker client alone is not enough: it needs a daemon).
if [[ -z ${CROSS_CONTAINER_ENGINE:-} ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    CROSS_CONTAINER_ENGINE=docker
  elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
    CROSS_CONTAINER_ENGINE=podman
  else
    die "no working Docker or Podman here (\`docker info\` fails). Use scripts/pi-check.sh, which builds and tests without Docker."
  fi
fi
export CROSS_CONTAINER_ENGINE
if ! command -v cross >/dev/null; then
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
  log "installing cross (cargo install cross)"
  cargo install --locked cross
fi
command -v readelf >/dev/null || die "readelf not found (Debian/Ubuntu: apt-get install binutils)"

# cross reads Cross.toml unless told otherwise; ours is cross.toml.
export CROSS_CONFIG=$ROOT/cross.toml
# RUSTFLAGS would override the per-target flags in cross.toml (-C target-cpu=arm1176jzf-s).
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET
cd "$ROOT"
OUT_DIR=$ROOT/target/cross
mkdir -p "$OUT_DIR"

FAIL=0
SUMMARY=()
fail() { echo "FAILED: $*" >&2; SUMMARY+=("FAILED: $*"); FAIL=1; }

for board in $BOARDS; do
  case $board in
    pizero) TRIPLE=arm-unknown-linux-musleabihf ARCH=armv6 ;;
    pi4) TRIPLE=aarch64-unknown-linux-musl ARCH=aarch64 ;;
  esac
  log "$board: cross build --release --bins --target $TRIPLE ($CROSS_CONTAINER_ENGINE)"
  t0=$(date +%s)
  if ! cross build --release --bins --target "$TRIPLE"; then
    fail "$board: cross build"
    continue
  fi
  echo "build: $(( $(date +%s) - t0 ))s"
  [[ -f $ROOT/target/$TRIPLE/release/midge ]] || { fail "$board: no target/$TRIPLE/release/midge after the build"; continue; }
  for name in midge midge_passwd; do
    bin=$ROOT/target/$TRIPLE/release/$name
    [[ -f $bin ]] || continue
    out=$OUT_DIR/$name-$ARCH
    cp "$bin" "$out.tmp"
    # The release profile strips already; strip again if a strip that knows ARM ELF is at hand.
    if command -v llvm-strip >/dev/null; then llvm-strip "$out.tmp"
    elif [[ $board == pizero ]] && command -v arm-linux-gnueabi-strip >/dev/null; then arm-linux-gnueabi-strip "$out.tmp"
    elif [[ $board == pi4 ]] && command -v aarch64-linux-gnu-strip >/dev/null; then aarch64-linux-gnu-strip "$out.tmp"
    fi
    mv "$out.tmp" "$out"
    size=$(stat -c %s "$out")
    echo "$out: $size bytes ($(( (size + 1023) / 1024 )) KiB)"
    SUMMARY+=("$board $TRIPLE: $out $size bytes")
    # Static: no program interpreter (dynamic loader) and no shared libraries needed.
    if readelf -lW "$out" | grep -q 'Requesting program interpreter' || readelf -dW "$out" | grep -q '(NEEDED)'; then
      fail "$board: $out is dynamically linked"
    fi
    if [[ $board == pizero ]]; then
      arch=$(readelf -A "$out" | awk -F': *' '/Tag_CPU_arch:/ {print $2}')
      echo "  readelf -A: Tag_CPU_arch: ${arch:-(none)}"
      # v6, v6K, v6KZ (the ARM1176) or older are fine; v6T2 (Thumb-2) and v7+ are not.
      case $arch in
        v6|v6K|v6KZ|v5*|v4*) ;;
        v7) echo "  (v7: ring's run-time-selected NEON code; scripts/pi-check.sh checks the instructions)" ;;
        *) fail "$board: $name: Tag_CPU_arch is '${arch:-none}', not armv6: it would die with SIGILL on a Pi Zero" ;;
      esac
      if [[ $name == midge && $size -gt $MAX_ARMV6_BYTES ]]; then
        fail "$board: midge is $size bytes, over the armv6 budget of $MAX_ARMV6_BYTES bytes (2 MiB)"
      fi
    fi
  done
done

log "summary"
printf '%s\n' "${SUMMARY[@]}"
[[ $FAIL == 0 ]] || { echo "cross-build: FAILED"; exit 1; }
echo "cross-build: all good"
