"""PUBLISH from a client: framing, QoS, topics, properties; 3.1.1 and 5.0."""

from mqtt import *  # noqa: F401,F403

CTRL = "\x01\x1f\x7f\u0080\u009f"


def one(name, v, pk_fn, sync=True, config="default"):
    sc = Scn(name, config)
    sc.open(0, v)
    sc.send(0, pk_fn(sc))
    return sc.sync(0) if sync else sc.wait(0)


def body_of(pk):
    i = 1
    while pk[i] & 0x80:
        i += 1
    return pk[i + 1:]


def scenarios():
    res = []
    for v in (4, 5):
        for q in (0, 1, 2):
            b1 = 0x30 | (q << 1)
            res += matrix("publish-q%d" % q, v, b1,
                          lambda sc, v=v, q=q: body_of(publish(v, sc.t(), b"hello", q, pid=7)))
        vs = "publish/v%d/" % v
        P = lambda sc, q=0, v=v, **kw: publish(v, sc.t(), b"p", q, **kw)  # noqa: E731
        cases = [
            ("qos3", lambda sc: pkt(0x36, body_of(P(sc, 1)))),
            ("qos3-retain", lambda sc: pkt(0x37, body_of(P(sc, 1)))),
            ("dup-qos0", lambda sc: P(sc, 0, dup=True)),
            ("dup-qos1", lambda sc: P(sc, 1, dup=True)),
            ("retain-qos0", lambda sc: P(sc, 0, retain=True)),
            ("retain-empty-payload", lambda sc: publish(v, sc.t(), b"", 0, retain=True)),
            ("pid-0-qos1", lambda sc: P(sc, 1, pid=0)),
            ("pid-0-qos2", lambda sc: P(sc, 2, pid=0)),
            ("pid-65535-qos1", lambda sc: P(sc, 1, pid=65535)),
            ("topic-empty", lambda sc: publish(v, "", b"p", 0)),
            ("topic-plus", lambda sc: publish(v, sc.t("+"), b"p", 0)),
            ("topic-hash", lambda sc: publish(v, sc.t("#"), b"p", 0)),
            ("topic-plus-inside", lambda sc: publish(v, sc.t("a+b"), b"p", 0)),
            ("topic-nul", lambda sc: publish(v, sc.t("\x00"), b"p", 0)),
            ("topic-invalid-utf8", lambda sc: publish(v, sc.t().encode() + b"\xff", b"p", 0)),
            ("topic-surrogate", lambda sc: publish(v, sc.t().encode() + b"\xed\xb0\x80", b"p", 0)),
            ("topic-noncharacter", lambda sc: publish(v, sc.t("\uffff"), b"p", 0)),
            ("topic-sys", lambda sc: publish(v, "$SYS/x", b"p", 0)),
            ("topic-dollar", lambda sc: publish(v, "$x/" + sc.t(), b"p", 0)),
            ("topic-slash-only", lambda sc: publish(v, "/", b"p", 0)),
            ("topic-levels-201", lambda sc: publish(v, "/".join([sc.t()] + ["a"] * 199), b"p", 0)),
            ("topic-levels-202", lambda sc: publish(v, "/".join([sc.t()] + ["a"] * 200), b"p", 0)),
            ("topic-levels-202-qos1", lambda sc: publish(v, "/".join([sc.t()] + ["a"] * 200), b"p", 1)),
            ("topic-long", lambda sc: publish(v, sc.t("y" * 60000), b"p", 0)),
            ("topic-length-past-end", lambda sc: pkt(0x30, b"\x00\x09abc")),
            ("payload-big", lambda sc: publish(v, sc.t(), b"z" * 70000, 1)),
        ]
        for ch in CTRL:
            cases.append(("topic-ctrl-%04x" % ord(ch), lambda sc, ch=ch: publish(v, sc.t(ch), b"p", 0)))
        if v == 5:
            Q = lambda sc, *ps, q=1, payload=b"p": publish(5, sc.t(), payload, q, prop=b"".join(ps))  # noqa: E731
            cases += [
                ("prop-payload-format-1", lambda sc: Q(sc, p_byte(PAYLOAD_FORMAT, 1))),
                ("prop-payload-format-1-invalid", lambda sc: Q(sc, p_byte(PAYLOAD_FORMAT, 1), payload=b"\xff")),
                ("prop-payload-format-2", lambda sc: Q(sc, p_byte(PAYLOAD_FORMAT, 2))),
                ("prop-expiry", lambda sc: Q(sc, p_u32(MESSAGE_EXPIRY, 100))),
                ("prop-content-type", lambda sc: Q(sc, p_str(CONTENT_TYPE, "text/plain"))),
                ("prop-response-topic", lambda sc: Q(sc, p_str(RESPONSE_TOPIC, "r/1"))),
                ("prop-response-topic-wildcard", lambda sc: Q(sc, p_str(RESPONSE_TOPIC, "r/#"))),
                ("prop-response-topic-empty", lambda sc: Q(sc, p_str(RESPONSE_TOPIC, ""))),
                ("prop-correlation", lambda sc: Q(sc, bytes([CORRELATION]) + s(b"\x00\x01"))),
                ("prop-user", lambda sc: Q(sc, p_pair("a", "1"), p_pair("a", "2"))),
                ("prop-sub-id", lambda sc: Q(sc, p_vbi(SUB_ID, 1))),
                ("prop-session-expiry", lambda sc: Q(sc, p_u32(SESSION_EXPIRY, 1))),
                ("prop-duplicate-expiry", lambda sc: Q(sc, p_u32(MESSAGE_EXPIRY, 1), p_u32(MESSAGE_EXPIRY, 1))),
                ("prop-duplicate-content-type", lambda sc: Q(sc, p_str(CONTENT_TYPE, "a"), p_str(CONTENT_TYPE, "b"))),
                ("prop-topic-alias-0", lambda sc: Q(sc, p_u16(TOPIC_ALIAS, 0))),
                ("prop-topic-alias-1", lambda sc: Q(sc, p_u16(TOPIC_ALIAS, 1))),
                ("prop-topic-alias-11", lambda sc: Q(sc, p_u16(TOPIC_ALIAS, 11))),
                ("prop-topic-alias-unknown-empty-topic", lambda sc: publish(5, "", b"p", 1, prop=p_u16(TOPIC_ALIAS, 2))),
                ("prop-unknown", lambda sc: Q(sc, b"\x7f\x00")),
                ("prop-length-past-end", lambda sc: publish(5, sc.t(), b"", 1, prop=Block(b"\x09\x01\x01"))),
            ]
        for name, fn in cases:
            res.append(one(vs + name, v, fn))
    sc = Scn("publish/v5/topic-alias-set-then-use")
    sc.open(0, 5)
    sc.send(1, connect(5, sc.cid(1))).sync(1)
    sc.send(1, subscribe(5, 1, [(sc.t(), 1)])).sync(1)
    sc.send(0, publish(5, sc.t(), b"a", 1, pid=1, prop=p_u16(TOPIC_ALIAS, 1))).sync(0)
    sc.send(0, publish(5, "", b"b", 1, pid=2, prop=p_u16(TOPIC_ALIAS, 1))).sync(0)
    res.append(sc.sync(1))
    return res
