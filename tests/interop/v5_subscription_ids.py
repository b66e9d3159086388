"""MQTT 5 Subscription Identifiers [MQTT-3.3.4-3] [MQTT-3.3.4-4]: one client subscribes to
a/# with identifier 7 and to a/+ with identifier 9 (two SUBSCRIBEs); a message on a/b matches
both and arrives once carrying both identifiers; one on a/c/d matches a/# only and carries 7.
A retained message sent on subscribing carries that subscription's identifier.

Usage: python3 v5_subscription_ids.py HOST PORT
"""

from v5_util import PacketTypes, Peer, describe, props, run, say


def main(host, port):
    pub = Peer(host, port, "v5-sid-pub")
    pub.start()
    pub.publish("sid/r", b"retained", 1, retain=True)

    c = Peer(host, port, "v5-sid-sub")
    c.start()
    c.subscribe("a/#", 1, sub_props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    c.subscribe("a/+", 1, sub_props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9))
    pub.publish("a/b", b"both", 1)
    pub.publish("a/c/d", b"only a/#", 1)
    pub.publish("a/end", b"marker", 1)
    for m in c.wait_payload(b"marker"):
        say("got", describe(m))
    c.take()
    c.subscribe("sid/#", 1, sub_props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=268435455))
    for m in c.wait_count(1):
        say("got", describe(m))
    c.stop()
    pub.stop()


if __name__ == "__main__":
    run(main)
