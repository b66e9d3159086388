"""MQTT 5 flow control [MQTT-3.3.4-9]: a subscriber with Receive Maximum 2 that acknowledges
nothing (paho manual acks) has at most 2 QoS 1 messages in flight: of 5 published it gets
exactly 2; each PUBACK lets one more through; all 5 arrive once each, in order.

"Exactly N" is checked by waiting for N and then seeing nothing more for a short while.

Usage: python3 v5_flow_control.py HOST PORT
"""

import time

from v5_util import PacketTypes, Peer, props, run, say

QUIET = 0.7


def settled(peer, n):
    """Waits for n messages, then lets QUIET seconds pass; returns the payloads."""
    peer.wait_count(n)
    time.sleep(QUIET)
    with peer.cv:
        return [m.payload.decode() for m in peer.messages]


def main(host, port):
    sub = Peer(host, port, "v5-fc-sub", manual_ack=True)
    sub.start(connect_props=props(PacketTypes.CONNECT, ReceiveMaximum=2))
    sub.subscribe("fc/t", 1)
    pub = Peer(host, port, "v5-fc-pub")
    pub.start()
    for i in range(1, 6):
        pub.publish("fc/t", f"m{i}".encode(), 1)
    say("before any PUBACK:", settled(sub, 2))
    sub.c.ack(sub.messages[0].mid, 1)
    say("after 1 PUBACK:", settled(sub, 3))
    sub.c.ack(sub.messages[1].mid, 1)
    say("after 2 PUBACKs:", settled(sub, 4))
    sub.c.ack(sub.messages[2].mid, 1)
    sub.c.ack(sub.messages[3].mid, 1)
    say("after 4 PUBACKs:", settled(sub, 5))
    sub.c.ack(sub.messages[4].mid, 1)
    say("duplicates:", sum(1 for m in sub.messages if m.dup))
    pub.stop()
    sub.stop()


if __name__ == "__main__":
    run(main)
