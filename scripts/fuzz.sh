#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target of midge for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
#
#   SECONDS_PER_TARGET  libFuzzer's -max_total_time for each target (default 60).
#   TARGET...           only these targets (default: all, as `cargo fuzz list` names them).
#
# Environment:
#   FUZZ_JOBS=2         targets run at the same time (default 2: a 2-core machine finishes the
#                       six targets at 60 s in about 3 minutes after a build of 1-2 minutes).
#   FUZZ_SANITIZER=address   cargo-fuzz sanitizer (address, none, ...).
#   FUZZ_FRESH=1        forget what earlier runs found (fuzz/corpus-run/) and start from the seeds.
#
# Seeds: fuzz/corpus/<target>/ and fuzz/regressions/<target>/ (committed; every input that ever
# crashed a target is kept in the latter) plus the repository's fixtures for the targets that
# read the same formats (tests/fixtures/persist for persist_decode, the mosquitto_passwd files
# for password_parse, conf/*.conf for config_parse). New inputs go to fuzz/corpus-run/<target>/
# and crashes to fuzz/artifacts/<target>/, both ignored by git.
#
# Prints one line per target (executions, seconds, result) and exits non-zero if any target
# crashed, timed out or failed to run. Installs the nightly toolchain and cargo-fuzz if missing.
set -euo pipefail

SECS=${1:-60}
shift || true
case $SECS in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET [TARGET...]]" >&2
    exit 2
    ;;
esac
JOBS=${FUZZ_JOBS:-2}
SANITIZER=${FUZZ_SANITIZER:-address}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ="$ROOT/fuzz"
export PATH="$HOME/.cargo/bin:$PATH"

# --- tools -------------------------------------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1; then
    echo "fuzz.sh: rustup is needed (https://rustup.rs)" >&2
    exit 2
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked
fi

cd "$FUZZ"
if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi

# --- build -------------------------------------------------------------------------------------
echo "fuzz.sh: building ${#TARGETS[@]} targets (sanitizer: $SANITIZER)"
start=$(date +%s)
if [ $# -gt 0 ]; then
    for t in "${TARGETS[@]}"; do
        cargo +nightly fuzz build -s "$SANITIZER" "$t"
    done
else
    cargo +nightly fuzz build -s "$SANITIZER"
fi
echo "fuzz.sh: built in $(($(date +%s) - start)) s"

# --- run ---------------------------------------------------------------------------------------
seeds() {
    local t=$1
    [ -d "$FUZZ/corpus/$t" ] && echo "$FUZZ/corpus/$t"
    # Inputs that once crashed: run first, like every seed, so a regression fails at once.
    [ -d "$FUZZ/regressions/$t" ] && echo "$FUZZ/regressions/$t"
    case $t in
    persist_decode) echo "$ROOT/tests/fixtures/persist" ;;
    password_parse) ls "$ROOT"/tests/fixtures/mosquitto_passwd_*.txt 2>/dev/null ;;
    config_parse) ls "$ROOT"/conf/*.conf 2>/dev/null ;;
    esac
}

RESULTS=$(mktemp -d)
trap 'rm -rf "$RESULTS"' EXIT

run_target() {
    local t=$1 log="$RESULTS/$1.log" run="$FUZZ/corpus-run/$1"
    [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$run"
    mkdir -p "$run" "$FUZZ/artifacts/$t"
    # libFuzzer copies the seeds it finds interesting into the first directory, `run`; files
    # (not directories) among the seeds are copied in first, since libFuzzer only takes
    # directories.
    local dirs=()
    while read -r s; do
        [ -z "$s" ] && continue
        if [ -d "$s" ]; then dirs+=("$s"); else cp -f "$s" "$run/"; fi
    done < <(seeds "$t")
    local rc=0
    timeout --kill-after=10 $((SECS + 120)) \
        cargo +nightly fuzz run -s "$SANITIZER" "$t" "$run" "${dirs[@]}" -- \
        -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?
    local execs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -z "$execs" ] && execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    local secs
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    local result=ok
    if [ $rc -ne 0 ]; then
        local artifact
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        local what
        what=$(grep -m1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" || true)
        result="FAILED (exit $rc) ${what:-see log} ${artifact:+-> $artifact}"
        cp "$log" "$FUZZ/artifacts/$t/last-failure.log"
    fi
    printf '%-16s %12s execs %6s s  %s\n' "$t" "${execs:-?}" "${secs:-?}" "$result" \
        >"$RESULTS/$t.result"
}

echo "fuzz.sh: running each target for $SECS s, $JOBS at a time"
running=0
for t in "${TARGETS[@]}"; do
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
done
wait || true

echo
printf '%-16s %18s %8s  %s\n' target executions time result
failed=0
for t in "${TARGETS[@]}"; do
    if [ -f "$RESULTS/$t.result" ]; then
        cat "$RESULTS/$t.result"
        grep -q ' ok$' "$RESULTS/$t.result" || failed=1
    else
        printf '%-16s did not run\n' "$t"
        failed=1
    fi
done
echo "fuzz.sh: total $(($(date +%s) - start)) s"
if [ "$failed" -ne 0 ]; then
    echo "fuzz.sh: FAILED: crash inputs are in fuzz/artifacts/<target>/ (reproduce with"
    echo "  cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...)"
    exit 1
fi
echo "fuzz.sh: no crashes"
