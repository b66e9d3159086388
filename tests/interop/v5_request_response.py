"""MQTT 5 request/response (section 4.10): a responder subscribed to the request topic answers
each request on its Response Topic, echoing its Correlation Data; the requester, subscribed to
its response topic, gets each answer matched to its request.

Usage: python3 v5_request_response.py HOST PORT
"""

from v5_util import PacketTypes, Peer, describe, props, run, say


def main(host, port):
    responder = Peer(host, port, "v5-rr-responder")
    responder.start()
    responder.subscribe("rr/service/request", 1)

    def answer(client, userdata, msg):
        rt = getattr(msg.properties, "ResponseTopic", None)
        cd = getattr(msg.properties, "CorrelationData", None)
        with responder.cv:
            responder.messages.append(msg)
            responder.cv.notify_all()
        if rt is None:
            return
        reply = props(PacketTypes.PUBLISH)
        if cd is not None:
            reply.CorrelationData = cd
        client.publish(rt, b"answer to " + msg.payload, 1, properties=reply)

    responder.c.on_message = answer

    requester = Peer(host, port, "v5-rr-requester")
    requester.start()
    requester.subscribe("rr/reply/v5-rr-requester", 1)
    for n, corr in ((1, b"req-1"), (2, b"\x00\x02")):
        p = props(
            PacketTypes.PUBLISH,
            ResponseTopic="rr/reply/v5-rr-requester",
            CorrelationData=corr,
        )
        rc = requester.publish("rr/service/request", f"question {n}".encode(), 1, pub_props=p)
        say(f"request {n} ack", rc)
        got = requester.wait_count(n)
        say("requester got", describe(got[n - 1]))
    for m in responder.wait_count(2):
        say("responder got", describe(m))
    requester.stop()
    responder.stop()


if __name__ == "__main__":
    run(main)
