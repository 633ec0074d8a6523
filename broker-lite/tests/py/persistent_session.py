"""A clean_session=False client keeps its subscriptions while away, gets QoS 1
and QoS 2 messages queued meanwhile (in order), and CONNACK says session present.
A later clean_session=True connect discards the session.

usage: persistent_session.py HOST PORT
"""

from paho_common import Client, check, emit, host_port, install_timeout, message_fields, unique

install_timeout(40)
host, port = host_port()
cid = unique("persist")
topic = cid + "/t"

first = Client(host, port, client_id=cid, clean_session=False)
present = first.connect()
emit("connack", attempt=1, session_present=present)
check(present == 0, "a new client id had a session")
check(first.subscribe([(topic + "/q1", 1), (topic + "/q2", 2)]) == [1, 2], "granted QoS")
first.disconnect()

pub = Client(host, port, client_id=cid + "-pub")
pub.connect()
expected = []
for i in range(3):
    pub.publish(topic + "/q1", "away-%d" % i, qos=1)
    expected.append("away-%d" % i)
pub.publish(topic + "/q2", "away-q2", qos=2)
expected.append("away-q2")
emit("published", count=len(expected))

second = Client(host, port, client_id=cid, clean_session=False)
present = second.connect()
emit("connack", attempt=2, session_present=present)
check(present == 1, "CONNACK session present was 0 on reconnect")
got = []
for _ in expected:
    fields = message_fields(second.next_message())
    emit("received", **fields)
    got.append(fields)
check([m["payload"] for m in got] == expected, "queued messages %s" % got)
check([m["qos"] for m in got] == [1, 1, 1, 2], "queued QoS %s" % [m["qos"] for m in got])

# The subscription is still there without subscribing again: a live message arrives.
pub.publish(topic + "/q1", "live", qos=1)
fields = message_fields(second.next_message())
emit("received", **fields)
check(fields["payload"] == "live", "live message %s" % fields)
second.disconnect()

third = Client(host, port, client_id=cid, clean_session=True)
present = third.connect()
emit("connack", attempt=3, session_present=present)
check(present == 0, "clean_session=True reported a session present")
third.disconnect()
pub.disconnect()
emit("done")
