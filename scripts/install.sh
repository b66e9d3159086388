#!/usr/bin/env bash
# scripts/install.sh: install midge on a Raspberry Pi (or any systemd Linux box) and start it.
#
#   sudo scripts/install.sh [BINARY]          install and start (or restart) the service
#   scripts/install.sh --root DIR [BINARY]    stage the same files under DIR instead; no systemctl
#   scripts/install.sh --no-start [BINARY]    install and enable, but do not start or restart
#
# BINARY is the midge executable for this machine, e.g. midge-armv6 (Pi Zero / Zero W / Pi 1, and
# any 32-bit Pi OS) or midge-aarch64 (Pi 3 / 4 / 5 with a 64-bit kernel). Without it, the script
# looks next to its scripts/ folder for `midge`, then for the midge-<arch> that fits `uname -m`.
# Run it from a checkout of the repository, or from a copy of its conf/ and scripts/ folders
# placed next to the binary, e.g. ~/midge/{midge-armv6,conf/,scripts/}.
#
# What it does:
#   BINARY              -> /usr/local/bin/midge                   (replaced)
#   midge_passwd-<arch> -> /usr/local/bin/midge_passwd            (if next to BINARY; replaced)
#   conf/midge.conf     -> /etc/midge/midge.conf                  (only if absent: never overwritten)
#   conf/midge.service  -> /etc/systemd/system/midge.service      (replaced)
#   conf/midge.init     -> /etc/init.d/midge                      (replaced; for systems without systemd)
#   a system user `midge` (no login, no home) and /var/lib/midge owned by it, if missing
#   systemctl daemon-reload; systemctl enable --now midge (restart if it was already running);
#   without systemd: /etc/init.d/midge start
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

SRC=$(cd "$(dirname "$0")/.." && pwd)
DEST=/
START=1
BIN=

while [[ $# -gt 0 ]]; do
  case $1 in
    --root) [[ $# -ge 2 ]] || die "--root needs a directory"; DEST=$2; shift 2 ;;
    --root=*) DEST=${1#*=}; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *) [[ -z $BIN ]] || die "only one binary, please"; BIN=$1; shift ;;
  esac
done

STAGING=0
if [[ $DEST != / ]]; then
  STAGING=1
  mkdir -p "$DEST"
  DEST=$(cd "$DEST" && pwd)
  [[ $DEST != / ]] || STAGING=0
fi
if [[ $STAGING == 0 && $(id -u) -ne 0 ]]; then
  die "run as root (sudo $0 ...), or use --root DIR to stage the files elsewhere"
fi

# ------------------------------------------------------------------ what to install
CONF=$SRC/conf/midge.conf
UNIT=$SRC/conf/midge.service
[[ -f $CONF ]] || die "$CONF not found: keep conf/ next to scripts/"
[[ -f $UNIT ]] || die "$UNIT not found: keep conf/ next to scripts/"

if [[ -z $BIN ]]; then
  case $(uname -m) in
    aarch64|arm64) guesses=(midge midge-aarch64 midge-armv6) ;;
    arm*) guesses=(midge midge-armv6) ;;
    *) guesses=(midge) ;;
  esac
  for g in "${guesses[@]}"; do
    if [[ -f $SRC/$g ]]; then BIN=$SRC/$g; break; fi
  done
  [[ -n $BIN ]] || die "no binary given and none of ${guesses[*]} next to scripts/ in $SRC"
fi
[[ -f $BIN ]] || die "$BIN: no such file"
[[ $(head -c 4 "$BIN" | od -An -c | tr -d ' ') == 177ELF ]] || die "$BIN is not an executable (ELF) file"

# The binary must run here and be midge; when staging, it may be for another machine.
if [[ ! -x $BIN ]]; then
  if chmod u+x "$BIN" 2>/dev/null; then say "made $BIN executable"; fi
fi
if help=$("$BIN" -h 2>&1) && grep -q '^Usage: midge' <<<"$help"; then
  say "binary: $BIN ($(head -n1 <<<"$help"))"
elif [[ $STAGING == 1 ]]; then
  say "binary: $BIN (not run: it does not run on this machine; fine for staging)"
else
  echo "$help" | head -n 5 >&2
  die "$BIN does not run here as 'midge -h': wrong binary for this CPU ($(uname -m))? Pi Zero/1 and 32-bit OS: midge-armv6; 64-bit OS: midge-aarch64"
fi

# midge_passwd (password files, as mosquitto_passwd) if it lies next to the binary with the
# same suffix: midge-armv6 -> midge_passwd-armv6, midge -> midge_passwd.
PASSWD=
case $(basename "$BIN") in
  midge) PASSWD=$(dirname "$BIN")/midge_passwd ;;
  midge-*) PASSWD=$(dirname "$BIN")/midge_passwd-$(basename "$BIN" | sed 's/^midge-//') ;;
esac
[[ -n $PASSWD && -f $PASSWD ]] || PASSWD=

# ------------------------------------------------------------------ files
p() { echo "${DEST%/}$1"; } # a path under the destination root

# Replace a file by renaming a complete copy over it: works while the old binary is running.
put() { # SRC DEST MODE
  local tmp
  mkdir -p "$(dirname "$2")"
  tmp=$(mktemp "$2.XXXXXX")
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
}

put "$BIN" "$(p /usr/local/bin/midge)" 0755
say "installed $(p /usr/local/bin/midge)"
if [[ -n $PASSWD ]]; then
  put "$PASSWD" "$(p /usr/local/bin/midge_passwd)" 0755
  say "installed $(p /usr/local/bin/midge_passwd) (from $PASSWD)"
fi

if [[ -e $(p /etc/midge/midge.conf) ]]; then
  say "kept the existing $(p /etc/midge/midge.conf) (never overwritten; the example is $CONF)"
else
  put "$CONF" "$(p /etc/midge/midge.conf)" 0644
  say "installed $(p /etc/midge/midge.conf) (listener 1883, allow_anonymous true: open to your network)"
fi

put "$UNIT" "$(p /etc/systemd/system/midge.service)" 0644
say "installed $(p /etc/systemd/system/midge.service)"
if [[ -f $SRC/conf/midge.init ]]; then
  put "$SRC/conf/midge.init" "$(p /etc/init.d/midge)" 0755
  say "installed $(p /etc/init.d/midge) (for systems without systemd)"
fi

# The service's own user: midge drops root privileges to it, and the unit runs as it.
if [[ $STAGING == 0 ]]; then
  if ! id midge >/dev/null 2>&1; then
    if command -v useradd >/dev/null; then
      useradd --system --no-create-home --home-dir /var/lib/midge --shell /usr/sbin/nologin midge
    else
      adduser -S -D -H -h /var/lib/midge -s /sbin/nologin midge # BusyBox
    fi
    say "created the system user midge"
  fi
  mkdir -p /var/lib/midge
  chown midge: /var/lib/midge 2>/dev/null || chown midge /var/lib/midge
else
  mkdir -p "$(p /var/lib/midge)"
fi

# ------------------------------------------------------------------ service
if [[ $STAGING == 1 ]]; then
  say "staged under $DEST; on the real system this would now run:"
  echo "  systemctl daemon-reload"
  echo "  systemctl enable --now midge   (systemctl restart midge if it was running)"
  exit 0
fi
if ! command -v systemctl >/dev/null || [[ ! -d /run/systemd/system ]]; then
  say "systemd is not running here: using the init script"
  if [[ $START == 1 ]]; then
    /etc/init.d/midge restart
  fi
  if command -v update-rc.d >/dev/null; then
    update-rc.d midge defaults >/dev/null 2>&1 || true
  fi
  exit 0
fi

# Another broker on port 1883 (mosquitto) would make midge fail to start: say so, change nothing.
if systemctl is-active --quiet mosquitto 2>/dev/null; then
  say "WARNING: mosquitto is running and probably holds port 1883; midge will not start until it stops:"
  echo "  sudo systemctl disable --now mosquitto"
fi

was_active=0
systemctl is-active --quiet midge && was_active=1
systemctl daemon-reload
if [[ $START == 0 ]]; then
  systemctl enable midge
  say "enabled (starts at boot); start it now with: sudo systemctl start midge"
  exit 0
fi
systemctl enable --now midge
if [[ $was_active == 1 ]]; then
  systemctl restart midge # pick up the new binary
fi
sleep 1
if systemctl is-active --quiet midge; then
  say "midge is running. Check it with: systemctl status midge; logs: journalctl -u midge"
else
  systemctl --no-pager status midge || true
  die "midge did not stay up: see journalctl -u midge"
fi
