"""MQTT 5 Session Expiry Interval (section 3.1.2.11.2) [MQTT-3.1.2-23]: a client with Session
Expiry Interval 2 that subscribed at QoS 1 and disconnected gets the messages published while
it was away when it reconnects (Clean Start 0) within 2 s, with Session Present 1
[MQTT-3.2.2-3]; 3 s after it next disconnects, the session is gone: a QoS 1 publish to its
topic is acknowledged with 0x10 (no matching subscribers) and a reconnect with Clean Start 0
has Session Present 0 [MQTT-3.2.2-3].

Usage: python3 v5_session_expiry.py HOST PORT
"""

import time

from v5_util import PacketTypes, Peer, props, run, say

ID = "v5-se-sub"


def expiry():
    return props(PacketTypes.CONNECT, SessionExpiryInterval=2)


def main(host, port):
    first = Peer(host, port, ID)
    present, _ = first.start(clean_start=True, connect_props=expiry())
    say("first connection, session present:", present)
    first.subscribe("se/t", 1)
    first.stop()

    pub = Peer(host, port, "v5-se-pub")
    pub.start()
    for i in (1, 2, 3):
        say("publish while away, ack", pub.publish("se/t", f"away {i}".encode(), 1))

    back = Peer(host, port, ID)
    present, _ = back.start(clean_start=False, connect_props=expiry())
    say("reconnect within 2 s, session present:", present)
    say("got:", [(m.payload.decode(), m.qos) for m in back.wait_count(3)])
    back.stop()

    time.sleep(3.0)
    say("publish after expiry, ack", pub.publish("se/t", b"too late", 1))
    late = Peer(host, port, ID)
    present, _ = late.start(clean_start=False, connect_props=expiry())
    say("reconnect after 3 s, session present:", present)
    late.subscribe("se/marker", 1)
    pub.publish("se/marker", b"marker", 1)
    say("got:", [m.payload.decode() for m in late.wait_payload(b"marker")])
    late.stop()
    pub.stop()


if __name__ == "__main__":
    run(main)
