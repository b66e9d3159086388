#!/usr/bin/env bash
# Installs what the tests need (Debian/Ubuntu: mosquitto-clients, paho-mqtt) and runs every
# check and test: formatting, clippy, unit, integration and interop tests.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi

apt_missing=()
command -v mosquitto_pub >/dev/null || apt_missing+=(mosquitto-clients)
# The broker package brings mosquitto_passwd and the reference broker for the
# files-in-both-directions tests (they use their own ephemeral ports).
command -v mosquitto_passwd >/dev/null || apt_missing+=(mosquitto)
command -v python3 >/dev/null || apt_missing+=(python3 python3-pip)
# WebSocket tests: MQTT.js under node, and a page in headless Chromium.
command -v node >/dev/null || apt_missing+=(nodejs npm)
command -v chromium >/dev/null || apt_missing+=(chromium)
# The TLS tests make their certificates with the openssl CLI and use openssl s_client.
command -v openssl >/dev/null || apt_missing+=(openssl)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "installing ${apt_missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if ! python3 -c 'import paho.mqtt, sys; sys.exit(0 if paho.mqtt.__version__.startswith("2.") else 1)' 2>/dev/null; then
  echo "installing paho-mqtt 2"
  python3 -m pip install -q 'paho-mqtt>=2,<3' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'paho-mqtt>=2,<3'
fi

if [ ! -d tests/js/node_modules/mqtt ]; then
  echo "installing MQTT.js (tests/js)"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
scripts/audit.sh
cargo test --all-targets "$@"
