"""MQTT 5 topic aliases from the client [MQTT-3.3.2-12] (section 3.3.2.3.4): CONNACK
announces Topic Alias Maximum 10; a publisher that sets up alias 1 with its first PUBLISH and
then publishes with an empty topic and the alias reaches the subscriber with the full topic
each time (a retained message published so is stored under the full topic); an alias over
the maximum closes the connection with DISCONNECT reason 0x94 (Topic Alias invalid) and the
message is not forwarded.

Usage: python3 v5_topic_alias_in.py HOST PORT
"""

from v5_util import PacketTypes, Peer, describe, props, run, say


def alias(n):
    return props(PacketTypes.PUBLISH, TopicAlias=n)


def main(host, port):
    sub = Peer(host, port, "v5-alias-in-sub")
    sub.start()
    sub.subscribe("alias/in/#", 1)

    pub = Peer(host, port, "v5-alias-in-pub")
    _, cprops = pub.start()
    say("TopicAliasMaximum", getattr(cprops, "TopicAliasMaximum", None))
    say("ack", pub.publish("alias/in/t", b"one", 1, pub_props=alias(1)))
    say("ack", pub.publish("", b"two", 1, pub_props=alias(1)))
    # Alias 1 now names another topic.
    say("ack", pub.publish("alias/in/u", b"three", 1, pub_props=alias(1)))
    say("ack", pub.publish("", b"four", 1, pub_props=alias(1)))
    for m in sub.wait_count(4):
        say("got", describe(m))
    # A retained message published through an alias is stored under the full topic.
    say("ack", pub.publish("", b"retained via alias", 1, retain=True, pub_props=alias(1)))
    sub.wait_count(5)
    late = Peer(host, port, "v5-alias-in-late")
    late.start()
    late.subscribe("alias/in/#", 1)
    say("new subscriber got", describe(late.wait_count(1)[0]))
    late.stop()

    pub.c.publish("alias/in/t", b"over the maximum", 1, properties=alias(11))
    code, from_server = pub.wait_disconnect()
    say("over-maximum alias: disconnect reason", code, "from server", from_server)

    # A marker from another client: nothing of the refused publish came before it.
    other = Peer(host, port, "v5-alias-in-marker")
    other.start()
    other.publish("alias/in/t", b"marker", 1)
    for m in sub.wait_payload(b"marker")[5:]:
        say("then got", describe(m))
    other.stop()
    sub.stop()


if __name__ == "__main__":
    run(main)
