"""MQTT 5 Receive Maximum of the broker [MQTT-3.3.4-9], with paho's own flow control: the broker
announces Receive Maximum 2 (max_inflight_messages 2); a paho publisher sends 8 QoS 2 messages
at once. The broker answers the ones over its quota with PUBREC 0x97 (Quota Exceeded), as
mosquitto 2.0.20 does, instead of cutting the client off: paho completes every exchange, is
never disconnected (no broken pipe), and goes on publishing.

Usage: python3 v5_receive_max_in.py HOST PORT
"""

from v5_util import Peer, prop, run, say


def main(host, port):
    sub = Peer(host, port, "v5-rm-sub")
    sub.start()
    sub.subscribe("rm/t", 2)
    pub = Peer(host, port, "v5-rm-pub")
    _, cprops = pub.start()
    say("broker Receive Maximum", prop(cprops, "ReceiveMaximum"))
    infos = [pub.c.publish("rm/t", f"m{i}".encode(), 2) for i in range(8)]
    pub.wait(lambda: all(i.mid in pub.acks for i in infos), "every acknowledgement")
    codes = [pub.acks[i.mid] for i in infos]
    say("all acknowledged", len(codes) == 8)
    say("publisher disconnects", pub.disconnects)
    say("then a QoS 1 publish is acknowledged with", pub.publish("rm/t", b"after", 1))
    say("publisher disconnects", pub.disconnects)
    pub.stop()
    sub.stop()


if __name__ == "__main__":
    run(main)
