"""MQTT 5 Message Expiry Interval [MQTT-3.3.2-5] [MQTT-3.3.2-6]: of QoS 1 messages queued for
an offline persistent subscriber, one with interval 1 s is not delivered when the subscriber
returns 2.5 s later, one with 60 s is delivered with the interval reduced by the wait (57 to
60), one without stays without; a retained message with interval 1 s is gone for a new
subscriber 2.5 s later, while one with 60 s is delivered with the interval reduced and one
without an interval is delivered as it was.

Usage: python3 v5_message_expiry.py HOST PORT
"""

import time

from v5_util import PacketTypes, Peer, describe, props, run, say

ID = "v5-me-sub"


def mei(seconds):
    return props(PacketTypes.PUBLISH, MessageExpiryInterval=seconds)


def main(host, port):
    sub = Peer(host, port, ID)
    sub.start(connect_props=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    sub.subscribe("me/t", 1)
    sub.stop()

    pub = Peer(host, port, "v5-me-pub")
    pub.start()
    pub.publish("me/t", b"expires in 1 s", 1, pub_props=mei(1))
    pub.publish("me/t", b"expires in 60 s", 1, pub_props=mei(60))
    pub.publish("me/t", b"never expires", 1)
    pub.publish("mer/gone", b"retained for 1 s", 1, retain=True, pub_props=mei(1))
    pub.publish("mer/kept", b"retained for good", 1, retain=True)
    pub.publish("mer/long", b"retained for 60 s", 1, retain=True, pub_props=mei(60))
    time.sleep(2.5)

    back = Peer(host, port, ID)
    present, _ = back.start(
        clean_start=False, connect_props=props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    )
    say("session present:", present)
    pub.publish("me/t", b"marker", 1)
    for m in back.wait_payload(b"marker"):
        say("got", describe(m))
        left = getattr(m.properties, "MessageExpiryInterval", None)
        if left is not None:
            say("  MessageExpiryInterval between 57 and 60:", 57 <= left <= 60)
    back.take()

    back.subscribe("mer/#", 1)
    back.publish("mer/marker", b"marker", 1)
    got = back.wait_payload(b"marker")
    # Retained messages come in no particular order: sorted by topic, the marker last.
    for m in sorted(got[:-1], key=lambda m: m.topic) + got[-1:]:
        say("retained check got", describe(m))
        left = getattr(m.properties, "MessageExpiryInterval", None)
        if left is not None:
            say("  MessageExpiryInterval between 57 and 60:", 57 <= left <= 60)
    back.stop()
    pub.stop()


if __name__ == "__main__":
    run(main)
