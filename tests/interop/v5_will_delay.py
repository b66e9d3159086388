"""MQTT 5 Will Delay Interval (section 3.1.3.2.2) [MQTT-3.1.3-9]: a client with a will
(Will Delay Interval 2 s, Session Expiry Interval 10 s) whose connection drops without
DISCONNECT has its will published about 2 s later, not before 1.5 s, with the will's
properties; when the client
reconnects (Clean Start 0) within the delay, the will is not published at all.

Usage: python3 v5_will_delay.py HOST PORT
"""

import time

from v5_util import PacketTypes, Peer, describe, props, run, say


def will(payload):
    wprops = props(
        PacketTypes.WILLMESSAGE,
        WillDelayInterval=2,
        ContentType="text/plain",
        UserProperty=[("why", "gone"), ("who", "a")],
    )
    return ("will/t", payload, 1, False, wprops)


def connect_props():
    return props(PacketTypes.CONNECT, SessionExpiryInterval=10)


def main(host, port):
    watcher = Peer(host, port, "v5-wd-watcher")
    watcher.start()
    watcher.subscribe("will/t", 1)

    # 1. The will arrives after the delay.
    a = Peer(host, port, "v5-wd-a", will=will(b"will of a"))
    a.start(connect_props=connect_props())
    a.drop()
    t0 = time.monotonic()
    got = watcher.wait_count(1)
    elapsed = time.monotonic() - t0
    for m in got:
        say("will of a arrived:", describe(m))
    say("after at least 1.5 s:", elapsed >= 1.5, "and at most 4 s:", elapsed <= 4.0)
    watcher.take()

    # 2. Reconnecting within the delay cancels it.
    b = Peer(host, port, "v5-wd-b", will=will(b"will of b"))
    b.start(connect_props=connect_props())
    b.drop()
    time.sleep(0.5)
    b2 = Peer(host, port, "v5-wd-b")
    present, _ = b2.start(clean_start=False, connect_props=connect_props())
    say("b reconnected, session present:", present)
    time.sleep(2.5)  # past the 2 s delay
    # A marker: a will published meanwhile would have arrived before it.
    b2.publish("will/t", b"marker", 1)
    got = watcher.wait_payload(b"marker")
    say("watcher got:", [m.payload.decode() for m in got])
    b2.stop()
    watcher.stop()


if __name__ == "__main__":
    run(main)
