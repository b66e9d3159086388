#!/usr/bin/env python3
"""Measures what saving costs: the pause and the extra memory when midge writes its
persistence file holding N retained messages and M persistent sessions.

    scripts/save-bench.sh [RETAINED] [SESSIONS]      (defaults: 100000 10000)

Starts target/release/midge on 127.0.0.1 with persistence in a temporary directory, fills it
with paho-mqtt, sends SIGUSR1, and reads the save time from midge's log and the memory from
/proc (VmRSS before, VmHWM after). Every step is bounded in time."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt

RETAINED = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
SESSIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "midge")


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    d = tempfile.mkdtemp(prefix="midge-save-")
    port = free_port()
    conf = os.path.join(d, "midge.conf")
    log = os.path.join(d, "midge.log")
    with open(conf, "w") as f:
        f.write(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {d}/\nautosave_interval 0\nmax_queued_messages 0\n"
            f"log_dest file {log}\nsys_interval 0\nconnection_messages false\n"
        )
    broker = subprocess.Popen([BIN, "-c", conf])
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        rss0 = status(broker.pid, "VmRSS:")
        t0 = time.time()
        # Persistent sessions, each with one subscription.
        for i in range(SESSIONS):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"s{i}", clean_session=False)
            c.connect("127.0.0.1", port)
            c.subscribe(f"sessions/{i}/#", qos=1)
            c.loop(timeout=0.05)
            c.disconnect()
            c.loop(timeout=0.01)
        # Retained messages, 64-byte payloads.
        p = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="filler")
        p.connect("127.0.0.1", port)
        p.loop_start()
        payload = b"x" * 64
        for i in range(RETAINED):
            p.publish(f"retained/{i // 1000}/{i}", payload, qos=0, retain=True)
            if i % 5000 == 0:
                time.sleep(0.01)
        # A QoS 1 publish after them: its acknowledgement means all were handled.
        p.publish("sync", b"", qos=1).wait_for_publish(timeout=60)
        p.loop_stop()
        p.disconnect()
        fill_s = time.time() - t0
        rss_before = status(broker.pid, "VmRSS:")
        hwm_before = status(broker.pid, "VmHWM:")
        broker.send_signal(signal.SIGUSR1)
        saved = None
        deadline = time.time() + 60
        while time.time() < deadline and saved is None:
            time.sleep(0.05)
            with open(log) as f:
                m = re.search(r"Saved (\d+) retained messages and (\d+) sessions to .* \((\d+) bytes, (\d+) ms\)", f.read())
            if m:
                saved = m
        if saved is None:
            sys.exit("no save logged within 60 s")
        hwm_after = status(broker.pid, "VmHWM:")
        print(f"filled in {fill_s:.1f} s: {saved.group(1)} retained messages, {saved.group(2)} sessions")
        print(f"RSS idle {rss0} kB, before save {rss_before} kB")
        print(f"save: {saved.group(4)} ms, file {int(saved.group(3)) / 1e6:.1f} MB")
        print(f"peak RSS before save {hwm_before} kB, after save {hwm_after} kB: "
              f"+{hwm_after - hwm_before} kB during the save")
    finally:
        broker.terminate()
        broker.wait(timeout=10)


main()
