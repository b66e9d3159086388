"""MQTT 5 Maximum Packet Size on a resumed session [MQTT-3.1.2-24] [MQTT-3.1.2-25]: a
subscriber without a limit gets a 500-byte and a small QoS 1 message and acknowledges neither;
its connection drops; it reconnects (Clean Start 0) announcing Maximum Packet Size 100. The
broker resends unacknowledged messages [MQTT-4.4.0-1], but must not send the 500-byte one to
a client that cannot take it: only the small one arrives (DUP set), then a later message.

Usage: python3 v5_max_packet_resume.py HOST PORT
"""

from v5_util import PacketTypes, Peer, props, run, say

ID = "v5-mpr-sub"


def show(msgs):
    return [(len(m.payload), m.payload[:7].decode(), int(m.dup)) for m in msgs]


def main(host, port):
    first = Peer(host, port, ID, manual_ack=True)
    first.start(connect_props=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    first.subscribe("mpr/t", 1)
    pub = Peer(host, port, "v5-mpr-pub")
    pub.start()
    pub.publish("mpr/t", b"x" * 500, 1)
    pub.publish("mpr/t", b"small 1", 1)
    say("first connection, no PUBACK:", show(first.wait_count(2)))
    first.drop()

    again = Peer(host, port, ID)
    present, _ = again.start(
        clean_start=False,
        connect_props=props(PacketTypes.CONNECT, SessionExpiryInterval=60, MaximumPacketSize=100),
    )
    say("reconnected (Maximum Packet Size 100), session present:", present)
    pub.publish("mpr/t", b"small 2", 1)
    say("after reconnecting:", show(again.wait_payload(b"small 2")))
    say("disconnects:", again.disconnects)
    pub.stop()
    again.stop()


if __name__ == "__main__":
    run(main)
