"""Shared helpers for the MQTT 5 paho-mqtt interop scripts run by tests/interop_v5.rs.

Each script takes HOST PORT, prints a transcript of what its clients observed (one fact a
line, deterministic) and exits 0; tests/interop_v5.rs compares the transcript with the exact
expected text. A wait that runs out (every wait is bounded by WAIT seconds) or a broken
precondition raises Failure: the script prints FAIL: ... on stderr and exits 1.

Clients run paho's own loop thread (loop_start) with reconnect_on_failure=False, so a client
the broker disconnects stays disconnected (paho would otherwise reconnect behind our back).
"""

import os
import socket
import sys
import threading

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:  # pragma: no cover - reported by the caller
    raise SystemExit("paho-mqtt is not installed: run scripts/test.sh, which installs it")

if not hasattr(mqtt, "CallbackAPIVersion"):
    raise SystemExit("paho-mqtt 2.x is required (found 1.x): run scripts/test.sh")

WAIT = 10.0

__all__ = [
    "WAIT",
    "Failure",
    "PacketTypes",
    "Peer",
    "Properties",
    "SubscribeOptions",
    "check",
    "describe",
    "mqtt",
    "props",
    "run",
    "say",
]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def say(*parts):
    """One line of the transcript."""
    print(" ".join(str(p) for p in parts))
    sys.stdout.flush()


def props(packet_type, **values):
    """A paho Properties object for `packet_type` with the given values set."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def prop(p, name, default=None):
    if p is None:
        return default
    return getattr(p, name, default)


def describe(msg, *, alias=False, expiry=False):
    """A message as a transcript line: topic, payload, QoS, RETAIN and its MQTT 5 properties
    (the Topic Alias and the Message Expiry Interval only when asked, as they vary)."""
    p = msg.properties
    parts = [
        f"topic={msg.topic!r}",
        f"payload={msg.payload!r}",
        f"qos={msg.qos}",
        f"retain={int(msg.retain)}",
    ]
    for name in (
        "PayloadFormatIndicator",
        "ContentType",
        "ResponseTopic",
        "CorrelationData",
        "UserProperty",
    ):
        v = prop(p, name)
        if v is not None:
            parts.append(f"{name}={v!r}")
    ids = prop(p, "SubscriptionIdentifier")
    if ids is not None:
        parts.append(f"SubscriptionIdentifier={sorted(ids)!r}")
    if alias:
        parts.append(f"TopicAlias={prop(p, 'TopicAlias')!r}")
    if expiry and prop(p, "MessageExpiryInterval") is not None:
        parts.append(f"MessageExpiryInterval={prop(p, 'MessageExpiryInterval')!r}")
    return " ".join(parts)


class Peer:
    """A paho client on its loop thread that records everything it sees."""

    def __init__(
        self,
        host,
        port,
        client_id,
        *,
        protocol=mqtt.MQTTv5,
        will=None,
        manual_ack=False,
    ):
        self.host = host
        self.port = port
        self.name = client_id
        self.protocol = protocol
        self.cv = threading.Condition()
        self.connacks = []  # (reason code value, session present, properties)
        self.messages = []  # paho MQTTMessage objects, in arrival order
        self.subacks = {}  # mid -> list of reason code values
        self.acks = {}  # mid -> reason code value of the PUBACK / PUBCOMP
        self.disconnects = []  # (reason code value, sent by the server)
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            manual_ack=manual_ack,
            reconnect_on_failure=False,
        )
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        if will is not None:
            topic, payload, qos, retain, wprops = will
            c.will_set(topic, payload, qos, retain, properties=wprops)
        self.c = c

    # Callbacks (run on paho's loop thread).
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.cv:
            self.connacks.append((reason_code.value, bool(flags.session_present), properties))
            self.cv.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cv:
            self.messages.append(msg)
            self.cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cv:
            self.subacks[mid] = [rc.value for rc in reason_codes]
            self.cv.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.cv:
            self.acks[mid] = reason_code.value
            self.cv.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.cv:
            self.disconnects.append((reason_code.value, bool(flags.is_disconnect_packet_from_server)))
            self.cv.notify_all()

    def wait(self, pred, what, timeout=WAIT):
        with self.cv:
            if not self.cv.wait_for(pred, timeout):
                raise Failure(f"{self.name}: timed out after {timeout} s waiting for {what}")

    def start(self, clean_start=True, connect_props=None, keepalive=30):
        """Connects, starts the loop thread and waits for the CONNACK, which must accept the
        connection; returns (session present, CONNACK properties)."""
        n = len(self.connacks)
        if self.protocol == mqtt.MQTTv5:
            self.c.connect(
                self.host,
                self.port,
                keepalive=keepalive,
                clean_start=clean_start,
                properties=connect_props,
            )
        else:
            self.c.connect(self.host, self.port, keepalive=keepalive)
        self.c.loop_start()
        self.wait(lambda: len(self.connacks) > n, "CONNACK")
        rc, present, cprops = self.connacks[-1]
        check(rc == 0, f"{self.name}: connection refused with reason {rc}")
        return present, cprops

    def subscribe_raw(self, filters, sub_props=None):
        """SUBSCRIBE with [(filter, SubscribeOptions or QoS)]; returns the SUBACK's codes."""
        if self.protocol == mqtt.MQTTv5:
            result, mid = self.c.subscribe(filters, properties=sub_props)
        else:
            result, mid = self.c.subscribe(filters)
        check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: subscribe failed: {result}")
        self.wait(lambda: mid in self.subacks, f"SUBACK for {filters}")
        return self.subacks[mid]

    def subscribe(self, topic, qos=1, sub_props=None, **options):
        """Subscribes to one filter; the SUBACK must grant `qos`."""
        if self.protocol == mqtt.MQTTv5:
            opt = SubscribeOptions(qos=qos, **options)
        else:
            opt = qos
        codes = self.subscribe_raw([(topic, opt)], sub_props)
        check(codes == [qos], f"{self.name}: SUBACK for {topic} said {codes}, wanted [{qos}]")

    def publish(self, topic, payload, qos=1, retain=False, pub_props=None):
        """Publishes; for QoS 1 and 2 waits for the acknowledgement and returns its reason
        code."""
        info = self.c.publish(topic, payload, qos, retain, properties=pub_props)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: publish failed: {info.rc}")
        if qos == 0:
            return None
        self.wait(lambda: info.mid in self.acks, f"the acknowledgement of a publish to {topic!r}")
        return self.acks[info.mid]

    def count(self):
        with self.cv:
            return len(self.messages)

    def wait_count(self, n, timeout=WAIT):
        self.wait(lambda: len(self.messages) >= n, f"{n} messages (have {self.count()})", timeout)
        with self.cv:
            return list(self.messages)

    def wait_payload(self, payload, timeout=WAIT):
        """Waits for a message with this payload (a marker); returns all messages so far."""
        self.wait(
            lambda: any(m.payload == payload for m in self.messages),
            f"a message {payload!r} (have {[m.payload for m in self.messages]})",
            timeout,
        )
        with self.cv:
            return list(self.messages)

    def take(self):
        """The messages received so far, clearing the record."""
        with self.cv:
            got, self.messages = self.messages, []
            return got

    def wait_disconnect(self, timeout=WAIT):
        self.wait(lambda: self.disconnects, "a disconnection", timeout)
        return self.disconnects[0]

    def stop(self):
        """Clean DISCONNECT, then stops the loop thread."""
        self.c.disconnect()
        self.wait(lambda: self.disconnects, "the disconnection")
        self.c.loop_stop()

    def drop(self):
        """Stops the loop and closes the TCP connection without sending DISCONNECT."""
        self.c.loop_stop()
        s = self.c.socket()
        check(s is not None, f"{self.name}: no socket to drop")
        s.shutdown(socket.SHUT_RDWR)
        s.close()


def run(main):
    """Runs main(host, port) from argv; exits 0 when it returns."""
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} HOST PORT", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except Failure as e:
        sys.stdout.flush()
        print(f"FAIL: {e}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    # Do not wait for stray paho threads.
    os._exit(0)
