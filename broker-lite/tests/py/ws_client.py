"""MQTT over WebSocket with paho-mqtt (transport="websockets"), plain or TLS.

usage: ws_client.py HOST PORT [--path P] [--ca FILE] MODE ARGS...
  roundtrip COUNT     subscribe and publish COUNT messages at QoS 0, 1 and 2
                      plus one of 200 kB on one connection; check every one
                      comes back once, in order
  listen TOPIC COUNT  subscribe (prints "subscribed"), print the next COUNT
                      messages, exit
  publish TOPIC P...  publish each payload P at QoS 1, then disconnect
"""

import argparse
import queue
import threading

import paho.mqtt.client as mqtt

from paho_common import WAIT, check, emit, fail, install_timeout, unique

install_timeout(40)
parser = argparse.ArgumentParser()
parser.add_argument("host")
parser.add_argument("port", type=int)
parser.add_argument("--path", default="/mqtt")
parser.add_argument("--ca")
parser.add_argument("mode")
parser.add_argument("rest", nargs="*")
args = parser.parse_args()


class WsClient:
    """A paho client over WebSocket whose callbacks feed queues."""

    def __init__(self, client_id):
        kwargs = dict(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311, transport="websockets")
        if hasattr(mqtt, "CallbackAPIVersion"):
            self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kwargs)
        else:
            self.c = mqtt.Client(**kwargs)
        self.c.ws_set_options(path=args.path)
        if args.ca:
            self.c.tls_set(ca_certs=args.ca)
        self.connacks = queue.Queue()
        self.messages = queue.Queue()
        self.done = {}
        self.cond = threading.Condition()
        self.c.on_connect = lambda _c, _u, _f, rc: self.connacks.put(rc)
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.c.on_subscribe = lambda _c, _u, mid, granted: self._done(mid, list(granted))
        self.c.on_publish = lambda _c, _u, mid: self._done(mid, True)

    def _done(self, mid, value):
        with self.cond:
            self.done[mid] = value
            self.cond.notify_all()

    def _wait(self, mid, what):
        with self.cond:
            if not self.cond.wait_for(lambda: mid in self.done, WAIT):
                fail("no %s for mid %s within %ss" % (what, mid, WAIT))
            return self.done.pop(mid)

    def connect(self):
        self.c.connect(args.host, args.port, keepalive=30)
        self.c.loop_start()
        try:
            rc = self.connacks.get(timeout=WAIT)
        except queue.Empty:
            fail("no CONNACK within %ss" % WAIT)
        check(rc == 0, "CONNACK code %s" % rc)

    def subscribe(self, topic, qos):
        rc, mid = self.c.subscribe(topic, qos)
        check(rc == mqtt.MQTT_ERR_SUCCESS, "subscribe not sent: %s" % rc)
        return self._wait(mid, "SUBACK")

    def publish(self, topic, payload, qos):
        info = self.c.publish(topic, payload, qos=qos)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, "publish not sent: %s" % info.rc)
        self._wait(info.mid, "publish completion")

    def next_message(self):
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            fail("no message within %ss" % WAIT)

    def disconnect(self):
        self.c.disconnect()
        self.c.loop_stop()


def roundtrip(count):
    base = unique("ws")
    client = WsClient(base)
    client.connect()
    granted = client.subscribe(base + "/#", 2)
    check(granted == [2], "granted %s" % granted)
    sent = []
    for i in range(count):
        payload = ("m-%d" % i).encode()
        client.publish(base + "/t", payload, qos=i % 3)
        sent.append(payload)
    big = bytes(range(256)) * 800
    client.publish(base + "/t", big, qos=1)
    sent.append(big)
    for want in sent:
        msg = client.next_message()
        check(msg.payload == want, "got %r..., expected %r..." % (msg.payload[:20], want[:20]))
    emit("done", count=len(sent), big=len(big))
    client.disconnect()


def listen(topic, count):
    client = WsClient(unique("ws-listen"))
    client.connect()
    client.subscribe(topic, 1)
    emit("subscribed")
    for _ in range(count):
        msg = client.next_message()
        emit("received", topic=msg.topic, payload=msg.payload.decode("utf-8", "replace"))
    client.disconnect()


def publish(topic, payloads):
    client = WsClient(unique("ws-publish"))
    client.connect()
    for p in payloads:
        client.publish(topic, p.encode(), qos=1)
    emit("published", count=len(payloads))
    client.disconnect()


if args.mode == "roundtrip":
    roundtrip(int(args.rest[0]))
elif args.mode == "listen":
    listen(args.rest[0], int(args.rest[1]))
elif args.mode == "publish":
    publish(args.rest[0], args.rest[1:])
else:
    fail("unknown mode %s" % args.mode)
