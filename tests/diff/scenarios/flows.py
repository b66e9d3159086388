"""Flows across packets and connections: QoS, wills and takeover, sessions, retained messages,
ACL, logins, limits and the options that restrict or upgrade; 3.1.1 and 5.0."""

from mqtt import *  # noqa: F401,F403


def scenarios():
    res = []
    for v in (4, 5):
        res += qos(v) + wills(v) + sessions(v) + retained(v) + acl(v) + login(v) + limits(v)
        res += restricted(v) + upgrade(v)
    res += props_order()
    return res


def qos(v):
    res = []
    for pq in (0, 1, 2):
        for sq in (0, 1, 2):
            sc = Scn("qos/v%d/pub%d-sub%d" % (v, pq, sq))
            sc.open(0, v)
            sc.send(0, subscribe(v, 1, [(sc.t("+"), sq)])).sync(0)
            sc.open(1, v)
            sc.send(1, publish(v, sc.t("a"), b"m", pq, pid=3)).sync(1)
            sc.recv(0, 1)
            if min(pq, sq) == 1:
                sc.send(0, ack(0x40, 1)).sync(0)
            elif min(pq, sq) == 2:
                sc.send(0, ack(0x50, 1)).sync(0).send(0, ack(0x70, 1)).sync(0)
            if pq == 2:
                sc.send(1, ack(0x62, 3)).sync(1)
            res.append(sc)
    # overlapping subscriptions: one copy per subscription in 5.0, one in 3.1.1
    sc = Scn("qos/v%d/overlap" % v)
    sc.open(0, v)
    sc.send(0, subscribe(v, 1, [(sc.t("+"), 0), (sc.t("#"), 1)])).sync(0)
    sc.open(1, v)
    sc.send(1, publish(v, sc.t("a"), b"m", 1, pid=3)).sync(1)
    res.append(sc.recv(0, 2).sync(0))
    return res


def will(sc, v, delay=None):
    wp = p_u32(WILL_DELAY, delay) if delay is not None else b""
    return (sc.t("will"), b"offline", 1, False, wp)


def wills(v):
    res = []
    # takeover: the old connection's will is sent only if the old or the new session is clean
    for old in (True, False):
        for new in (True, False):
            name = "takeover/v%d/old-%s-new-%s" % (v, "clean" if old else "persistent",
                                                   "clean" if new else "persistent")
            sc = Scn(name)
            sc.open(1, v)
            sc.send(1, subscribe(v, 1, [(sc.t("will"), 1)])).sync(1)
            kw = {}
            if v == 5:
                sc.open(0, v, cid=sc.cid(0), clean=old, will=will(sc, v),
                        prop=p_u32(SESSION_EXPIRY, 0 if old else 300))
                sc.send(2, connect(v, sc.cid(0), clean=new,
                                   prop=p_u32(SESSION_EXPIRY, 0 if new else 300)))
            else:
                sc.open(0, v, clean=old, will=will(sc, v), **kw)
                sc.send(2, connect(v, sc.cid(0), clean=new))
            sc.sync(2).wait(0).sync(1)
            res.append(sc)
    # a will on a dropped connection, and none on DISCONNECT
    sc = Scn("will/v%d/dropped" % v)
    sc.open(1, v)
    sc.send(1, subscribe(v, 1, [(sc.t("will"), 1)])).sync(1)
    sc.open(0, v, will=will(sc, v))
    res.append(sc.close(0).recv(1, 1))
    sc = Scn("will/v%d/retained" % v)
    sc.open(0, v, will=(sc.t("will"), b"gone", 1, True))
    sc.close(0).sleep(100)
    sc.open(1, v)
    res.append(sc.send(1, subscribe(v, 1, [(sc.t("will"), 1)])).sync(1))
    if v == 5:
        for old, new in ((False, False), (True, False)):
            sc = Scn("will/v5/delay-takeover-old-%s-new-%s" % ("clean" if old else "persistent",
                                                             "clean" if new else "persistent"))
            sc.open(1, v)
            sc.send(1, subscribe(v, 1, [(sc.t("will"), 1)])).sync(1)
            sc.open(0, v, cid=sc.cid(0), will=will(sc, v, 1), prop=p_u32(SESSION_EXPIRY, 0 if old else 300))
            sc.send(2, connect(v, sc.cid(0), clean=new, prop=p_u32(SESSION_EXPIRY, 0 if new else 300)))
            sc.sync(2).wait(0).sleep(2600).sync(1)
            res.append(sc)
        sc = Scn("will/v5/delay-reconnect")
        sc.open(1, v)
        sc.send(1, subscribe(v, 1, [(sc.t("will"), 1)])).sync(1)
        sc.open(0, v, clean=False, will=will(sc, v, 1), prop=p_u32(SESSION_EXPIRY, 300))
        sc.close(0)
        sc.open(2, v, cid=sc.cid(0), clean=False, prop=p_u32(SESSION_EXPIRY, 300))
        res.append(sc.sleep(2600).sync(1))
        sc = Scn("will/v5/delay-expires")
        sc.open(1, v)
        sc.send(1, subscribe(v, 1, [(sc.t("will"), 1)])).sync(1)
        sc.open(0, v, will=will(sc, v, 1), prop=p_u32(SESSION_EXPIRY, 300))
        res.append(sc.close(0).sleep(2600).sync(1))
        sc = Scn("will/v5/disconnect-04")
        sc.open(1, v)
        sc.send(1, subscribe(v, 1, [(sc.t("will"), 1)])).sync(1)
        sc.open(0, v, will=will(sc, v))
        res.append(sc.send(0, disconnect(5, 0x04)).wait(0).sync(1))
    return res


def sessions(v):
    res = []
    P = (lambda e: {"prop": p_u32(SESSION_EXPIRY, e)}) if v == 5 else (lambda e: {})
    sc = Scn("session/v%d/resume" % v)
    sc.open(0, v, clean=False, **P(300))
    sc.send(0, subscribe(v, 1, [(sc.t(), 1)])).sync(0)
    sc.send(0, disconnect(v)).wait(0)
    sc.open(1, v)
    sc.send(1, publish(v, sc.t(), b"q1", 1, pid=1)).sync(1)
    sc.send(1, publish(v, sc.t(), b"q0", 0)).sync(1)
    sc.open(2, v, cid=sc.cid(0), clean=False, **P(300))
    res.append(sc.sync(2))
    sc = Scn("session/v%d/clean-discards" % v)
    sc.open(0, v, clean=False, **P(300))
    sc.send(0, subscribe(v, 1, [(sc.t(), 1)])).sync(0)
    sc.send(0, disconnect(v)).wait(0)
    sc.open(2, v, cid=sc.cid(0), clean=True)
    sc.open(1, v)
    sc.send(1, publish(v, sc.t(), b"q1", 1, pid=1)).sync(1)
    res.append(sc.sync(2))
    sc = Scn("session/v%d/unacked-resent" % v)
    sc.open(0, v, clean=False, **P(300))
    sc.send(0, subscribe(v, 1, [(sc.t(), 2)])).sync(0)
    sc.open(1, v)
    sc.send(1, publish(v, sc.t(), b"a", 1, pid=1)).send(1, publish(v, sc.t(), b"b", 2, pid=2)).sync(1)
    sc.recv(0, 2).close(0)
    sc.open(2, v, cid=sc.cid(0), clean=False, **P(300))
    res.append(sc.sync(2))
    if v == 5:
        sc = Scn("session/v5/expiry-0-on-reconnect")
        sc.open(0, v, clean=False)
        sc.send(0, subscribe(v, 1, [(sc.t(), 1)])).sync(0).close(0)
        res.append(sc.open(2, v, cid=sc.cid(0), clean=False, **P(300)))
    return res


def retained(v):
    res = []
    for q in (0, 1, 2):
        sc = Scn("retain/v%d/q%d" % (v, q))
        sc.open(0, v)
        sc.send(0, publish(v, sc.t("a"), b"r", q, retain=True, pid=1)).sync(0)
        sc.open(1, v)
        res.append(sc.send(1, subscribe(v, 1, [(sc.t("+"), 2)])).sync(1))
    sc = Scn("retain/v%d/clear" % v)
    sc.open(0, v)
    sc.send(0, publish(v, sc.t("a"), b"r", 0, retain=True)).send(0, publish(v, sc.t("a"), b"", 0, retain=True)).sync(0)
    sc.open(1, v)
    res.append(sc.send(1, subscribe(v, 1, [(sc.t("+"), 2)])).sync(1))
    sc = Scn("retain/v%d/live-flag" % v)
    sc.open(1, v)
    sc.send(1, subscribe(v, 1, [(sc.t("+"), 0)])).sync(1)
    sc.open(0, v)
    sc.send(0, publish(v, sc.t("a"), b"r", 0, retain=True)).sync(0)
    res.append(sc.sync(1))
    if v == 5:
        for o, tag in ((0x09, "rap"), (0x10, "handling-1"), (0x20, "handling-2")):
            sc = Scn("retain/v5/" + tag)
            sc.open(0, v)
            sc.send(0, publish(v, sc.t("a"), b"r", 0, retain=True)).sync(0)
            sc.open(1, v)
            sc.send(1, subscribe(v, 1, [(sc.t("+"), o)])).sync(1)
            sc.send(1, subscribe(v, 2, [(sc.t("+"), o)])).sync(1)
            sc.send(0, publish(v, sc.t("a"), b"s", 0, retain=True)).sync(0)
            res.append(sc.sync(1))
    return res


def acl(v):
    res = []
    ids = lambda sc, k: sc.cid(k)  # noqa: E731
    # a SUBSCRIBE wider than what may be read: granted; delivery checks read access [item 1]
    sc = Scn("acl/v%d/subscribe-wider" % v, "acl")
    sc.open(0, v, user="alice", pw="secret")
    sc.send(0, subscribe(v, 1, [("cmd/+/" + sc.h, 1)])).sync(0)
    sc.open(1, v, user="bob", pw="builder")
    sc.send(1, publish(v, "cmd/sensor2/" + sc.h, b"no", 0)).send(1, publish(v, "cmd/sensor1/" + sc.h, b"yes", 0)).sync(1)
    res.append(sc.sync(0))
    sc = Scn("acl/v%d/subscribe-denied" % v, "acl")
    sc.open(0, v)
    res.append(sc.send(0, subscribe(v, 1, [("z/" + sc.h, 1), ("anon/r/" + sc.h, 2)])).sync(0))
    sc = Scn("acl/v%d/subscribe-empty-acl" % v, "acl-empty")
    sc.open(0, v)
    res.append(sc.send(0, subscribe(v, 1, [(sc.t(), 1)])).sync(0))
    for q in (0, 1, 2):
        sc = Scn("acl/v%d/publish-denied-q%d" % (v, q), "acl")
        sc.open(0, v)
        sc.send(0, publish(v, "anon/r/" + sc.h, b"m", q, pid=2)).sync(0)
        if q == 2:
            sc.send(0, ack(0x62, 2)).sync(0)
        res.append(sc)
    sc = Scn("acl/v%d/publish-allowed" % v, "acl")
    sc.open(1, v)
    sc.send(1, subscribe(v, 1, [("anon/rw/" + sc.h, 1)])).sync(1)
    sc.open(0, v)
    sc.send(0, publish(v, "anon/w/" + sc.h, b"m", 1, pid=2)).send(0, publish(v, "anon/rw/" + sc.h, b"m", 1, pid=3)).sync(0)
    res.append(sc.sync(1))
    sc = Scn("acl/v%d/pattern-clientid" % v, "acl")
    sc.open(0, v, user="alice", pw="secret")
    sc.send(0, subscribe(v, 1, [("p/%s/#" % ids(sc, 0), 1)])).sync(0)
    sc.send(0, publish(v, "p/%s/x" % ids(sc, 0), b"m", 1, pid=2)).sync(0)
    sc.send(0, publish(v, "p/other%s/x" % sc.h, b"m", 1, pid=3)).sync(0)
    res.append(sc)
    sc = Scn("acl/v%d/deny-wins" % v, "acl")
    sc.open(0, v, user="alice", pw="secret")
    sc.send(0, subscribe(v, 1, [("a/+/" + sc.h, 1)])).sync(0)
    sc.send(0, publish(v, "a/secret/" + sc.h, b"m", 1, pid=2)).sync(0)
    sc.send(0, publish(v, "a/open/" + sc.h, b"m", 1, pid=3)).sync(0)
    res.append(sc)
    return res


def login(v):
    res = []
    cases = [
        ("ok", dict(user="alice", pw="secret")),
        ("wrong-password", dict(user="alice", pw="nope")),
        ("unknown-user", dict(user="mallory", pw="x")),
        ("no-credentials", dict()),
        ("user-no-password", dict(user="alice")),
        ("empty-password-user", dict(user="empty", pw="")),
        ("same-salt-nonempty-password", dict(user="plain12", pw="x")),
        ("empty-password-alice", dict(user="alice", pw="")),
        ("empty-user", dict(user="", pw="secret")),
    ]
    if v == 5:
        cases.append(("password-no-user", dict(pw="secret")))
    for name, kw in cases:
        sc = Scn("login/v%d/%s" % (v, name), "auth")
        sc.open(0, v, **kw)
        res.append(sc)
    return res


def limits(v):
    res = []
    L = "limits"
    sc = Scn("limits/v%d/message-size-limit" % v, L)
    sc.open(1, v, keep=10)
    sc.send(1, subscribe(v, 1, [(sc.t(), 1)])).sync(1)
    sc.open(0, v, keep=10)
    sc.send(0, publish(v, sc.t(), b"x" * 60, 1, pid=4)).sync(0)
    sc.send(0, publish(v, sc.t(), b"x" * 60, 0)).sync(0)
    res.append(sc.sync(1))
    sc = Scn("limits/v%d/max-packet-size" % v, L)
    sc.open(0, v, keep=10)
    res.append(sc.send(0, publish(v, sc.t(), b"x" * 300, 0)).wait(0))
    sc = Scn("limits/v%d/connect-too-large" % v, L)
    res.append(sc.send(0, connect(v, sc.cid(), keep=10, user="u" * 250)).wait(0))
    sc = Scn("limits/v%d/max-packet-size-subscribe" % v, L)
    sc.open(0, v, keep=10)
    res.append(sc.send(0, subscribe(v, 1, [(sc.t("y" * 250), 0)])).wait(0))
    sc = Scn("limits/v%d/max-keepalive" % v, L)
    res.append(sc.open(0, v, keep=60))
    sc = Scn("limits/v%d/keepalive-0" % v, L)
    res.append(sc.open(0, v, keep=0))
    sc = Scn("limits/v%d/inflight-out" % v, L)
    sc.open(0, v, keep=10)
    sc.send(0, subscribe(v, 1, [(sc.t(), 1)])).sync(0)
    sc.open(1, v, keep=10)
    for i in range(6):
        sc.send(1, publish(v, sc.t(), b"%d" % i, 1, pid=10 + i))
    sc.sync(1).recv(0, 2).sync(0)
    sc.send(0, ack(0x40, 1)).send(0, ack(0x40, 2)).sync(0)
    res.append(sc)
    if v == 5:
        sc = Scn("limits/v5/receive-maximum-exceeded", L)
        sc.open(0, v, keep=10)
        for i in range(4):
            sc.send(0, publish(v, sc.t(), b"q", 2, pid=20 + i))
        res.append(sc.wait(0))
        # a burst past Receive Maximum 2: the quota pattern, then what a subscriber gets
        sc = Scn("limits/v5/receive-maximum-burst", L)
        sc.open(1, v, keep=10)
        sc.send(1, subscribe(5, 1, [(sc.t(), 2)])).sync(1)
        sc.open(0, v, keep=10)
        sc.send(0, b"".join(publish(5, sc.t(), b"m%d" % i, 2, pid=1 + i) for i in range(8)))
        sc.recv(0, 8)
        sc.send(0, b"".join(ack(0x62, 1 + i) for i in range(8))).recv(0, 8)
        res.append(sc.recv(1, 2))
        sc = Scn("limits/v5/topic-alias-over-max", L)
        sc.open(0, v, keep=10)
        res.append(sc.send(0, publish(5, sc.t(), b"a", 0, prop=p_u16(TOPIC_ALIAS, 3))).wait(0))
        sc = Scn("limits/v5/client-max-packet-size", L)
        sc.open(0, v, keep=10, prop=p_u32(MAX_PACKET, 30))
        sc.send(0, subscribe(v, 1, [(sc.t(), 0)])).sync(0)
        sc.send(0, publish(v, sc.t(), b"x" * 40, 0)).send(0, publish(v, sc.t(), b"y", 0)).sync(0)
        res.append(sc)
    return res


def restricted(v):
    res = []
    R = "restricted"
    sc = Scn("restricted/v%d/connack" % v, R)
    res.append(sc.open(0, v))
    sc = Scn("restricted/v%d/publish-retain" % v, R)
    sc.open(0, v)
    res.append(sc.send(0, publish(v, sc.t(), b"r", 0, retain=True)).sync(0))
    sc = Scn("restricted/v%d/publish-qos2" % v, R)
    sc.open(0, v)
    res.append(sc.send(0, publish(v, sc.t(), b"r", 2, pid=5)).sync(0))
    sc = Scn("restricted/v%d/subscribe-qos2" % v, R)
    sc.open(0, v)
    res.append(sc.send(0, subscribe(v, 1, [(sc.t(), 2)])).sync(0))
    sc = Scn("restricted/v%d/will-retain" % v, R)
    res.append(sc.open(0, v, will=(sc.t(), b"w", 0, True)))
    sc = Scn("restricted/v%d/will-qos2" % v, R)
    res.append(sc.open(0, v, will=(sc.t(), b"w", 2, False)))
    return res


def upgrade(v):
    res = []
    U = "upgrade"
    for sq in (1, 2):
        sc = Scn("upgrade/v%d/live-sub%d" % (v, sq), U)
        sc.open(0, v)
        sc.send(0, subscribe(v, 1, [(sc.t(), sq)])).sync(0)
        sc.open(1, v)
        sc.send(1, publish(v, sc.t(), b"m", 0)).sync(1)
        res.append(sc.recv(0, 1))
        sc = Scn("upgrade/v%d/retained-sub%d" % (v, sq), U)
        sc.open(1, v)
        sc.send(1, publish(v, sc.t(), b"m", 0, retain=True)).sync(1)
        sc.open(0, v)
        res.append(sc.send(0, subscribe(v, 1, [(sc.t(), sq)])).sync(0))
    if v == 5:
        # a shared message put back at hand-over keeps the granted QoS and subscription ids
        sc = Scn("upgrade/v5/shared-handover", U)
        sc.open(0, v, cid=sc.cid(0), clean=False, prop=p_u32(SESSION_EXPIRY, 300))
        sc.send(0, subscribe(5, 1, [("$share/g/" + sc.t(), 2)], prop=p_vbi(SUB_ID, 7))).sync(0)
        sc.open(1, v)
        sc.send(1, publish(5, sc.t(), b"m", 1, pid=3)).sync(1)
        sc.recv(0, 1).close(0)
        sc.open(2, v)
        sc.send(2, subscribe(5, 1, [("$share/g/" + sc.t(), 2)], prop=p_vbi(SUB_ID, 9))).sync(2)
        res.append(sc.sync(2))
    return res


def props_order():
    """The properties of a forwarded PUBLISH keep the publisher's order [item 5]."""
    res = []
    sc = Scn("props/v5/forward-order")
    sc.open(0, 5)
    sc.send(0, subscribe(5, 1, [(sc.t(), 1)], prop=p_vbi(SUB_ID, 5))).sync(0)
    sc.open(1, 5)
    ps = (p_pair("z", "1") + p_str(CONTENT_TYPE, "c") + p_pair("a", "2") + p_byte(PAYLOAD_FORMAT, 1)
          + bytes([CORRELATION]) + s(b"k") + p_str(RESPONSE_TOPIC, "r/t") + p_u32(MESSAGE_EXPIRY, 100)
          + p_u16(TOPIC_ALIAS, 1))
    sc.send(1, publish(5, sc.t(), b"m", 1, pid=2, prop=ps)).sync(1)
    res.append(sc.recv(0, 1))
    sc = Scn("props/v5/forward-to-v4")
    sc.open(0, 4)
    sc.send(0, subscribe(4, 1, [(sc.t(), 1)])).sync(0)
    sc.open(1, 5)
    sc.send(1, publish(5, sc.t(), b"m", 1, pid=2, prop=p_pair("a", "b"))).sync(1)
    res.append(sc.recv(0, 1))
    sc = Scn("props/v5/forward-from-v4")
    sc.open(0, 5)
    sc.send(0, subscribe(5, 1, [(sc.t(), 1)], prop=p_vbi(SUB_ID, 3))).sync(0)
    sc.open(1, 4)
    sc.send(1, publish(4, sc.t(), b"m", 1, pid=2)).sync(1)
    res.append(sc.recv(0, 1))
    sc = Scn("props/v5/two-sub-ids")
    sc.open(0, 5)
    sc.send(0, subscribe(5, 1, [(sc.t("+"), 1)], prop=p_vbi(SUB_ID, 5))).sync(0)
    sc.send(0, subscribe(5, 2, [(sc.t("#"), 1)], prop=p_vbi(SUB_ID, 6))).sync(0)
    sc.open(1, 5)
    sc.send(1, publish(5, sc.t("a"), b"m", 0, prop=p_pair("u", "v"))).sync(1)
    res.append(sc.recv(0, 2))
    return res
