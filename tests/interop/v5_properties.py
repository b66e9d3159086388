"""MQTT 5 PUBLISH properties forwarded unchanged [MQTT-3.3.2-4] [MQTT-3.3.2-15]
[MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]: Payload Format Indicator, Content Type,
Response Topic, Correlation Data and User Properties (in order, duplicates kept) reach an
MQTT 5 subscriber as the MQTT 5 publisher sent them, at QoS 0, 1 and 2, and a retained
message keeps them for a later subscriber.

Usage: python3 v5_properties.py HOST PORT
"""

from v5_util import PacketTypes, Peer, describe, props, run, say


def main(host, port):
    sub = Peer(host, port, "v5-props-sub")
    sub.start()
    sub.subscribe("props/t", 2)
    pub = Peer(host, port, "v5-props-pub")
    pub.start()
    for qos in (0, 1, 2):
        p = props(
            PacketTypes.PUBLISH,
            PayloadFormatIndicator=1,
            ContentType="text/plain; charset=utf-8",
            ResponseTopic="props/reply",
            CorrelationData=b"\x00\x01corr\xff",
            UserProperty=[("b", "2"), ("a", "1"), ("b", "3"), ("k\u00e9y", "")],
        )
        rc = pub.publish("props/t", f"hello at qos {qos}".encode(), qos, pub_props=p)
        say(f"publish qos {qos} ack", rc)
    for m in sub.wait_count(3):
        say("got", describe(m))
    # Without properties, none are added.
    pub.publish("props/t", b"bare", 1)
    say("got", describe(sub.wait_count(4)[3]))
    # A retained message keeps its properties for a later subscriber.
    p = props(
        PacketTypes.PUBLISH,
        ContentType="application/json",
        UserProperty=[("z", "26"), ("a", "1")],
    )
    pub.publish("props/retained", b"{}", 1, retain=True, pub_props=p)
    late = Peer(host, port, "v5-props-late")
    late.start()
    late.subscribe("props/retained", 1)
    say("later subscriber got", describe(late.wait_count(1)[0]))
    late.stop()
    pub.stop()
    sub.stop()


if __name__ == "__main__":
    run(main)
