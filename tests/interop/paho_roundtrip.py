"""paho-mqtt 2.x (MQTT 3.1.1) against the broker: QoS 0/1/2 delivery, retained, will.

Usage: python3 paho_roundtrip.py HOST PORT
Prints OK and exits 0 when every check passes; otherwise prints FAIL: ... on stderr and exits 1.
"""

import time

from pahoutil import Peer, check, run

N = 10


def expect_stream(sub, sub_qos, pub_qos):
    topic = f"paho/rt/q{pub_qos}"
    got = sub.wait_count(topic, N)
    want = [f"q{pub_qos}-{i}".encode() for i in range(N)]
    check(
        [m.payload for m in got] == want,
        f"{sub.name}: {topic} payloads {[m.payload for m in got]}, wanted {want}",
    )
    qos = min(sub_qos, pub_qos)
    check(
        [m.qos for m in got] == [qos] * N,
        f"{sub.name}: {topic} delivered at QoS {[m.qos for m in got]}, wanted {qos}",
    )
    check(not any(m.retain for m in got), f"{sub.name}: {topic} live messages had RETAIN set")
    check(not any(m.dup for m in got), f"{sub.name}: {topic} first deliveries had DUP set")


def main(host, port):
    sub1 = Peer(host, port, "paho-sub1")
    sub2 = Peer(host, port, "paho-sub2")
    check(sub1.start() is False, "paho-sub1: clean session reported session present")
    check(sub2.start() is False, "paho-sub2: clean session reported session present")
    sub1.subscribe("paho/rt/#", 1)
    sub2.subscribe("paho/rt/#", 2)
    sub1.subscribe("paho/will/#", 1)

    pub = Peer(host, port, "paho-pub")
    pub.start()
    for q in (0, 1, 2):
        for i in range(N):
            pub.publish(f"paho/rt/q{q}", f"q{q}-{i}".encode(), q)

    for sub, sub_qos in ((sub1, 1), (sub2, 2)):
        for q in (0, 1, 2):
            expect_stream(sub, sub_qos, q)
    # Nothing is delivered twice.
    time.sleep(0.3)
    for sub in (sub1, sub2):
        n = len(sub.messages)
        check(n == 3 * N, f"{sub.name}: received {n} messages, wanted {3 * N}")

    # Retained: a later subscriber gets the stored message with RETAIN set.
    pub.publish("paho/retained/status", b"online", 1, retain=True)
    late = Peer(host, port, "paho-late")
    late.start()
    late.subscribe("paho/retained/#", 2)
    got = late.wait_count("paho/retained/status", 1)
    m = got[0]
    check(m.payload == b"online", f"retained payload {m.payload!r}, wanted b'online'")
    check(m.retain is True, "retained message delivered without RETAIN")
    check(m.qos == 1, f"retained message delivered at QoS {m.qos}, wanted 1")
    time.sleep(0.3)
    check(len(late.messages) == 1, f"late subscriber got {len(late.messages)} messages, wanted 1")

    # Will: sent when the connection drops without DISCONNECT, not after a clean DISCONNECT.
    clean = Peer(host, port, "paho-will-clean", will=("paho/will/paho-will-clean", b"x", 1, False))
    clean.start()
    clean.stop()
    dropped = Peer(host, port, "paho-will", will=("paho/will/paho-will", b"gone", 1, False))
    dropped.start()
    dropped.drop()
    got = sub1.wait_count("paho/will/paho-will", 1)
    m = got[0]
    check(m.payload == b"gone", f"will payload {m.payload!r}, wanted b'gone'")
    check(m.qos == 1, f"will delivered at QoS {m.qos}, wanted 1")
    check(m.retain is False, "will delivered with RETAIN set")
    time.sleep(0.5)
    check(
        sub1.on_topic("paho/will/paho-will-clean") == [],
        "a will was published after a clean DISCONNECT",
    )
    check(len(sub1.on_topic("paho/will/paho-will")) == 1, "the will was delivered more than once")

    for p in (pub, late, sub1, sub2):
        p.stop()


if __name__ == "__main__":
    run(main)
