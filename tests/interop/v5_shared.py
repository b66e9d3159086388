"""MQTT 5 shared subscriptions (section 4.8.2): CONNACK leaves Shared Subscription Available at
its default (available); two members of $share/g/jobs/# share 10 messages, each message going
to exactly one of them; an ordinary subscriber to the same filter gets all 10; a shared filter
with an empty group name ($share//x) is granted, as mosquitto 2.0 grants it.

Usage: python3 v5_shared.py HOST PORT
"""

from v5_util import Peer, SubscribeOptions, run, say


def main(host, port):
    a = Peer(host, port, "v5-share-a")
    b = Peer(host, port, "v5-share-b")
    plain = Peer(host, port, "v5-share-plain")
    pub = Peer(host, port, "v5-share-pub")
    _, cprops = a.start()
    say("SharedSubscriptionAvailable", getattr(cprops, "SharedSubscriptionAvailable", None))
    b.start()
    plain.start()
    pub.start()
    say("suback", a.subscribe_raw([("$share/g/jobs/#", SubscribeOptions(qos=1))]))
    say("suback", b.subscribe_raw([("$share/g/jobs/#", SubscribeOptions(qos=1))]))
    say("suback", plain.subscribe_raw([("jobs/#", SubscribeOptions(qos=1))]))
    for i in range(10):
        pub.publish("jobs/x", f"job {i}".encode(), 1)
    plain.wait_count(10)
    a.wait(lambda: len(a.messages) + len(b.messages) >= 10, "10 messages between the members")
    got_a = [m.payload for m in a.messages]
    got_b = [m.payload for m in b.messages]
    say("total", len(got_a) + len(got_b))
    say("each got some", len(got_a) > 0 and len(got_b) > 0)
    say("no message twice", len(set(got_a + got_b)) == len(got_a) + len(got_b))
    say("plain got", len(plain.messages))
    say("suback", a.subscribe_raw([("$share//x", SubscribeOptions(qos=1))]))
    say("disconnects", a.disconnects)
    for p in (a, b, plain, pub):
        p.stop()


if __name__ == "__main__":
    run(main)
