"""MQTT 5 PUBACK reason codes (section 3.4.2.1): a QoS 1 publish that matches no subscription
is acknowledged with 0x10 (No matching subscribers); once there is a subscriber, with 0x00;
a QoS 2 publish with no subscribers completes (PUBCOMP 0x00).

Usage: python3 v5_puback_reason.py HOST PORT
"""

from v5_util import Peer, run, say


def main(host, port):
    pub = Peer(host, port, "v5-pa-pub")
    pub.start()
    say("qos 1, no subscribers: PUBACK reason", pub.publish("pa/t", b"nobody", 1))
    sub = Peer(host, port, "v5-pa-sub")
    sub.start()
    sub.subscribe("pa/t", 1)
    say("qos 1, one subscriber: PUBACK reason", pub.publish("pa/t", b"somebody", 1))
    say("qos 2, no subscribers: PUBCOMP reason", pub.publish("pa/none", b"nobody", 2))
    sub.stop()
    pub.stop()


if __name__ == "__main__":
    run(main)
