"""MQTT 5 topic aliases to the client [MQTT-3.3.2-11] (section 3.3.2.3.4): a subscriber that
accepts Topic Alias Maximum 5 gets the first message on a topic with the full topic and an
alias, and later ones with an empty topic and the same alias; a second topic gets its own
alias. A client accepting only 1 alias gets the second topic in full, without an alias. After
a reconnect (session resumed) aliases start afresh [MQTT-3.3.2-7]. A client that accepts no
aliases never gets one.

paho does not resolve the aliases it receives, so this script does, and shows both what
arrived and what it resolves to.

Usage: python3 v5_topic_alias_out.py HOST PORT
"""

from v5_util import PacketTypes, Peer, describe, props, run, say


def cprops(max_alias):
    p = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    if max_alias is not None:
        p.TopicAliasMaximum = max_alias
    return p


def show(peer, msgs):
    aliases = {}
    for m in msgs:
        a = getattr(m.properties, "TopicAlias", None)
        if m.topic:
            if a is not None:
                aliases[a] = m.topic
            resolved = m.topic
        else:
            resolved = aliases.get(a, "<unknown alias>")
        say(peer.name, "got", describe(m, alias=True), "resolved", repr(resolved))


def main(host, port):
    five = Peer(host, port, "v5-ao-5")
    five.start(connect_props=cprops(5))
    five.subscribe("alias/out/#", 1)
    one = Peer(host, port, "v5-ao-1")
    one.start(connect_props=cprops(1))
    one.subscribe("alias/out/#", 1)
    none = Peer(host, port, "v5-ao-0")
    none.start(connect_props=cprops(None))
    none.subscribe("alias/out/#", 1)
    pub = Peer(host, port, "v5-ao-pub")
    pub.start()
    for n in (1, 2, 3):
        pub.publish("alias/out/t", f"m{n}".encode(), 1)
    pub.publish("alias/out/u", b"m4", 1)
    pub.publish("alias/out/u", b"m5", 1)
    pub.publish("alias/out/t", b"m6", 1)
    for peer in (five, one, none):
        show(peer, peer.wait_count(6))
    five.stop()

    again = Peer(host, port, "v5-ao-5")
    present, _ = again.start(clean_start=False, connect_props=cprops(5))
    say("reconnected, session present:", present)
    pub.publish("alias/out/u", b"m7", 1)
    pub.publish("alias/out/u", b"m8", 1)
    show(again, again.wait_count(2))
    again.stop()
    one.stop()
    none.stop()
    pub.stop()


if __name__ == "__main__":
    run(main)
