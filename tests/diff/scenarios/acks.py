"""PUBACK, PUBREC, PUBREL, PUBCOMP from a client: framing, unknown ids, acknowledgements that do
not fit the message's QoS, reason codes and properties; 3.1.1 and 5.0."""

from mqtt import *  # noqa: F401,F403

ACKS = [("puback", 0x40), ("pubrec", 0x50), ("pubrel", 0x62), ("pubcomp", 0x70)]


def delivered(sc, v, q):
    """Connection 0 subscribes at QoS 2; connection 1 publishes at QoS q; 0 gets it (pid 1)."""
    sc.open(0, v)
    sc.send(0, subscribe(v, 1, [(sc.t(), 2)])).sync(0)
    sc.open(1, v)
    sc.send(1, publish(v, sc.t(), b"m", q, pid=9)).sync(1)
    if q == 2:
        sc.send(1, ack(0x62, 9)).sync(1)
    sc.recv(0, 1)


def scenarios():
    res = []
    for v in (4, 5):
        for name, b1 in ACKS:
            res += matrix(name, v, b1, b"\x00\x07")
            if v == 5:
                for rc in (0x00, 0x10, 0x80, 0x92, 0x05, 0xFF):
                    sc = Scn("%s/v5/unknown-id-reason-%02x" % (name, rc))
                    sc.open(0, 5)
                    res.append(sc.send(0, ack(b1, 7, rc)).sync(0))
                sc = Scn("%s/v5/unknown-id-props" % name)
                sc.open(0, 5)
                res.append(sc.send(0, ack(b1, 7, 0, p_str(REASON_STRING, "r") + p_pair("a", "b"))).sync(0))
                sc = Scn("%s/v5/prop-not-allowed" % name)
                sc.open(0, 5)
                res.append(sc.send(0, ack(b1, 7, 0, p_u32(SESSION_EXPIRY, 1))).wait(0))
                sc = Scn("%s/v5/prop-length-past-end" % name)
                sc.open(0, 5)
                res.append(sc.send(0, ack(b1, 7, 0, Block(b"\x05\x1f"))).wait(0))
            sc = Scn("%s/v%d/pid-0" % (name, v))
            sc.open(0, v)
            res.append(sc.send(0, ack(b1, 0)).sync(0))
        # acknowledgements of delivered messages, fitting and not [item 9]
        for q in (1, 2):
            for name, b1 in ACKS:
                sc = Scn("ackflow/v%d/q%d-%s" % (v, q, name))
                delivered(sc, v, q)
                res.append(sc.send(0, ack(b1, 1)).sync(0).sync(1))
            sc = Scn("ackflow/v%d/q%d-twice" % (v, q))
            delivered(sc, v, q)
            b1 = 0x40 if q == 1 else 0x50
            res.append(sc.send(0, ack(b1, 1)).send(0, ack(b1, 1)).sync(0))
        sc = Scn("ackflow/v%d/q2-full" % v)
        delivered(sc, v, 2)
        res.append(sc.send(0, ack(0x50, 1)).sync(0).send(0, ack(0x70, 1)).sync(0))
        sc = Scn("ackflow/v%d/q2-pubcomp-before-pubrec" % v)
        delivered(sc, v, 2)
        res.append(sc.send(0, ack(0x70, 1)).sync(0).send(0, ack(0x50, 1)).sync(0))
        # incoming QoS 2: PUBREL for it, twice, and PUBREL for another id
        sc = Scn("ackflow/v%d/incoming-q2" % v)
        sc.open(0, v)
        sc.send(0, publish(v, sc.t(), b"m", 2, pid=4)).sync(0)
        res.append(sc.send(0, ack(0x62, 4)).sync(0).send(0, ack(0x62, 4)).sync(0))
        sc = Scn("ackflow/v%d/incoming-q2-resend" % v)
        sc.open(0, v)
        sc.send(0, publish(v, sc.t(), b"m", 2, pid=4)).sync(0)
        res.append(sc.send(0, publish(v, sc.t(), b"m", 2, pid=4, dup=True)).sync(0))
        sc = Scn("ackflow/v%d/incoming-q2-pubrec-from-client" % v)
        sc.open(0, v)
        sc.send(0, publish(v, sc.t(), b"m", 2, pid=4)).sync(0)
        res.append(sc.send(0, ack(0x50, 4)).sync(0))
        if v == 5:
            sc = Scn("ackflow/v5/q2-pubrec-error-reason")
            delivered(sc, 5, 2)
            res.append(sc.send(0, ack(0x50, 1, 0x80)).sync(0).send(0, ack(0x70, 1)).sync(0))
    return res
