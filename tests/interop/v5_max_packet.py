"""MQTT 5 Maximum Packet Size [MQTT-3.1.2-24] [MQTT-3.1.2-25]: a subscriber that accepts
packets of at most 100 bytes gets a small message, not a 500-byte one (silently discarded for
it: it stays connected), and a later small message; a subscriber without a limit gets all
three.

Usage: python3 v5_max_packet.py HOST PORT
"""

from v5_util import PacketTypes, Peer, props, run, say


def main(host, port):
    small = Peer(host, port, "v5-mps-small")
    small.start(connect_props=props(PacketTypes.CONNECT, MaximumPacketSize=100))
    small.subscribe("mps/t", 1)
    big = Peer(host, port, "v5-mps-big")
    big.start()
    big.subscribe("mps/t", 1)
    pub = Peer(host, port, "v5-mps-pub")
    pub.start()
    say("ack", pub.publish("mps/t", b"small 1", 1))
    say("ack", pub.publish("mps/t", b"x" * 500, 1))
    say("ack", pub.publish("mps/t", b"small 2", 1))
    # QoS 0 too.
    say("ack", pub.publish("mps/t", b"y" * 500, 0))
    say("ack", pub.publish("mps/t", b"small 3", 1))
    for peer in (small, big):
        got = peer.wait_payload(b"small 3")
        say(peer.name, "got", [(len(m.payload), m.payload[:7].decode()) for m in got])
        say(peer.name, "disconnects", peer.disconnects)
    pub.stop()
    small.stop()
    big.stop()


if __name__ == "__main__":
    run(main)
