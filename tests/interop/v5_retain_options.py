"""MQTT 5 subscription options: Retain Handling 0/1/2 [MQTT-3.3.1-9] [MQTT-3.3.1-10]
[MQTT-3.3.1-11], No Local [MQTT-3.8.3-3] and Retain As Published [MQTT-3.3.1-12]
[MQTT-3.3.1-13].

Every check ends with a marker message published after the action under test: all that
arrived before the marker is the outcome, so nothing depends on waiting for silence.

Usage: python3 v5_retain_options.py HOST PORT
"""

from v5_util import Peer, run, say


def show(label, msgs):
    say(label, [(m.payload.decode(), int(m.retain)) for m in msgs])


def main(host, port):
    pub = Peer(host, port, "v5-ro-pub")
    pub.start()
    for rh in (0, 1, 2):
        pub.publish(f"ro/rh{rh}", f"retained for rh{rh}".encode(), 1, retain=True)

    # Retain Handling: each client subscribes twice to the same filter (the second SUBSCRIBE
    # replaces the subscription), then publishes a marker to it.
    for rh in (0, 1, 2):
        c = Peer(host, port, f"v5-ro-rh{rh}")
        c.start()
        for n in (1, 2):
            c.subscribe(f"ro/rh{rh}", 1, retainHandling=rh)
            c.publish(f"ro/rh{rh}", f"marker {n}".encode(), 1)
            c.wait_payload(f"marker {n}".encode())
            show(f"rh{rh} subscribe {n}:", c.take())
        c.stop()

    # No Local: nl1 does not get its own messages back; nl0 does.
    nl1 = Peer(host, port, "v5-ro-nl1")
    nl1.start()
    nl1.subscribe("ro/nl", 1, noLocal=True)
    nl0 = Peer(host, port, "v5-ro-nl0")
    nl0.start()
    nl0.subscribe("ro/nl", 1, noLocal=False)
    nl1.publish("ro/nl", b"from nl1", 1)
    nl0.publish("ro/nl", b"from nl0", 1)
    pub.publish("ro/nl", b"marker", 1)
    nl1.wait_payload(b"marker")
    nl0.wait_payload(b"marker")
    show("no_local=1 got:", nl1.take())
    show("no_local=0 got:", nl0.take())
    nl1.stop()
    nl0.stop()

    # Retain As Published, on messages forwarded to existing subscriptions.
    rap1 = Peer(host, port, "v5-ro-rap1")
    rap1.start()
    rap1.subscribe("ro/rap", 1, retainAsPublished=True)
    rap0 = Peer(host, port, "v5-ro-rap0")
    rap0.start()
    rap0.subscribe("ro/rap", 1, retainAsPublished=False)
    pub.publish("ro/rap", b"published retained", 1, retain=True)
    pub.publish("ro/rap", b"published plain", 1, retain=False)
    rap1.wait_payload(b"published plain")
    rap0.wait_payload(b"published plain")
    show("retain_as_published=1 got:", rap1.take())
    show("retain_as_published=0 got:", rap0.take())
    # A retained message sent because of a new subscription has RETAIN set either way.
    late = Peer(host, port, "v5-ro-rap-late")
    late.start()
    late.subscribe("ro/rap", 1, retainAsPublished=False)
    late.publish("ro/rap", b"marker", 1)
    late.wait_payload(b"marker")
    show("new subscription, retain_as_published=0 got:", late.take())
    late.stop()
    rap1.stop()
    rap0.stop()
    pub.stop()


if __name__ == "__main__":
    run(main)
