#!/usr/bin/env bash
# What a save costs: pause and extra memory for N retained messages and M sessions.
#   scripts/save-bench.sh [RETAINED=100000] [SESSIONS=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin midge
python3 -c 'import paho.mqtt' 2>/dev/null || python3 -m pip install -q 'paho-mqtt>=2,<3'
timeout 600 python3 scripts/save-bench.py "$@"
