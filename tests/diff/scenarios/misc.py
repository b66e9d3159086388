"""PINGREQ, DISCONNECT, AUTH, the packet types only a server sends (CONNACK, SUBACK, UNSUBACK,
PINGRESP) sent by a client, and the reserved type 0; 3.1.1 and 5.0."""

from mqtt import *  # noqa: F401,F403


def one(name, v, data, sync=False):
    sc = Scn(name)
    sc.open(0, v)
    sc.send(0, data)
    return sc.sync(0) if sync else sc.wait(0)


def scenarios():
    res = []
    for v in (4, 5):
        vs = "v%d" % v
        res += matrix("pingreq", v, 0xC0, b"")
        res += [one("pingreq/%s/body-2" % vs, v, bytes([0xC0, 0x02, 0, 0]))]
        res += matrix("connack", v, 0x20, b"\x00\x00" + (b"\x00" if v == 5 else b""))
        res += matrix("suback", v, 0x90, b"\x00\x01" + (b"\x00" if v == 5 else b"") + b"\x01")
        res += matrix("unsuback", v, 0xB0, b"\x00\x01" + (b"\x00\x00" if v == 5 else b""))
        res += matrix("pingresp", v, 0xD0, b"")
        res += matrix("reserved0", v, 0x00, b"")
        res += matrix("auth", v, 0xF0, b"\x00\x00" if v == 5 else b"")
        res += matrix("disconnect", v, 0xE0, b"\x00\x00" if v == 5 else b"")
        for b in (b"\x00", b"\xff\xff", b"\x00\x00\x00\x00"):
            res.append(one("connack/%s/body-%s" % (vs, b.hex()), v, pkt(0x20, b)))
            res.append(one("suback/%s/body-%s" % (vs, b.hex()), v, pkt(0x90, b)))
        # DISCONNECT: the will is dropped (or sent on 0x04) [MQTT-3.14.4-3]
        reasons = [None] if v == 4 else [None, 0x00, 0x04, 0x80, 0x8E, 0x03, 0xFF]
        for rc in reasons:
            sc = Scn("disconnect/%s/will-%s" % (vs, "none" if rc is None else "%02x" % rc))
            sc.open(1, v)
            sc.send(1, subscribe(v, 1, [(sc.t(), 0)])).sync(1)
            sc.open(0, v, will=(sc.t(), b"gone", 0, False))
            sc.send(0, disconnect(v, rc)).wait(0)
            res.append(sc.sync(1))
        if v == 5:
            D = lambda name, data: res.append(one("disconnect/v5/" + name, 5, data))  # noqa: E731
            D("reason-no-props", disconnect(5, 0x00))
            D("session-expiry-from-0", disconnect(5, 0, p_u32(SESSION_EXPIRY, 10)))
            D("reason-string", disconnect(5, 0, p_str(REASON_STRING, "bye")))
            D("user-prop", disconnect(5, 0, p_pair("a", "b")))
            D("server-reference", disconnect(5, 0, p_str(SERVER_REF, "x")))
            D("prop-not-allowed", disconnect(5, 0, p_u16(RECEIVE_MAX, 1)))
            D("prop-length-past-end", disconnect(5, 0, Block(b"\x04\x11")))
            sc = Scn("disconnect/v5/session-expiry-change")
            sc.open(0, 5, prop=p_u32(SESSION_EXPIRY, 5))
            res.append(sc.send(0, disconnect(5, 0, p_u32(SESSION_EXPIRY, 0))).wait(0))
            for rc in (0x00, 0x18, 0x19):
                res.append(one("auth/v5/reason-%02x" % rc, 5, pkt(0xF0, bytes([rc, 0]))))
            res.append(one("auth/v5/with-method", 5, pkt(0xF0, b"\x18" + props(p_str(AUTH_METHOD, "X")))))
            sc = Scn("auth/v5/before-connect-method")
            res.append(sc.send(0, pkt(0xF0, b"\x18" + props(p_str(AUTH_METHOD, "X")))).wait(0))
    return res
