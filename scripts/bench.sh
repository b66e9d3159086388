#!/usr/bin/env bash
# scripts/bench.sh: midge and mosquitto side by side on this machine, with midge_bench.
#
#   scripts/bench.sh [--rounds N] [--duration SECS] [--idle-clients N] [--scenarios "LIST"]
#                    [--brokers "midge mosquitto"] [--nodelay] [--quick] [--strict]
#                    [--no-build] [--out DIR] [-h]
#
# What it does:
#   * builds midge and midge_bench in release mode (cargo build --release);
#   * installs Debian's mosquitto if it is missing (apt-get, as root or with sudo);
#   * raises the open files limit for the idle-connections scenario;
#   * for each round, each scenario, each broker (the order alternating between rounds and
#     scenarios, so neither broker always runs first): starts a fresh broker on loopback, pinned
#     to CPU 0 with taskset, reads its idle RSS, runs midge_bench pinned to CPU 1 under
#     `timeout`, stops the broker;
#   * prints the medians over the rounds for both brokers and the ratio midge / mosquitto, plus
#     integrity counts (summed over the rounds), and saves every RESULT line.
#
# Both brokers get the same settings: listener PORT 127.0.0.1, allow_anonymous true,
# max_inflight_messages 20, max_queued_messages 1000 (0 for `retained`, below), no
# persistence, no logging; the rest
# (set_tcp_nodelay included) at each broker's default, which is what users get. --nodelay sets
# set_tcp_nodelay true in both.
#
# Scenarios (names for --scenarios; default: all but the optional ones):
#   fanin0     QoS 0 fan-in, 4 publishers -> 1 wildcard subscriber, 64-byte payloads
#   fanout0    QoS 0 fan-out, 1 publisher -> 100 subscribers
#   pairs0     QoS 0, 100 publisher -> subscriber pairs
#   fanin1     QoS 1 fan-in (4 publishers, 20 in flight each)
#   fanin2     QoS 2 fan-in
#   fanin1v5   QoS 1 fan-in, MQTT 5
#   lat1       paced 1,000 msg/s QoS 1, one pair: latency percentiles
#   idle       hold --idle-clients idle connections: bytes per connection, connect rate
#   abuse      one QoS 1 subscriber that never reads, flooded with 1,000,000 QoS 0 then 100,000
#              QoS 1 messages (64 B) by 2 + 2 publishers, while a probe pair on another topic
#              goes on at 500 msg/s QoS 1: the broker's peak RSS over its idle RSS (midge_bench
#              states the bound max_queued_messages allows: about 4.5 MB here), and whether every
#              probe message arrived (and how late)
#   retained   100,000 retained messages (64 B) on distinct topics: bytes per retained message,
#              then a new subscriber to all of them: msg/s. This scenario alone runs both brokers
#              with max_queued_messages 0 (no limit): with 1000, both deliver 1,020 of them to a
#              new subscriber (queue + in flight) and drop the rest
#   subs       100 clients x 1,000 subscriptions on distinct topics: bytes per subscription;
#              then QoS 0 messages each matching one subscription, with 100,000 and with 1,000
#              subscriptions: msg/s and broker CPU per million at both, and their ratio
#   fanin0ws   midge only: fanin0 over WebSockets (a `protocol websockets` listener); Debian's
#              mosquitto is built without websockets, so compare it with midge's and
#              mosquitto's fanin0
#   idlews     midge only: idle over WebSockets (bytes per idle WebSocket connection)
#   fanout0-64b fanout0-1k fanout0-16k fanout0-256k
#              QoS 0 fan-out, 1 publisher -> 50 subscribers, by payload size (256 KiB: the
#              publisher at most 100 messages ahead of its subscribers, --backlog 100)
#   fanin0-1k fanin0-16k fanin0-256k
#              QoS 0 fan-in, 4 publishers -> 1 subscriber, by payload size (64 B: fanin0)
#   memprobe   one 1 MiB retained message, then 100 subscribers to it: the broker's peak RSS
#              growth while storing it, then while delivering it to all 100 (in payloads: near
#              0 when a payload is stored once and sent by reference, 100 if copied for each)
#   fanin2v5   (optional) QoS 2 fan-in, MQTT 5
#   fanout1    (optional) QoS 1 fan-out to 100 subscribers
#   tlsfanin0  (optional) fanin0 over TLS (both brokers: the same EC P-256 certificate, made here
#              with openssl; midge_bench --tls: full handshakes, no resumption)
#   tlsfanin1  (optional) fanin1 over TLS
#   tlsidle    (optional) idle over TLS (EC P-256): bytes per idle TLS connection, and the
#              connection rate, which is the TLS handshake rate (64 at once)
#   tlsidlersa (optional) the same with an RSA 2048 server key: handshakes/s
#
# Environment: ROUNDS, DURATION, IDLE_CLIENTS, SCENARIOS, BROKERS, MIDGE_PORT (21883),
# MOSQ_PORT (21884), BROKER_CPU (0), GEN_CPU (1), MIDGE_BIN and BENCH_BIN (the binaries to
# run; default: the release build in CARGO_TARGET_DIR or target/).
#
# --quick: 1 round of 1 s per scenario, 1,000 idle clients, abuse with 100,000 QoS 0 and
# 10,000 QoS 1 messages, 20,000 retained messages and subscriptions (a CI smoke run: it fails
# if a run fails or prints no RESULT line). --strict: also exit 1 if midge lost, duplicated or
# reordered a QoS 1/2 message (the abuse probe included), or crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
SIZED="fanout0-64b fanout0-1k fanout0-16k fanout0-256k fanin0-1k fanin0-16k fanin0-256k"
SCENARIOS=${SCENARIOS:-"fanin0 fanout0 pairs0 fanin1 fanin2 fanin1v5 lat1 idle abuse retained subs fanin0ws idlews $SIZED memprobe"}
BROKERS=${BROKERS:-"midge mosquitto"}
MIDGE_PORT=${MIDGE_PORT:-21883}
MOSQ_PORT=${MOSQ_PORT:-21884}
RELAY_PORT=${RELAY_PORT:-21885}
# Scenarios also run against `midge_bench --relay`, a byte-copying reference relay (no broker:
# it copies each PUBLISH to every subscriber), for midge / relay.
RELAY_SCENARIOS=${RELAY_SCENARIOS:-"fanout0-1k fanout0-16k fanout0-256k"}
BROKER_CPU=${BROKER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
NODELAY=0
QUICK=0
STRICT=0
BUILD=1
OUT=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --idle-clients) IDLE_CLIENTS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --brokers) BROKERS=$2; shift 2 ;;
    --nodelay) NODELAY=1; shift ;;
    --quick) ROUNDS=1; DURATION=1; IDLE_CLIENTS=1000; QUICK=1; shift ;;
    --strict) STRICT=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
log() { echo "bench.sh: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Build and install.
if [ "$BUILD" = 1 ]; then
  log "building midge and midge_bench (release)"
  cargo build --release --bin midge --bin midge_bench >&2
fi
TARGET_DIR=${CARGO_TARGET_DIR:-target}
MIDGE=${MIDGE_BIN:-$TARGET_DIR/release/midge}
BENCH=${BENCH_BIN:-$TARGET_DIR/release/midge_bench}
for b in "$MIDGE" "$BENCH"; do
  [ -x "$b" ] || { log "$b is missing: build it (or drop --no-build)"; exit 1; }
done

MOSQUITTO=""
if [[ " $BROKERS " == *" mosquitto "* ]]; then
  MOSQUITTO=$(command -v mosquitto || true)
  [ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
  if [ -z "$MOSQUITTO" ]; then
    log "installing mosquitto (apt-get)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq mosquitto >/dev/null
    MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  fi
  # The package's own service would hold port 1883 and a core; it is not what we measure.
fi

# ---------------------------------------------------------------------------------------------
# Limits, CPUs, work directory.
need_fds=$((IDLE_CLIENTS + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need_fds" ]; then
    ulimit -Hn "$need_fds" 2>/dev/null || true
  fi
  ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  log "open files limit is $(ulimit -n), $IDLE_CLIENTS idle clients need $need_fds: lowering"
  IDLE_CLIENTS=$(( $(ulimit -n) - 1024 ))
fi

PIN_BROKER=()
PIN_GEN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_BROKER=(taskset -c "$BROKER_CPU")
  PIN_GEN=(taskset -c "$GEN_CPU")
else
  log "taskset or a second CPU is missing: broker and generator are not pinned"
fi

[ -n "$OUT" ] || OUT=$TARGET_DIR/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
WORK=$(mktemp -d)
BROKER_PID=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    sleep 0.5
    kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MAX_INFLIGHT=20
MAX_QUEUED=1000
chmod 755 "$WORK"

port_of() {
  case "$1" in midge) echo "$MIDGE_PORT" ;; relay) echo "$RELAY_PORT" ;; *) echo "$MOSQ_PORT" ;; esac
}
# Scenarios over WebSockets (midge only): midge_bench connects to a second, WebSocket listener.
ws_scenario() { [[ "$1" == *ws ]]; }
WS_PORT=$((MIDGE_PORT + 2))

# write_conf BROKER SCENARIO: the same configuration for both brokers (the retained scenario
# lifts the queue limit so that a new subscriber can get every retained message).
write_conf() {
  local queued=$MAX_QUEUED f=$WORK/$1.conf
  [ "$2" = retained ] && queued=0
  {
    echo "listener $(port_of "$1") 127.0.0.1"
    echo "allow_anonymous true"
    echo "max_inflight_messages $MAX_INFLIGHT"
    echo "max_queued_messages $queued"
    echo "persistence false"
    echo "log_dest none"
    [ "$NODELAY" = 1 ] && echo "set_tcp_nodelay true"
    if ws_scenario "$2"; then
      echo "listener $WS_PORT 127.0.0.1"
      echo "protocol websockets"
    fi
    case "$2" in
      tlsidlersa) echo "certfile $WORK/rsa.crt"; echo "keyfile $WORK/rsa.key" ;;
      tls*) echo "certfile $WORK/ec.crt"; echo "keyfile $WORK/ec.key" ;;
    esac
  } >"$f"
  chmod 644 "$f"
}

listening() {
  if command -v ss >/dev/null; then
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# start_broker NAME SCENARIO: sets BROKER_PID and IDLE_RSS_KB.
start_broker() {
  local name=$1 port
  port=$(port_of "$name")
  write_conf "$name" "$2"
  if listening "$port"; then
    log "port $port is already in use: set MIDGE_PORT / MOSQ_PORT"
    exit 1
  fi
  if [ "$name" = midge ]; then
    "${PIN_BROKER[@]}" "$MIDGE" -c "$WORK/midge.conf" >"$WORK/$name.log" 2>&1 &
  elif [ "$name" = relay ]; then
    "${PIN_BROKER[@]}" "$BENCH" --relay "$port" >"$WORK/$name.log" 2>&1 &
  else
    "${PIN_BROKER[@]}" "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/$name.log" 2>&1 &
  fi
  BROKER_PID=$!
  for _ in $(seq 100); do
    listening "$port" && break
    kill -0 "$BROKER_PID" 2>/dev/null || { log "$name did not start:"; cat "$WORK/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  listening "$port" || { log "$name is not listening on $port"; exit 1; }
  sleep 0.3
  IDLE_RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$BROKER_PID/status")
}

# stop_broker: returns 1 if the broker had already exited (crashed) before it was stopped.
stop_broker() {
  local dead=0
  kill -0 "$BROKER_PID" 2>/dev/null || dead=1
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
  return $dead
}

args_of() {
  local d=$DURATION
  case "$1" in
    fanin0) echo "-s fanin -P 4 -q 0 --size 64 -d $d" ;;
    fanout0) echo "-s fanout -S 100 -q 0 --size 64 -d $d" ;;
    pairs0) echo "-s pairs -N 100 -q 0 --size 64 -d $d" ;;
    fanin1) echo "-s fanin -P 4 -q 1 --size 64 -d $d" ;;
    fanin2) echo "-s fanin -P 4 -q 2 --size 64 -d $d" ;;
    fanin1v5) echo "-s fanin -P 4 -q 1 --size 64 -V 5 -d $d" ;;
    fanin2v5) echo "-s fanin -P 4 -q 2 --size 64 -V 5 -d $d" ;;
    fanout1) echo "-s fanout -S 100 -q 1 --size 64 -d $d" ;;
    fanout0-64b) echo "-s fanout -S 50 -q 0 --size 64 -d $d" ;;
    fanout0-1k) echo "-s fanout -S 50 -q 0 --size 1024 -d $d" ;;
    fanout0-16k) echo "-s fanout -S 50 -q 0 --size 16384 -d $d" ;;
    fanout0-256k) echo "-s fanout -S 50 -q 0 --size 262144 --backlog 100 -d $d" ;;
    fanin0-1k) echo "-s fanin -P 4 -q 0 --size 1024 -d $d" ;;
    fanin0-16k) echo "-s fanin -P 4 -q 0 --size 16384 -d $d" ;;
    fanin0-256k) echo "-s fanin -P 4 -q 0 --size 262144 --backlog 100 -d $d" ;;
    memprobe) echo "-s memprobe -S 100 -q 1 --size 1048576 -d 10" ;;
    lat1) echo "-s latency -q 1 -r 1000 --size 64 -d $((d < 5 ? 5 : d))" ;;
    idle) echo "-s connections -c $IDLE_CLIENTS -d 2 --settle 1 --connect-timeout 60" ;;
    fanin0ws) echo "$(args_of fanin0) --ws" ;;
    idlews) echo "$(args_of idle) --ws" ;;
    abuse) echo "-s abuse -P 2 --qos0-count $ABUSE_Q0 --qos1-count $ABUSE_Q1 -r 500 --size 64" \
      "-d $ABUSE_SECS --drain 5 --after $ABUSE_AFTER --max-queued $MAX_QUEUED" \
      "--max-inflight $MAX_INFLIGHT" ;;
    retained) echo "-s retained -n $RET_N -q 1 --inflight 100 --size 64 -d 60 --settle 1" ;;
    subs) echo "-s subs -c 100 --subs $SUBS_N --subs-small 1000 --size 64 -d $d --settle 1" ;;
    tlsfanin0|tlsfanin1|tlsidle|tlsidlersa)
      local plain=${1#tls}
      echo "--tls $(args_of "${plain%rsa}")" ;;
    *) log "unknown scenario $1"; exit 2 ;;
  esac
}

# timeout_of SCENARIO: how long midge_bench may take (it bounds itself well within this).
timeout_of() {
  case "$1" in
    abuse) echo $((3 * ABUSE_SECS + 60)) ;;
    retained) echo 200 ;;
    subs) echo $((2 * DURATION + 120)) ;;
    tlsidle|tlsidlersa) echo 400 ;;
    *) echo $((DURATION + 90)) ;;
  esac
}

if [ "$QUICK" = 1 ]; then
  ABUSE_Q0=100000 ABUSE_Q1=10000 ABUSE_SECS=10 ABUSE_AFTER=1 RET_N=20000 SUBS_N=20000
else
  ABUSE_Q0=1000000 ABUSE_Q1=100000 ABUSE_SECS=30 ABUSE_AFTER=2 RET_N=100000 SUBS_N=100000
fi

for sc in $SCENARIOS; do args_of "$sc" >/dev/null; done

# TLS scenarios: one CA and two server certificates (EC P-256, RSA 2048) for both brokers.
if [[ " $SCENARIOS " == *" tls"* ]]; then
  log "making TLS certificates (openssl)"
  (
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=bench CA" -keyout ca.key -out ca.crt 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    for k in "ec -pkeyopt ec_paramgen_curve:P-256" "rsa -pkeyopt rsa_keygen_bits:2048"; do
      n=${k%% *}
      # shellcheck disable=SC2086 # the key type and its options
      openssl req -newkey $k -nodes -subj "/CN=localhost" -keyout "$n.key" -out "$n.csr" 2>/dev/null
      openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile san.ext -out "$n.crt" 2>/dev/null
    done
    # mosquitto started as root goes on as its own user: it must read the keys too.
    chmod 644 ./*.key ./*.crt
  )
fi

RESULTS=$OUT/results.txt
: >"$RESULTS"
FAILED=0

run_one() { # broker scenario round
  local broker=$1 sc=$2 round=$3 port out rc=0 line crashed=0
  port=$(port_of "$broker")
  start_broker "$broker" "$sc"
  ws_scenario "$sc" && port=$WS_PORT
  # shellcheck disable=SC2046
  out=$(timeout --kill-after=5 "$(timeout_of "$sc")" "${PIN_GEN[@]}" "$BENCH" -p "$port" \
    --pid "$BROKER_PID" --label "$broker" $(args_of "$sc") 2>&1) || rc=$?
  stop_broker || crashed=1
  echo "$out" >>"$OUT/$broker.$sc.$round.txt"
  line=$(echo "$out" | grep '^RESULT ' | tail -1 || true)
  if [ -z "$line" ] || [ "$rc" != 0 ]; then
    log "$broker $sc round $round: midge_bench exit $rc$([ $crashed = 1 ] && echo ', broker crashed')"
    echo "$out" | tail -5 >&2
    FAILED=1
    line="RESULT scenario=$sc broker=$broker failed=1"
  fi
  echo "$line key=$sc round=$round idle_rss_kb=$IDLE_RSS_KB crashed=$crashed exit=$rc" >>"$RESULTS"
  log "$broker $sc round $round: $(echo "$line" | grep -oE ' (msgs_per_s|p50_us|p99_us|lost|dup|ooo|bytes_per_conn|connect_per_s|rss_growth_kb|bound_kb|probe_ok|probe_flood_p99_us|bytes_per_retained|received|recv_per_s|bytes_per_sub|large_cpu_s_per_M|small_cpu_s_per_M|cpu_ratio)=[^ ]+' | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
log "rounds=$ROUNDS duration=${DURATION}s idle_clients=$IDLE_CLIENTS scenarios=($SCENARIOS) out=$OUT"
read -r -a brokers <<<"$BROKERS"
read -r -a scenarios <<<"$SCENARIOS"
for round in $(seq "$ROUNDS"); do
  s=0
  for sc in "${scenarios[@]}"; do
    if [ ${#brokers[@]} = 2 ] && [ $(((round + s) % 2)) = 1 ]; then
      order=("${brokers[1]}" "${brokers[0]}")
    else
      order=("${brokers[@]}")
    fi
    for b in "${order[@]}"; do
      if ws_scenario "$sc" && [ "$b" != midge ]; then continue; fi
      run_one "$b" "$sc" "$round"
    done
    if [[ " $RELAY_SCENARIOS " == *" $sc "* ]]; then run_one relay "$sc" "$round"; fi
    s=$((s + 1))
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started))

# ---------------------------------------------------------------------------------------------
# The table: medians per broker and scenario, ratio midge / mosquitto.
median() { # key scenario broker -> median over rounds, or "-"
  awk -v k="$1" -v sc="$2" -v b="$3" '
    { ok = 0; v = "" }
    $0 ~ " key=" sc " " && $0 ~ " broker=" b " " {
      for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) { v = kv[2]; ok = 1 } }
      if (ok && v != "") a[n++] = v + 0
    }
    END {
      if (n == 0) { print "-"; exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      m = (n % 2) ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2
      if (m >= 100 || m == int(m)) printf "%.0f\n", m; else printf "%.3g\n", m
    }' "$RESULTS"
}
median_all() { # key broker (every run of that broker)
  awk -v k="$1" -v b="$2" '
    $0 ~ " broker=" b " " {
      for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k && kv[2] != "") a[n++] = kv[2] + 0 }
    }
    END {
      if (n == 0) { print "-"; exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      printf "%d\n", (n % 2) ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2
    }' "$RESULTS"
}
total() { # key scenario broker -> sum over rounds
  awk -v k="$1" -v sc="$2" -v b="$3" '
    $0 ~ " key=" sc " " && $0 ~ " broker=" b " " {
      for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) s += kv[2] }
      n++
    }
    END { if (n == 0) print "-"; else printf "%d\n", s }' "$RESULTS"
}
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
has() { [[ " $SCENARIOS " == *" $1 "* ]]; }

TABLE=$OUT/table.md
{
  echo "| figure | midge | mosquitto | midge / mosquitto |"
  echo "|---|---:|---:|---:|"
  row() { # label key scenario
    local m q
    m=$(median "$2" "$3" midge)
    q=$(median "$2" "$3" mosquitto)
    echo "| $1 | $m | $q | $(ratio "$m" "$q") |"
  }
  while read -r label key sc; do
    label=${label//IDLE_N/$IDLE_CLIENTS}
    label=${label//ABUSE_Q0/$ABUSE_Q0}
    label=${label//ABUSE_Q1/$ABUSE_Q1}
    label=${label//RET_N/$RET_N}
    label=${label//SUBS_N/$SUBS_N}
    if has "$sc"; then row "${label//_/ }" "$key" "$sc"; fi
    if [ "$key" = probe_flood_p99_us ] && has abuse; then
      cells=()
      for b in midge mosquitto; do
        n=$(total failed abuse $b)
        ok=$(total probe_ok abuse $b)
        if [ "$n" = - ]; then cells+=("-")
        elif [ "$ok" = "$(grep -c " broker=$b .* key=abuse " "$RESULTS")" ]; then cells+=("ok")
        else cells+=("**failed**"); fi
      done
      echo "| abuse: every probe message delivered, none lost, no connection closed | ${cells[0]} | ${cells[1]} | - |"
    fi
  done <<'ROWS'
QoS_0_fan-in,_4_publishers,_64_B:_msg/s msgs_per_s fanin0
QoS_0_fan-in_over_WebSockets:_msg/s msgs_per_s fanin0ws
QoS_0_fan-out,_100_subscribers:_deliveries/s msgs_per_s fanout0
QoS_0,_100_pairs:_msg/s msgs_per_s pairs0
QoS_1_fan-in:_msg/s msgs_per_s fanin1
QoS_2_fan-in:_msg/s msgs_per_s fanin2
QoS_1_fan-in,_MQTT_5:_msg/s msgs_per_s fanin1v5
QoS_2_fan-in,_MQTT_5:_msg/s msgs_per_s fanin2v5
QoS_1_fan-out,_100_subscribers:_deliveries/s msgs_per_s fanout1
CPU_s_per_million_deliveries,_QoS_0_fan-in cpu_s_per_M fanin0
CPU_s_per_million_deliveries,_QoS_0_fan-in_over_WebSockets cpu_s_per_M fanin0ws
CPU_s_per_million_deliveries,_QoS_0_fan-out cpu_s_per_M fanout0
CPU_s_per_million_deliveries,_QoS_0_pairs cpu_s_per_M pairs0
CPU_s_per_million_deliveries,_QoS_1_fan-in cpu_s_per_M fanin1
CPU_s_per_million_deliveries,_QoS_2_fan-in cpu_s_per_M fanin2
QoS_0_fan-out,_50_subscribers,_64_B:_deliveries/s msgs_per_s fanout0-64b
QoS_0_fan-out,_50_subscribers,_1_KiB:_deliveries/s msgs_per_s fanout0-1k
QoS_0_fan-out,_50_subscribers,_16_KiB:_deliveries/s msgs_per_s fanout0-16k
QoS_0_fan-out,_50_subscribers,_256_KiB:_deliveries/s msgs_per_s fanout0-256k
QoS_0_fan-in,_4_publishers,_1_KiB:_msg/s msgs_per_s fanin0-1k
QoS_0_fan-in,_4_publishers,_16_KiB:_msg/s msgs_per_s fanin0-16k
QoS_0_fan-in,_4_publishers,_256_KiB:_msg/s msgs_per_s fanin0-256k
CPU_s_per_million_deliveries,_fan-out_64_B cpu_s_per_M fanout0-64b
CPU_s_per_million_deliveries,_fan-out_1_KiB cpu_s_per_M fanout0-1k
CPU_s_per_million_deliveries,_fan-out_16_KiB cpu_s_per_M fanout0-16k
CPU_s_per_million_deliveries,_fan-out_256_KiB cpu_s_per_M fanout0-256k
CPU_s_per_million_deliveries,_fan-in_16_KiB cpu_s_per_M fanin0-16k
CPU_s_per_million_deliveries,_fan-in_256_KiB cpu_s_per_M fanin0-256k
memprobe:_storing_one_1_MiB_retained_message,_peak_RSS_growth_(kB) store_growth_kb memprobe
memprobe:_delivering_it_to_100_subscribers,_further_peak_RSS_growth_(kB) deliver_growth_kb memprobe
memprobe:_delivering_it_to_100_subscribers,_growth_in_payloads deliver_payloads memprobe
memprobe:_subscribers_that_got_it received memprobe
latency_p50,_1,000_msg/s_QoS_1_(us) p50_us lat1
latency_p99,_1,000_msg/s_QoS_1_(us) p99_us lat1
latency_p99.9,_1,000_msg/s_QoS_1_(us) p999_us lat1
bytes_per_idle_connection_(IDLE_N_clients) bytes_per_conn idle
bytes_per_idle_WebSocket_connection_(IDLE_N_clients) bytes_per_conn idlews
connections_per_second_(64_at_once) connect_per_s idle
QoS_0_fan-in_over_TLS:_msg/s msgs_per_s tlsfanin0
QoS_1_fan-in_over_TLS:_msg/s msgs_per_s tlsfanin1
CPU_s_per_million_deliveries,_QoS_0_fan-in_over_TLS cpu_s_per_M tlsfanin0
bytes_per_idle_TLS_connection_(IDLE_N_clients,_EC_P-256) bytes_per_conn tlsidle
TLS_handshakes_per_second,_ECDSA_P-256_(64_at_once) connect_per_s tlsidle
TLS_handshakes_per_second,_RSA_2048_(64_at_once) connect_per_s tlsidlersa
bytes_per_idle_TLS_connection_(IDLE_N_clients,_RSA_2048) bytes_per_conn tlsidlersa
broker_peak_RSS_during_QoS_0_fan-out_(kB) rss_peak_kb fanout0
broker_peak_RSS_during_QoS_0_pairs_(kB) rss_peak_kb pairs0
abuse:_broker_peak_RSS_over_idle,_ABUSE_Q0_QoS_0_+_ABUSE_Q1_QoS_1_to_a_subscriber_that_never_reads_(kB) rss_growth_kb abuse
abuse:_the_bound_its_queue_limits_allow_(kB) bound_kb abuse
abuse:_probe_latency_p99_during_the_floods_(us) probe_flood_p99_us abuse
abuse:_probe_latency_p99_after_the_floods_(us) probe_after_p99_us abuse
bytes_per_retained_message_(RET_N) bytes_per_retained retained
retained:_RET_N_stored_(QoS_1):_msg/s store_per_s retained
retained:_a_new_subscriber_gets_all_RET_N:_msg/s recv_per_s retained
retained:_messages_the_new_subscriber_got received retained
bytes_per_subscription_(SUBS_N) bytes_per_sub subs
subscribe:_subscriptions/s subs_per_s subs
publish_to_1_of_1,000_subscriptions:_msg/s small_msgs_per_s subs
publish_to_1_of_SUBS_N_subscriptions:_msg/s large_msgs_per_s subs
CPU_s_per_million_deliveries,_1,000_subscriptions small_cpu_s_per_M subs
CPU_s_per_million_deliveries,_SUBS_N_subscriptions large_cpu_s_per_M subs
CPU_per_delivery,_SUBS_N_/_1,000_subscriptions_(1_=_flat) cpu_ratio subs
ROWS
  m=$(median_all idle_rss_kb midge)
  q=$(median_all idle_rss_kb mosquitto)
  echo "| idle RSS of a fresh broker (kB) | $m | $q | $(ratio "$m" "$q") |"
  echo
  echo "Integrity, summed over $ROUNDS round(s): lost / duplicated / out of order (QoS 0 may lose" \
    "by design; QoS 1 and 2 must not), and connections closed, crashes."
  echo
  echo "| scenario | midge lost/dup/ooo | mosquitto lost/dup/ooo | midge closed/crashed | mosquitto closed/crashed |"
  echo "|---|---:|---:|---:|---:|"
  for sc in $SCENARIOS; do
    case "$sc" in idle | idlews | tlsidle | tlsidlersa) continue ;; esac
    cells=()
    for b in midge mosquitto; do
      cells+=("$(total lost "$sc" $b)/$(total dup "$sc" $b)/$(total ooo "$sc" $b)")
    done
    for b in midge mosquitto; do
      cells+=("$(total closed "$sc" $b)/$(total crashed "$sc" $b)")
    done
    echo "| $sc | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} |"
  done
  relayed=()
  for sc in $RELAY_SCENARIOS; do has "$sc" && relayed+=("$sc"); done
  if [ ${#relayed[@]} -gt 0 ]; then
    echo
    echo "Against \`midge_bench --relay\`, a byte-copying reference relay (it parses fixed headers" \
      "only and copies each PUBLISH to every subscriber's buffer): deliveries/s and CPU s per million."
    echo
    echo "| scenario | midge | relay | midge / relay | midge CPU s/M | relay CPU s/M |"
    echo "|---|---:|---:|---:|---:|---:|"
    for sc in "${relayed[@]}"; do
      m=$(median msgs_per_s "$sc" midge)
      r=$(median msgs_per_s "$sc" relay)
      echo "| $sc | $m | $r | $(ratio "$m" "$r") | $(median cpu_s_per_M "$sc" midge) | $(median cpu_s_per_M "$sc" relay) |"
    done
  fi
} >"$TABLE"

{
  echo
  echo "midge $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')," \
    "$("$MOSQUITTO" -h 2>/dev/null | head -1 || true)"
  echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
  echo "broker on CPU $BROKER_CPU, midge_bench on CPU $GEN_CPU; rounds $ROUNDS, ${DURATION} s per run; medians"
  echo "load average before: $load_before, after: $load_after; took ${elapsed} s; raw results: $RESULTS"
  echo
  cat "$TABLE"
} | tee "$OUT/summary.txt"

if [ "$STRICT" = 1 ]; then
  for sc in $SCENARIOS; do
    case "$sc" in fanin1|fanin2|fanin1v5|fanin2v5|fanout1|lat1|abuse|memprobe|tlsfanin1) ;; *) continue ;; esac
    for k in lost dup ooo crashed; do
      v=$(total $k "$sc" midge)
      if [ "$v" != "-" ] && [ "$v" != 0 ]; then
        log "strict: midge $sc $k=$v"
        FAILED=1
      fi
    done
  done
fi
exit $FAILED
