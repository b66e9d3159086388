"""paho-mqtt 2.x over TLS with a client certificate: QoS 1 round trip between two clients.

Usage: python3 paho_tls.py HOST PORT CAFILE CERTFILE KEYFILE [tcp|websockets]
Prints OK and exits 0 when every check passes; otherwise prints FAIL: ... on stderr and exits 1.
"""

import os
import ssl
import sys

from pahoutil import Failure, Peer, check


def main(host, port, cafile, certfile, keyfile, transport="tcp"):
    peers = []
    for name in ("paho-tls-sub", "paho-tls-pub"):
        p = Peer(host, port, name, transport=transport)
        p.c.tls_set(ca_certs=cafile, certfile=certfile, keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED)
        p.start()
        sock = p.c.socket()
        # Over WebSocket paho wraps the TLS socket.
        sock = getattr(sock, "_socket", sock)
        version = sock.version()
        check(version in ("TLSv1.2", "TLSv1.3"), f"{name}: negotiated {version}")
        peers.append(p)
    sub, pub = peers
    sub.subscribe("paho/tls/#", 1)
    for i in range(5):
        pub.publish("paho/tls/q1", f"m{i}".encode(), 1)
    got = sub.wait_count("paho/tls/q1", 5)
    want = [f"m{i}".encode() for i in range(5)]
    check([m.payload for m in got] == want, f"payloads {[m.payload for m in got]}, wanted {want}")
    check(all(m.qos == 1 for m in got), "not delivered at QoS 1")
    pub.stop()
    sub.stop()


if __name__ == "__main__":
    if len(sys.argv) not in (6, 7):
        print(f"usage: {sys.argv[0]} HOST PORT CAFILE CERTFILE KEYFILE [tcp|websockets]", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print("OK")
    sys.stdout.flush()
    os._exit(0)
