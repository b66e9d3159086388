"""Mixed protocol versions: an MQTT 3.1.1 publisher's message reaches an MQTT 5 subscriber
(with no properties), and an MQTT 5 publisher's message with properties reaches an MQTT 3.1.1
subscriber with its payload intact (3.1.1 has no properties to carry).

Usage: python3 v5_mixed_versions.py HOST PORT
"""

from v5_util import PacketTypes, Peer, describe, mqtt, props, run, say


def main(host, port):
    sub5 = Peer(host, port, "mix-sub5")
    sub5.start()
    sub5.subscribe("mix/#", 1)
    sub3 = Peer(host, port, "mix-sub311", protocol=mqtt.MQTTv311)
    sub3.start()
    sub3.subscribe("mix/#", 1)

    pub3 = Peer(host, port, "mix-pub311", protocol=mqtt.MQTTv311)
    pub3.start()
    pub3.publish("mix/from311", b"from 3.1.1 \x00\xff", 1)
    pub5 = Peer(host, port, "mix-pub5")
    pub5.start()
    p = props(
        PacketTypes.PUBLISH,
        UserProperty=[("k", "v"), ("k2", "v2")],
        ContentType="application/octet-stream",
        CorrelationData=b"cd",
        ResponseTopic="mix/reply",
        MessageExpiryInterval=100,
    )
    pub5.publish("mix/from5", b"from 5 \x00\xff", 2, pub_props=p)
    for peer in (sub5, sub3):
        for m in peer.wait_count(2):
            say(peer.name, "got", describe(m))
    for peer in (pub3, pub5, sub3, sub5):
        peer.stop()


if __name__ == "__main__":
    run(main)
