#!/usr/bin/env bash
# Bridged QoS 1 throughput and memory per queued message, midge against Debian's mosquitto as
# the bridging broker (BENCHMARKS.md, "Bridges").
#
#   scripts/bench-bridge.sh [SECONDS]     (default 10)
#
# The remote is a midge, so that the remote is not the bottleneck. For each bridging broker
# (midge, then mosquitto, the same bridge section): 4 publishers send QoS 1 to it, one
# subscriber on the remote receives, and midge_bench counts lost, duplicated and reordered
# messages. Then a fresh bridging broker whose remote is down is sent 100,000 QoS 1 messages
# of 64 bytes (scripts/bench-publish.py, which waits for every PUBACK); its RSS growth divided
# by 100,000 is the memory per queued message.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release --bin midge --bin midge_bench >&2
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

rport=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' "$rport" >"$dir/remote.conf"
lport=$(free_port)
# start BROKER: the bridging broker, in the background; sets $bpid.
start() {
  sed "s/@ID@/bench-$1/" "$dir/bridge.conf" >"$dir/$1.conf"
  case $1 in
    midge) target/release/midge -c "$dir/$1.conf" 2>>"$dir/$1.log" & ;;
    mosquitto) /usr/sbin/mosquitto -c "$dir/$1.conf" 2>>"$dir/$1.log" & ;;
  esac
  bpid=$!; pids+=("$bpid")
  wait_port "$lport"
}
cat >"$dir/bridge.conf" <<CONF
listener $lport 127.0.0.1
allow_anonymous true
max_queued_messages 200000
connection up
address 127.0.0.1:$rport
remote_clientid @ID@
cleansession false
restart_timeout 1
topic midge_bench/# out 1
CONF

for broker in midge mosquitto; do
  target/release/midge -c "$dir/remote.conf" 2>>"$dir/remote.log" &
  rpid=$!; pids+=("$rpid")
  wait_port "$rport"
  start "$broker"
  sleep 2 # the bridge connects
  echo "== $broker as the bridging broker"
  target/release/midge_bench -s fanin -P 4 -q 1 --size 64 -d "$secs" -p "$lport" \
    --sub-port "$rport" --pid "$bpid" --label "$broker-bridge" | grep -E '^RESULT|delivered|integrity'
  kill "$bpid" "$rpid"; wait "$bpid" "$rpid" 2>/dev/null || true
  # Memory per queued message: a fresh bridging broker, its remote down.
  start "$broker"
  sleep 0.5
  before=$(rss_kb "$bpid")
  python3 scripts/bench-publish.py "$lport" midge_bench/queued 100000 >/dev/null
  sleep 1
  after=$(rss_kb "$bpid")
  echo "RESULT scenario=bridge-queue broker=$broker messages=100000 rss_before_kb=$before rss_after_kb=$after bytes_per_message=$(( (after - before) * 1024 / 100000 ))"
  kill "$bpid"; wait "$bpid" 2>/dev/null || true
done
