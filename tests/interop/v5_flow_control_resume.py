"""MQTT 5 flow control on a resumed session [MQTT-3.3.4-9] [MQTT-4.4.0-1]: a subscriber with
Receive Maximum 5 gets 5 of 8 QoS 1 messages and acknowledges none; its connection drops; it
reconnects (Clean Start 0) with Receive Maximum 2. The broker must resend the unacknowledged
messages (DUP set) but never have more than 2 unacknowledged at once on the new connection:
exactly 2 arrive, then each 2 PUBACKs let 2 more through, all 8 arrive once, in order.

"Exactly N" is checked by waiting for N and then seeing nothing more for a short while.

Usage: python3 v5_flow_control_resume.py HOST PORT
"""

import time

from v5_util import PacketTypes, Peer, props, run, say

QUIET = 0.7
ID = "v5-fcr-sub"


def cprops(receive_max):
    return props(PacketTypes.CONNECT, ReceiveMaximum=receive_max, SessionExpiryInterval=60)


def settled(peer, n):
    """Waits for n messages, then lets QUIET seconds pass; returns the payloads."""
    peer.wait_count(n)
    time.sleep(QUIET)
    with peer.cv:
        return [m.payload.decode() for m in peer.messages]


def main(host, port):
    first = Peer(host, port, ID, manual_ack=True)
    first.start(connect_props=cprops(5))
    first.subscribe("fcr/t", 1)
    pub = Peer(host, port, "v5-fcr-pub")
    pub.start()
    for i in range(1, 9):
        pub.publish("fcr/t", f"m{i}".encode(), 1)
    say("first connection (Receive Maximum 5), no PUBACK:", settled(first, 5))
    first.drop()

    again = Peer(host, port, ID, manual_ack=True)
    present, _ = again.start(clean_start=False, connect_props=cprops(2))
    say("reconnected (Receive Maximum 2), session present:", present)
    got = settled(again, 2)
    say("after reconnecting, no PUBACK:", got)
    say("  DUP:", [bool(m.dup) for m in again.messages[:2]])
    acked = 0
    for n in (4, 6, 8):
        with again.cv:
            todo = again.messages[acked:n - 2]
        for m in todo:
            again.c.ack(m.mid, 1)
        acked = n - 2
        say(f"after {acked} PUBACKs:", settled(again, n))
    with again.cv:
        for m in again.messages[acked:]:
            again.c.ack(m.mid, 1)
    pub.stop()
    again.stop()


if __name__ == "__main__":
    run(main)
