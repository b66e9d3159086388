"""Packet builders and the scenario type shared by the scenario tables.

A scenario is a list of steps on numbered client connections (a connection opens on its first
`send`). The recorder (scripts/diff-record) plays the steps against mosquitto 2.0.20 and writes
what came back; tests/differential.rs plays the same steps against midge and compares.

Steps:
  send C HEX      write these bytes on connection C (opening it first if needed)
  sync C          write PINGREQ, then read until PINGRESP, a close, or the bound
  wait C          read until the connection closes or the bound passes
  recv C N        read until N packets arrived, a close, or the bound
  close C         close connection C (no DISCONNECT)
  sleep MS        pause
Client ids and topics are derived from the scenario name, so scenarios sharing one broker never
meet each other's clients or messages.
"""

import hashlib


def vbi(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def b_(x):
    return x.encode() if isinstance(x, str) else bytes(x)


def s(x):
    x = b_(x)
    return len(x).to_bytes(2, "big") + x


def pkt(b1, body):
    return bytes([b1]) + vbi(len(body)) + body


# ----- properties (MQTT 5) ------------------------------------------------------------------

def p_byte(i, v):
    return bytes([i, v])


def p_u16(i, v):
    return bytes([i]) + v.to_bytes(2, "big")


def p_u32(i, v):
    return bytes([i]) + v.to_bytes(4, "big")


def p_vbi(i, v):
    return bytes([i]) + vbi(v)


def p_str(i, v):
    return bytes([i]) + s(v)


def p_pair(k, v):
    return bytes([0x26]) + s(k) + s(v)


def props(*ps):
    body = b"".join(ps)
    return vbi(len(body)) + body


PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION = 0x09
SUB_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_ID = 0x12
KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQ_PROBLEM = 0x17
WILL_DELAY = 0x18
REQ_RESPONSE = 0x19
RESPONSE_INFO = 0x1A
SERVER_REF = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAX = 0x21
TOPIC_ALIAS_MAX = 0x22
TOPIC_ALIAS = 0x23
MAX_QOS = 0x24
RETAIN_AVAIL = 0x25
USER_PROP = 0x26
MAX_PACKET = 0x27


# ----- packets --------------------------------------------------------------------------------

def connect(v, cid, clean=True, keep=60, will=None, user=None, pw=None, prop=b"",
            name=None, level=None, flags=None, extra=b""):
    """CONNECT for protocol version v (3, 4 or 5). will = (topic, payload, qos, retain[, props])."""
    if name is None:
        name = b"MQIsdp" if v == 3 else b"MQTT"
    if level is None:
        level = v
    f = 0x02 if clean else 0
    if will is not None:
        f |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    if user is not None:
        f |= 0x80
    if pw is not None:
        f |= 0x40
    if flags is not None:
        f = flags
    body = s(name) + bytes([level, f]) + keep.to_bytes(2, "big")
    if v == 5:
        body += prop if _is_block(prop) else props(prop)
    body += s(cid)
    if will is not None:
        if v == 5:
            wp = will[4] if len(will) > 4 else b""
            body += props(wp)
        body += s(will[0]) + s(will[1])
    if user is not None:
        body += s(user)
    if pw is not None:
        body += s(pw)
    return pkt(0x10, body + extra)


class Block(bytes):
    """A property block already length-prefixed (to send a wrong length on purpose)."""


def _is_block(p):
    return isinstance(p, Block)


def publish(v, topic, payload=b"", qos=0, retain=False, dup=False, pid=1, prop=b""):
    body = s(topic)
    if qos > 0:
        body += pid.to_bytes(2, "big")
    if v == 5:
        body += prop if _is_block(prop) else props(prop)
    body += b_(payload)
    return pkt(0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0), body)


def subscribe(v, pid, filters, prop=b"", b1=0x82):
    """filters: list of (filter, options byte)."""
    body = pid.to_bytes(2, "big")
    if v == 5:
        body += prop if _is_block(prop) else props(prop)
    for f, o in filters:
        body += s(f) + bytes([o])
    return pkt(b1, body)


def unsubscribe(v, pid, filters, prop=b"", b1=0xA2):
    body = pid.to_bytes(2, "big")
    if v == 5:
        body += prop if _is_block(prop) else props(prop)
    for f in filters:
        body += s(f)
    return pkt(b1, body)


def ack(b1, pid, reason=None, prop=None):
    body = pid.to_bytes(2, "big")
    if reason is not None:
        body += bytes([reason])
        if prop is not None:
            body += prop if _is_block(prop) else props(prop)
    return pkt(b1, body)


def disconnect(v, reason=None, prop=None):
    body = b""
    if reason is not None:
        body += bytes([reason])
        if prop is not None:
            body += prop if _is_block(prop) else props(prop)
    return pkt(0xE0, body)


PINGREQ = bytes([0xC0, 0x00])


# ----- scenarios ------------------------------------------------------------------------------

class Scn:
    def __init__(self, name, config="default", note=""):
        self.name = name
        self.config = config
        self.note = note
        self.steps = []
        self.h = hashlib.sha1(name.encode()).hexdigest()[:10]

    def cid(self, k=0):
        """A client id unique to this scenario."""
        return "d%s-%d" % (self.h, k)

    def t(self, suffix=""):
        """A topic unique to this scenario."""
        return "x/%s%s" % (self.h, ("/" + suffix) if suffix else "")

    def send(self, c, data):
        self.steps.append(("send", c, bytes(data)))
        return self

    def sync(self, c=0):
        self.steps.append(("sync", c))
        return self

    def wait(self, c=0):
        self.steps.append(("wait", c))
        return self

    def recv(self, c, n):
        self.steps.append(("recv", c, n))
        return self

    def close(self, c=0):
        self.steps.append(("close", c))
        return self

    def sleep(self, ms):
        self.steps.append(("sleep", ms))
        return self

    def open(self, c, v, **kw):
        """CONNECT with a scenario-unique id (unless given) and read the CONNACK."""
        cid = kw.pop("cid", None)
        if cid is None:
            cid = self.cid(c)
        self.send(c, connect(v, cid, **kw))
        return self.sync(c)


# ----- generated variants -----------------------------------------------------------------------

def framing(b1, body):
    """The variants every packet type gets: (variant name, bytes)."""
    out = []
    t = b1 & 0xF0
    for f in range(16):
        if t | f != b1:
            out.append(("flags-%x" % f, pkt(t | f, body)))
    for cut in range(len(body)):
        out.append(("cut-%d" % cut, pkt(b1, body[:cut])))
    out.append(("trailing-1", pkt(b1, body + b"\x00")))
    out.append(("trailing-3", pkt(b1, body + b"\x01\x02\x03")))
    out.append(("length-5-bytes", bytes([b1, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) + body))
    out.append(("length-overlong", bytes([b1]) + bytes([0x80 | len(body), 0x00]) + body
                if len(body) < 128 else pkt(b1, body)))
    return out


def matrix(family, v, b1, body, config="default", first=False, pre=None):
    """Scenarios for one packet type on protocol version v: valid (then a PINGREQ round trip),
    each framing variant (then read until the broker closes or the bound passes), and the valid
    packet sent as the first packet of a connection. `body` is bytes or a function of the
    scenario (for ids unique to it). `pre(scn)` adds steps before the packet (default: connect
    with version v); `first` sends the packet as the first on the connection instead."""
    vs = "v%d" % v
    res = []
    make = body if callable(body) else (lambda sc: body)
    names = [n for n, _ in framing(b1, make(Scn("probe")))]

    def new(variant):
        sc = Scn("%s/%s/%s" % (family, vs, variant), config)
        if not first:
            if pre:
                pre(sc)
            else:
                sc.open(0, v)
        return sc

    sc = new("valid")
    res.append(sc.send(0, pkt(b1, make(sc))).sync(0))
    for name in names:
        sc = new(name)
        data = dict(framing(b1, make(sc)))[name]
        res.append(sc.send(0, data).wait(0))
    if not first:
        sc = Scn("%s/%s/before-connect" % (family, vs), config)
        res.append(sc.send(0, pkt(b1, make(sc))).wait(0))
    return res
