"""CONNECT: framing variants, then field-by-field variants, 3.1, 3.1.1 and 5.0."""

from mqtt import *  # noqa: F401,F403


def _body(pk):
    i = 1
    while pk[i] & 0x80:
        i += 1
    return pk[i + 1:]


CTRL = "\x01\x1f\x7f\u0080\u009f"


def one(name, pk_fn, sync=True, config="default"):
    sc = Scn(name, config)
    sc.send(0, pk_fn(sc))
    return sc.sync(0) if sync else sc.wait(0)


def scenarios():
    res = []
    for v in (3, 4, 5):
        res += matrix("connect", v, 0x10, lambda sc, v=v: _body(connect(v, sc.cid())), first=True)

    for v in (4, 5):
        vs = "connect/v%d/" % v
        c = lambda sc, v=v, **kw: connect(v, sc.cid(), **kw)  # noqa: E731
        cases = [
            ("clean-0", lambda sc: c(sc, clean=False)),
            ("keepalive-0", lambda sc: c(sc, keep=0)),
            ("keepalive-65535", lambda sc: c(sc, keep=65535)),
            ("empty-id-clean", lambda sc: connect(v, "")),
            ("empty-id-persistent", lambda sc: connect(v, "", clean=False)),
            ("long-id", lambda sc: connect(v, sc.cid() + "x" * 60)),
            ("id-nul", lambda sc: connect(v, sc.cid() + "\x00")),
            ("id-invalid-utf8", lambda sc: connect(v, sc.cid().encode() + b"\xff")),
            ("id-surrogate", lambda sc: connect(v, sc.cid().encode() + b"\xed\xa0\x80")),
            ("id-overlong-utf8", lambda sc: connect(v, sc.cid().encode() + b"\xc0\xaf")),
            ("id-bom", lambda sc: connect(v, sc.cid() + "\ufeff")),
            ("id-noncharacter", lambda sc: connect(v, sc.cid() + "\uffff")),
            ("id-plus", lambda sc: connect(v, sc.cid() + "+#/")),
            ("reserved-flag", lambda sc: c(sc, flags=0x03)),
            ("will-qos-3", lambda sc: c(sc, will=(sc.t(), b"x", 3, False))),
            ("will-qos-no-will", lambda sc: c(sc, flags=0x02 | 0x08)),
            ("will-retain-no-will", lambda sc: c(sc, flags=0x02 | 0x20)),
            ("will-qos0", lambda sc: c(sc, will=(sc.t(), b"x", 0, False))),
            ("will-qos2-retain", lambda sc: c(sc, will=(sc.t(), b"x", 2, True))),
            ("will-topic-empty", lambda sc: c(sc, will=("", b"x", 0, False))),
            ("will-topic-plus", lambda sc: c(sc, will=(sc.t("+"), b"x", 0, False))),
            ("will-topic-hash", lambda sc: c(sc, will=(sc.t("#"), b"x", 0, False))),
            ("will-topic-sys", lambda sc: c(sc, will=("$SYS/x", b"x", 0, False))),
            ("will-topic-nul", lambda sc: c(sc, will=(sc.t("\x00"), b"x", 0, False))),
            ("will-topic-invalid-utf8", lambda sc: c(sc, will=(sc.t().encode() + b"\xfe", b"x", 0, False))),
            ("will-topic-depth-200", lambda sc: c(sc, will=("/".join(["a"] * 200), b"x", 0, False))),
            ("will-topic-depth-201", lambda sc: c(sc, will=("/".join(["a"] * 201), b"x", 0, False))),
            ("user", lambda sc: c(sc, user="u")),
            ("user-pass", lambda sc: c(sc, user="u", pw="p")),
            ("pass-no-user", lambda sc: c(sc, pw="p")),
            ("user-flag-missing", lambda sc: c(sc, flags=0x82)),
            ("pass-flag-missing", lambda sc: c(sc, flags=0xC2, user="u")),
            ("user-invalid-utf8", lambda sc: c(sc, user=b"u\xff")),
            ("user-nul", lambda sc: c(sc, user="u\x00")),
            ("password-binary", lambda sc: c(sc, user="u", pw=b"\x00\xff")),
            ("level-0", lambda sc: c(sc, level=0)),
            ("level-2", lambda sc: c(sc, level=2)),
            ("level-6", lambda sc: c(sc, level=6)),
            ("level-131-bridge", lambda sc: c(sc, level=0x80 | v)),
            ("name-mqtt-lower", lambda sc: c(sc, name=b"mqtt")),
            ("name-mqisdp-level", lambda sc: c(sc, name=b"MQIsdp")),
            ("name-empty", lambda sc: c(sc, name=b"")),
            ("name-other", lambda sc: c(sc, name=b"HTTP")),
            ("name-nul", lambda sc: c(sc, name=b"MQ\x00T")),
        ]
        for ch in CTRL:
            tag = "%04x" % ord(ch)
            cases += [
                ("id-ctrl-" + tag, lambda sc, ch=ch: connect(v, sc.cid() + ch)),
                ("user-ctrl-" + tag, lambda sc, ch=ch: c(sc, user="u" + ch)),
                ("will-topic-ctrl-" + tag, lambda sc, ch=ch: c(sc, will=(sc.t(ch), b"x", 0, False))),
            ]
        if v == 5:
            P = lambda sc, *ps, **kw: c(sc, prop=b"".join(ps), **kw)  # noqa: E731
            cases += [
                ("prop-session-expiry", lambda sc: P(sc, p_u32(SESSION_EXPIRY, 10))),
                ("prop-session-expiry-max", lambda sc: P(sc, p_u32(SESSION_EXPIRY, 0xFFFFFFFF))),
                ("prop-receive-max", lambda sc: P(sc, p_u16(RECEIVE_MAX, 5))),
                ("prop-receive-max-0", lambda sc: P(sc, p_u16(RECEIVE_MAX, 0))),
                ("prop-max-packet", lambda sc: P(sc, p_u32(MAX_PACKET, 100))),
                ("prop-max-packet-0", lambda sc: P(sc, p_u32(MAX_PACKET, 0))),
                ("prop-topic-alias-max", lambda sc: P(sc, p_u16(TOPIC_ALIAS_MAX, 5))),
                ("prop-req-response", lambda sc: P(sc, p_byte(REQ_RESPONSE, 1))),
                ("prop-req-response-2", lambda sc: P(sc, p_byte(REQ_RESPONSE, 2))),
                ("prop-req-problem-0", lambda sc: P(sc, p_byte(REQ_PROBLEM, 0))),
                ("prop-req-problem-2", lambda sc: P(sc, p_byte(REQ_PROBLEM, 2))),
                ("prop-user", lambda sc: P(sc, p_pair("a", "b"), p_pair("a", "c"))),
                ("prop-auth-method", lambda sc: P(sc, p_str(AUTH_METHOD, "SCRAM"))),
                ("prop-auth-data-no-method", lambda sc: P(sc, bytes([AUTH_DATA]) + s(b"x"))),
                ("prop-duplicate-session-expiry", lambda sc: P(sc, p_u32(SESSION_EXPIRY, 1), p_u32(SESSION_EXPIRY, 1))),
                ("prop-duplicate-receive-max", lambda sc: P(sc, p_u16(RECEIVE_MAX, 1), p_u16(RECEIVE_MAX, 1))),
                ("prop-not-allowed-payload-format", lambda sc: P(sc, p_byte(PAYLOAD_FORMAT, 1))),
                ("prop-not-allowed-topic-alias", lambda sc: P(sc, p_u16(TOPIC_ALIAS, 1))),
                ("prop-not-allowed-will-delay", lambda sc: P(sc, p_u32(WILL_DELAY, 1))),
                ("prop-unknown-0x00", lambda sc: P(sc, b"\x00")),
                ("prop-unknown-0x7f", lambda sc: P(sc, b"\x7f\x00")),
                ("prop-length-short", lambda sc: c(sc, prop=Block(b"\x04" + p_u32(SESSION_EXPIRY, 1)))),
                ("prop-length-long", lambda sc: c(sc, prop=Block(b"\x07" + p_u32(SESSION_EXPIRY, 1)))),
                ("prop-user-invalid-utf8", lambda sc: P(sc, b"\x26" + s(b"a\xff") + s("b"))),
                ("prop-all", lambda sc: P(sc, p_u32(SESSION_EXPIRY, 0), p_u16(RECEIVE_MAX, 10),
                                           p_u32(MAX_PACKET, 1000), p_u16(TOPIC_ALIAS_MAX, 3),
                                           p_byte(REQ_RESPONSE, 1), p_byte(REQ_PROBLEM, 1),
                                           p_pair("k", "v"))),
                ("empty-id-assigned-props", lambda sc: connect(5, "", prop=p_u16(TOPIC_ALIAS_MAX, 3) + p_u32(SESSION_EXPIRY, 5))),
                ("will-props", lambda sc: c(sc, will=(sc.t(), b"x", 1, False,
                                                      p_u32(WILL_DELAY, 5) + p_byte(PAYLOAD_FORMAT, 1) +
                                                      p_u32(MESSAGE_EXPIRY, 10) + p_str(CONTENT_TYPE, "t") +
                                                      p_str(RESPONSE_TOPIC, "r") + bytes([CORRELATION]) + s(b"c") +
                                                      p_pair("a", "b")))),
                ("will-prop-not-allowed", lambda sc: c(sc, will=(sc.t(), b"x", 0, False, p_u32(SESSION_EXPIRY, 1)))),
                ("will-prop-topic-alias", lambda sc: c(sc, will=(sc.t(), b"x", 0, False, p_u16(TOPIC_ALIAS, 1)))),
                ("will-payload-format-invalid", lambda sc: c(sc, will=(sc.t(), b"\xff", 0, False, p_byte(PAYLOAD_FORMAT, 1)))),
                ("will-payload-format-2", lambda sc: c(sc, will=(sc.t(), b"x", 0, False, p_byte(PAYLOAD_FORMAT, 2)))),
                ("will-response-topic-wildcard", lambda sc: c(sc, will=(sc.t(), b"x", 0, False, p_str(RESPONSE_TOPIC, "a/#")))),
                ("will-prop-duplicate", lambda sc: c(sc, will=(sc.t(), b"x", 0, False, p_u32(WILL_DELAY, 1) + p_u32(WILL_DELAY, 1)))),
            ]
        for name, fn in cases:
            res.append(one(vs + name, fn))
        # a second CONNECT on an accepted connection [MQTT-3.1.0-2]
        sc = Scn(vs + "second-connect")
        sc.open(0, v)
        res.append(sc.send(0, connect(v, sc.cid())).wait(0))
        sc = Scn(vs + "second-connect-level-6")
        sc.open(0, v)
        res.append(sc.send(0, connect(v, sc.cid(), level=6)).wait(0))
    # 3.1 (MQIsdp) specifics
    res.append(one("connect/v3/id-24-chars", lambda sc: connect(3, sc.cid() + "x" * 11)))
    res.append(one("connect/v3/id-23-chars", lambda sc: connect(3, sc.cid() + "x" * 10)))
    res.append(one("connect/v3/empty-id", lambda sc: connect(3, "")))
    return res
