"""MQTT 5 shared subscriptions are not offered: CONNACK says Shared Subscription Available 0
(MQTT 5 section 3.2.2.3.15), and a SUBSCRIBE to $share/g/t is refused with reason 0x9E (Shared
Subscriptions not supported, section 3.9.3) while the other filter of the same SUBSCRIBE is
granted; the client stays connected.

Usage: python3 v5_shared.py HOST PORT
"""

from v5_util import Peer, SubscribeOptions, run, say


def main(host, port):
    c = Peer(host, port, "v5-shared")
    _, cprops = c.start()
    say("SharedSubscriptionAvailable", getattr(cprops, "SharedSubscriptionAvailable", None))
    say("suback", c.subscribe_raw([("$share/g/t", SubscribeOptions(qos=1))]))
    say(
        "suback",
        c.subscribe_raw([("$share/g/t", SubscribeOptions(qos=1)), ("shared/plain", SubscribeOptions(qos=1))]),
    )
    say("ack", c.publish("shared/plain", b"still connected", 1))
    say("got", c.wait_count(1)[0].payload)
    say("disconnects", c.disconnects)
    c.stop()


if __name__ == "__main__":
    run(main)
