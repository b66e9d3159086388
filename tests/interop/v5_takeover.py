"""MQTT 5 session takeover [MQTT-3.1.4-3]: when a second client connects with the same client
id, the first is sent DISCONNECT with reason 0x8E (Session taken over) and closed; the second
stays connected and works.

Usage: python3 v5_takeover.py HOST PORT
"""

import time

from v5_util import Peer, run, say


def main(host, port):
    first = Peer(host, port, "v5-same-id")
    first.start()
    second = Peer(host, port, "v5-same-id")
    second.start()
    code, from_server = first.wait_disconnect()
    say("first: disconnect reason", code, "sent by the server", from_server)
    second.subscribe("to/t", 1)
    say("second: ack", second.publish("to/t", b"still here", 1))
    say("second got", [m.payload.decode() for m in second.wait_count(1)])
    time.sleep(0.3)
    say("second: disconnects", second.disconnects, "first: disconnects", first.disconnects)
    second.stop()


if __name__ == "__main__":
    run(main)
