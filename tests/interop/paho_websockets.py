"""paho-mqtt 2.x with transport="websockets" against a WebSocket listener (tests/websocket_clients.rs).

Usage: paho_websockets.py HOST PORT. For MQTT 3.1.1 and 5.0: a subscriber (QoS 2) gets the
messages a publisher sends at QoS 0, 1 and 2, in order and exactly once. Prints OK.
"""

import sys
import threading

import paho.mqtt.client as mqtt

HOST, PORT = sys.argv[1], int(sys.argv[2])
WAIT = 10.0


def client(name, version):
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=name,
        protocol=version,
        transport="websockets",
    )
    c.ws_set_options(path="/mqtt")
    connected = threading.Event()
    c.on_connect = lambda c, u, f, rc, p=None: connected.set()
    c.connect(HOST, PORT, keepalive=30)
    c.loop_start()
    if not connected.wait(WAIT):
        raise SystemExit(f"{name}: no CONNACK")
    return c


for version, tag in [(mqtt.MQTTv311, "v4"), (mqtt.MQTTv5, "v5")]:
    got = []
    cv = threading.Condition()

    def on_message(c, u, m):
        with cv:
            got.append((m.topic, m.payload.decode(), m.qos))
            cv.notify_all()

    sub = client(f"paho-ws-sub-{tag}", version)
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(f"paho/{tag}/#", qos=2)
    if not subscribed.wait(WAIT):
        raise SystemExit("no SUBACK")
    pub = client(f"paho-ws-pub-{tag}", version)
    for q in (0, 1, 2):
        pub.publish(f"paho/{tag}/q{q}", f"m{q}", qos=q).wait_for_publish(WAIT)
    want = [(f"paho/{tag}/q{q}", f"m{q}", q) for q in (0, 1, 2)]
    with cv:
        cv.wait_for(lambda: len(got) >= 3, WAIT)
    if got != want:
        raise SystemExit(f"{tag}: got {got}, want {want}")
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()

print("OK")
