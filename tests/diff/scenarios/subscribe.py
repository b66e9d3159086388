"""SUBSCRIBE and UNSUBSCRIBE: framing, filters, options, properties; 3.1.1 and 5.0."""

from mqtt import *  # noqa: F401,F403
from publish import body_of

CTRL = "\x01\x1f\x7f\u0080\u009f"


def one(name, v, pk_fn, sync=True, config="default"):
    sc = Scn(name, config)
    sc.open(0, v)
    sc.send(0, pk_fn(sc))
    return sc.sync(0) if sync else sc.wait(0)


def scenarios():
    res = []
    for v in (4, 5):
        res += matrix("subscribe", v, 0x82,
                      lambda sc, v=v: body_of(subscribe(v, 3, [(sc.t("+"), 1)])))
        res += matrix("unsubscribe", v, 0xA2,
                      lambda sc, v=v: body_of(unsubscribe(v, 3, [sc.t("+")])))
        vs = "subscribe/v%d/" % v
        S = lambda sc, f, o=1, v=v, **kw: subscribe(v, 5, [(f, o)], **kw)  # noqa: E731
        cases = [
            ("qos0", lambda sc: S(sc, sc.t(), 0)),
            ("qos2", lambda sc: S(sc, sc.t(), 2)),
            ("qos3", lambda sc: S(sc, sc.t(), 3)),
            ("options-bit2", lambda sc: S(sc, sc.t(), 0x04)),
            ("options-bit3", lambda sc: S(sc, sc.t(), 0x08)),
            ("options-bits45", lambda sc: S(sc, sc.t(), 0x30)),
            ("options-bit6", lambda sc: S(sc, sc.t(), 0x40)),
            ("options-bit7", lambda sc: S(sc, sc.t(), 0x80)),
            ("many-filters", lambda sc: subscribe(v, 5, [(sc.t(str(i)), i % 3) for i in range(5)])),
            ("no-filters", lambda sc: pkt(0x82, b"\x00\x05" + (b"\x00" if v == 5 else b""))),
            ("pid-0", lambda sc: subscribe(v, 0, [(sc.t(), 1)])),
            ("filter-empty", lambda sc: S(sc, "")),
            ("filter-hash", lambda sc: S(sc, sc.t("#"))),
            ("filter-hash-middle", lambda sc: S(sc, sc.t("#/a"))),
            ("filter-hash-glued", lambda sc: S(sc, sc.t("a#"))),
            ("filter-plus-glued", lambda sc: S(sc, sc.t("a+"))),
            ("filter-plus-only", lambda sc: S(sc, "+")),
            ("filter-sys", lambda sc: S(sc, "$SYS/broker/x/" + sc.h)),
            ("filter-nul", lambda sc: S(sc, sc.t("\x00"))),
            ("filter-invalid-utf8", lambda sc: S(sc, sc.t().encode() + b"\xff")),
            ("filter-levels-201", lambda sc: S(sc, "/".join([sc.t()] + ["a"] * 199))),
            ("filter-levels-202", lambda sc: S(sc, "/".join([sc.t()] + ["a"] * 200))),
            ("filter-levels-202-hash", lambda sc: S(sc, "/".join([sc.t()] + ["+"] * 199 + ["#"]))),
            ("share", lambda sc: S(sc, "$share/g/" + sc.t())),
            ("share-no-topic", lambda sc: S(sc, "$share/g")),
            ("share-empty-group", lambda sc: S(sc, "$share//" + sc.t())),
            ("share-group-plus", lambda sc: S(sc, "$share/g+/" + sc.t())),
            ("share-group-hash", lambda sc: S(sc, "$share/#/" + sc.t())),
            ("share-empty-topic", lambda sc: S(sc, "$share/g/")),
            ("filter-length-past-end", lambda sc: pkt(0x82, b"\x00\x05" + (b"\x00" if v == 5 else b"") + b"\x00\x09ab\x01")),
            ("options-missing", lambda sc: pkt(0x82, b"\x00\x05" + (b"\x00" if v == 5 else b"") + s(sc.t()))),
        ]
        for ch in CTRL:
            cases.append(("filter-ctrl-%04x" % ord(ch), lambda sc, ch=ch: S(sc, sc.t(ch))))
        if v == 5:
            cases += [
                ("retain-handling-1", lambda sc: S(sc, sc.t(), 0x11)),
                ("retain-handling-2", lambda sc: S(sc, sc.t(), 0x21)),
                ("retain-handling-3", lambda sc: S(sc, sc.t(), 0x31)),
                ("no-local", lambda sc: S(sc, sc.t(), 0x05)),
                ("rap", lambda sc: S(sc, sc.t(), 0x09)),
                ("share-no-local", lambda sc: S(sc, "$share/g/" + sc.t(), 0x05)),
                ("sub-id", lambda sc: S(sc, sc.t(), prop=p_vbi(SUB_ID, 1))),
                ("sub-id-max", lambda sc: S(sc, sc.t(), prop=p_vbi(SUB_ID, 268435455))),
                ("sub-id-0", lambda sc: S(sc, sc.t(), prop=p_vbi(SUB_ID, 0))),
                ("sub-id-twice", lambda sc: S(sc, sc.t(), prop=p_vbi(SUB_ID, 1) + p_vbi(SUB_ID, 2))),
                ("prop-user", lambda sc: S(sc, sc.t(), prop=p_pair("a", "b"))),
                ("prop-not-allowed", lambda sc: S(sc, sc.t(), prop=p_u32(SESSION_EXPIRY, 1))),
                ("prop-unknown", lambda sc: S(sc, sc.t(), prop=b"\x7f\x00")),
            ]
        for name, fn in cases:
            res.append(one(vs + name, v, fn))

        vs = "unsubscribe/v%d/" % v
        U = lambda sc, fs, v=v, **kw: unsubscribe(v, 6, fs, **kw)  # noqa: E731
        cases = [
            ("not-subscribed", lambda sc: U(sc, [sc.t()])),
            ("two-filters", lambda sc: U(sc, [sc.t("a"), sc.t("b")])),
            ("no-filters", lambda sc: pkt(0xA2, b"\x00\x06" + (b"\x00" if v == 5 else b""))),
            ("pid-0", lambda sc: unsubscribe(v, 0, [sc.t()])),
            ("filter-empty", lambda sc: U(sc, [""])),
            ("filter-hash-middle", lambda sc: U(sc, [sc.t("#/a")])),
            ("filter-invalid-utf8", lambda sc: U(sc, [sc.t().encode() + b"\xff"])),
            ("filter-nul", lambda sc: U(sc, [sc.t("\x00")])),
            ("filter-levels-202", lambda sc: U(sc, ["/".join([sc.t()] + ["a"] * 200)])),
            ("share", lambda sc: U(sc, ["$share/g/" + sc.t()])),
            ("share-no-topic", lambda sc: U(sc, ["$share/g"])),
        ]
        for ch in CTRL:
            cases.append(("filter-ctrl-%04x" % ord(ch), lambda sc, ch=ch: U(sc, [sc.t(ch)])))
        if v == 5:
            cases += [
                ("prop-user", lambda sc: U(sc, [sc.t()], prop=p_pair("a", "b"))),
                ("prop-sub-id", lambda sc: U(sc, [sc.t()], prop=p_vbi(SUB_ID, 1))),
                ("prop-unknown", lambda sc: U(sc, [sc.t()], prop=b"\x7f\x00")),
            ]
        for name, fn in cases:
            res.append(one(vs + name, v, fn))
        # subscribe then unsubscribe: the code says success
        sc = Scn(vs + "after-subscribe")
        sc.open(0, v)
        sc.send(0, subscribe(v, 1, [(sc.t(), 1)])).sync(0)
        res.append(sc.send(0, unsubscribe(v, 2, [sc.t(), sc.t("z")])).sync(0))
    return res
