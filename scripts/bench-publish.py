#!/usr/bin/env python3
"""Publishes N QoS 1 messages of 64 bytes to 127.0.0.1:PORT on TOPIC over one raw MQTT 3.1.1
connection and waits for every PUBACK (scripts/bench-bridge.sh: the queue-memory figure).

    bench-publish.py PORT TOPIC N
"""
import socket
import struct
import sys


def packet(first, body):
    n, rl = len(body), bytearray()
    while True:
        b, n = n % 128, n // 128
        rl.append(b | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(rl) + body


def string(s):
    return struct.pack(">H", len(s)) + s


port, topic, count = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(packet(0x10, string(b"MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + string(b"bench-pub")))
assert s.recv(4) == b"\x20\x02\x00\x00", "CONNACK"
batch = bytearray()
for i in range(count):
    pid = i % 65535 + 1
    batch += packet(0x32, string(topic) + struct.pack(">H", pid) + b"payload-%056d" % i)
    if len(batch) > 65536 or i == count - 1:
        s.sendall(batch)
        batch = bytearray()
acked, buf = 0, b""
while acked < count:
    data = s.recv(65536)
    if not data:
        sys.exit("connection closed after %d PUBACKs" % acked)
    buf += data
    acked += len(buf) // 4
    buf = buf[len(buf) // 4 * 4:]
s.sendall(b"\xe0\x00")
s.close()
print(acked)
