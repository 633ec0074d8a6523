"""Shared pieces of the paho-mqtt scripts: JSON-line output, a hard timeout,
and a client wrapper that turns callbacks into blocking waits.

Works with paho-mqtt 1.6 and 2.x (the 2.x client is created with the
version 1 callback API so both use the same callback signatures).
"""

import json
import os
import queue
import signal
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt

WAIT = 10.0


def emit(event, **fields):
    """Print one JSON line for the test to read."""
    fields["event"] = event
    print(json.dumps(fields, sort_keys=True), flush=True)


def fail(reason):
    """Report a failure and exit non-zero."""
    emit("fail", reason=reason)
    sys.stdout.flush()
    os._exit(1)


def check(cond, reason):
    if not cond:
        fail(reason)


def install_timeout(seconds):
    """Kill the whole script after `seconds`, whatever it is waiting for."""

    def on_alarm(_sig, _frame):
        emit("fail", reason="script timeout after %ss" % seconds)
        sys.stdout.flush()
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


def host_port():
    if len(sys.argv) < 3:
        print("usage: %s HOST PORT [ARGS...]" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    return sys.argv[1], int(sys.argv[2])


def _new_paho(client_id, clean_session):
    kwargs = dict(client_id=client_id, clean_session=clean_session, protocol=mqtt.MQTTv311)
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kwargs)
    return mqtt.Client(**kwargs)


class Waiter:
    """Results keyed by message id, filled by callbacks, awaited with a timeout."""

    def __init__(self):
        self.cond = threading.Condition()
        self.done = {}

    def put(self, mid, value=True):
        with self.cond:
            self.done[mid] = value
            self.cond.notify_all()

    def wait(self, mid, what):
        with self.cond:
            ok = self.cond.wait_for(lambda: mid in self.done, WAIT)
            if not ok:
                fail("no %s for mid %s within %ss" % (what, mid, WAIT))
            return self.done.pop(mid)


class Client:
    """A paho client with a network thread and blocking helpers."""

    def __init__(self, host, port, client_id="", clean_session=True, keepalive=30, will=None, log_pings=False):
        self.host, self.port, self.keepalive = host, port, keepalive
        self.name = client_id or "anonymous"
        self.c = _new_paho(client_id, clean_session)
        if will is not None:
            topic, payload, qos, retain = will
            self.c.will_set(topic, payload, qos=qos, retain=retain)
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.subacks = Waiter()
        self.unsubacks = Waiter()
        self.published = Waiter()
        self.pingresps = 0
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda _c, _u, mid, granted: self.subacks.put(mid, list(granted))
        self.c.on_unsubscribe = lambda _c, _u, mid: self.unsubacks.put(mid)
        self.c.on_publish = lambda _c, _u, mid: self.published.put(mid)
        if log_pings:
            self.c.on_log = self._on_log

    def _on_connect(self, _c, _u, flags, rc):
        self.connacks.put((rc, int(flags.get("session present", 0))))

    def _on_disconnect(self, _c, _u, rc):
        self.disconnects.put(rc)

    def _on_message(self, _c, _u, msg):
        self.messages.put(msg)

    def _on_log(self, _c, _u, _level, text):
        if "PINGRESP" in text and "Received" in text:
            self.pingresps += 1

    def connect(self, expect_rc=0):
        """Connect and wait for CONNACK; returns session present (0 or 1)."""
        self.c.connect(self.host, self.port, keepalive=self.keepalive)
        self.c.loop_start()
        try:
            rc, session_present = self.connacks.get(timeout=WAIT)
        except queue.Empty:
            fail("%s: no CONNACK within %ss" % (self.name, WAIT))
        check(rc == expect_rc, "%s: CONNACK code %s, expected %s" % (self.name, rc, expect_rc))
        return session_present

    def subscribe(self, topics):
        """Subscribe to [(filter, qos), ...] in one SUBSCRIBE; returns the granted codes."""
        rc, mid = self.c.subscribe(topics)
        check(rc == mqtt.MQTT_ERR_SUCCESS, "subscribe not sent: %s" % rc)
        return self.subacks.wait(mid, "SUBACK")

    def unsubscribe(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        check(rc == mqtt.MQTT_ERR_SUCCESS, "unsubscribe not sent: %s" % rc)
        self.unsubacks.wait(mid, "UNSUBACK")

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish and wait until the QoS flow completed (PUBACK / PUBCOMP)."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, "publish not sent: %s" % info.rc)
        self.published.wait(info.mid, "publish completion")

    def next_message(self, timeout=WAIT):
        """The next message, or a failure at the deadline."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            fail("%s: no message within %ss" % (self.name, timeout))

    def disconnect(self):
        """A clean DISCONNECT, then stop the network thread."""
        self.c.disconnect()
        try:
            self.disconnects.get(timeout=WAIT)
        except queue.Empty:
            fail("%s: disconnect did not complete" % self.name)
        self.c.loop_stop()

    def drop_socket(self):
        """Close the TCP connection without DISCONNECT, as a crashed client would."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def message_fields(msg):
    """The parts of a received message that tests compare."""
    return dict(
        topic=msg.topic,
        payload=msg.payload.decode("utf-8", "replace"),
        qos=msg.qos,
        retain=bool(msg.retain),
        dup=bool(msg.dup),
    )


def unique(prefix):
    return "%s-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000) % 1000000)
