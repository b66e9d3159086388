"""paho-mqtt 2.x (MQTT 3.1.1) persistent session: messages published while a clean_session=False
client is away are delivered when it comes back, and CONNACK reports the session as present.

Usage: python3 paho_session.py HOST PORT
Prints OK and exits 0 when every check passes; otherwise prints FAIL: ... on stderr and exits 1.
"""

import time

from pahoutil import Peer, check, run

ID = "paho-durable"


def main(host, port):
    first = Peer(host, port, ID, clean_session=False)
    check(first.start() is False, "first connection of a new client reported session present")
    first.subscribe("paho/durable/q1", 1)
    first.subscribe("paho/durable/q2", 2)
    first.stop()

    pub = Peer(host, port, "paho-durable-pub")
    pub.start()
    for i in range(5):
        pub.publish("paho/durable/q1", f"one-{i}".encode(), 1)
        pub.publish("paho/durable/q2", f"two-{i}".encode(), 2)
    pub.stop()

    # Same client id, clean_session=False, and no SUBSCRIBE this time.
    back = Peer(host, port, ID, clean_session=False)
    check(back.start() is True, "reconnect with clean_session=False: session present was not set")
    for topic, prefix, qos in (("paho/durable/q1", "one", 1), ("paho/durable/q2", "two", 2)):
        got = back.wait_count(topic, 5)
        want = [f"{prefix}-{i}".encode() for i in range(5)]
        check(
            [m.payload for m in got] == want,
            f"{topic}: queued payloads {[m.payload for m in got]}, wanted {want}",
        )
        check([m.qos for m in got] == [qos] * 5, f"{topic}: QoS {[m.qos for m in got]}, wanted {qos}")
    time.sleep(0.3)
    check(len(back.messages) == 10, f"received {len(back.messages)} messages, wanted 10")
    back.stop()

    # A clean session discards it: the next persistent connection starts afresh.
    wipe = Peer(host, port, ID, clean_session=True)
    check(wipe.start() is False, "clean_session=True reported session present")
    wipe.stop()
    again = Peer(host, port, ID, clean_session=False)
    check(again.start() is False, "session survived a clean_session=True connection")
    again.stop()


if __name__ == "__main__":
    run(main)
