"""Shared helpers for the paho-mqtt interop scripts run by tests/interop.rs.

Every wait is bounded by WAIT seconds; a failed check raises Failure, which the scripts turn
into a message on stderr and a non-zero exit status.
"""

import os
import socket
import sys
import threading

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - reported by the caller
    raise SystemExit("paho-mqtt is not installed: run scripts/test.sh, which installs it")

if not hasattr(mqtt, "CallbackAPIVersion"):
    raise SystemExit("paho-mqtt 2.x is required (found 1.x): run scripts/test.sh")

WAIT = 10.0


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Peer:
    """A paho client on a background loop thread that records what it sees."""

    def __init__(self, host, port, client_id, clean_session=True, will=None, transport="tcp"):
        self.host = host
        self.port = port
        self.name = client_id
        self.cv = threading.Condition()
        self.connects = []  # (reason_code, session_present)
        self.messages = []  # paho MQTTMessage objects, in arrival order
        self.subacks = {}  # mid -> list of granted QoS / reason codes
        self.disconnected = False
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
            transport=transport,
        )
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_disconnect = self._on_disconnect
        if will is not None:
            topic, payload, qos, retain = will
            c.will_set(topic, payload, qos, retain)
        self.c = c

    # Callbacks (run on paho's loop thread).
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.cv:
            self.connects.append((reason_code, bool(flags.session_present)))
            self.cv.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cv:
            self.messages.append(msg)
            self.cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cv:
            self.subacks[mid] = [rc.value for rc in reason_codes]
            self.cv.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.cv:
            self.disconnected = True
            self.cv.notify_all()

    def wait(self, pred, what, timeout=WAIT):
        with self.cv:
            if not self.cv.wait_for(pred, timeout):
                raise Failure(f"{self.name}: timed out after {timeout} s waiting for {what}")

    def start(self):
        """Connects, starts the loop thread and waits for the CONNACK; returns session present."""
        self.c.connect(self.host, self.port, keepalive=30)
        self.c.loop_start()
        self.wait(lambda: self.connects, "CONNACK")
        rc, present = self.connects[-1]
        check(not rc.is_failure, f"{self.name}: connection refused: {rc}")
        return present

    def subscribe(self, topic, qos):
        result, mid = self.c.subscribe(topic, qos)
        check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: subscribe failed: {result}")
        self.wait(lambda: mid in self.subacks, f"SUBACK for {topic}")
        check(
            self.subacks[mid] == [qos],
            f"{self.name}: SUBACK for {topic} granted {self.subacks[mid]}, wanted [{qos}]",
        )

    def publish(self, topic, payload, qos, retain=False):
        info = self.c.publish(topic, payload, qos, retain)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: publish failed: {info.rc}")
        info.wait_for_publish(timeout=WAIT)
        check(info.is_published(), f"{self.name}: publish to {topic} not acknowledged in {WAIT} s")

    def on_topic(self, topic):
        with self.cv:
            return [m for m in self.messages if m.topic == topic]

    def wait_count(self, topic, n):
        self.wait(
            lambda: sum(1 for m in self.messages if m.topic == topic) >= n,
            f"{n} messages on {topic} (have {len(self.on_topic(topic))})",
        )
        return self.on_topic(topic)

    def stop(self):
        """Clean DISCONNECT, then stops the loop thread."""
        self.c.disconnect()
        self.wait(lambda: self.disconnected, "disconnect")
        self.c.loop_stop()

    def drop(self):
        """Stops the loop and closes the TCP connection without sending DISCONNECT."""
        self.c.loop_stop()
        s = self.c.socket()
        check(s is not None, f"{self.name}: no socket to drop")
        s.shutdown(socket.SHUT_RDWR)
        s.close()


def run(main):
    """Runs main(host, port) from argv; prints OK on success."""
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} HOST PORT", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print("OK")
    sys.stdout.flush()
    # Do not wait for stray paho threads.
    os._exit(0)
