"""QoS 2 both ways: COUNT messages published at QoS 2 reach a QoS 2 subscriber
exactly once, in order, at QoS 2.

usage: qos2_roundtrip.py HOST PORT [COUNT]
"""

import sys

from paho_common import Client, check, emit, host_port, install_timeout, message_fields, unique

install_timeout(40)
host, port = host_port()
count = int(sys.argv[3]) if len(sys.argv) > 3 else 20
base = unique("qos2")

sub = Client(host, port, client_id=base + "-sub")
sub.connect()
granted = sub.subscribe([(base + "/#", 2)])
emit("suback", granted=granted)
check(granted == [2], "granted %s, expected [2]" % granted)

pub = Client(host, port, client_id=base + "-pub")
pub.connect()
for i in range(count):
    pub.publish("%s/m" % base, "msg-%d" % i, qos=2)
emit("published", count=count)
# A marker after the batch: once it arrives, every copy of the batch has arrived too.
pub.publish("%s/end" % base, "end", qos=2)

received = []
while True:
    msg = sub.next_message()
    fields = message_fields(msg)
    emit("received", **fields)
    if msg.topic.endswith("/end"):
        break
    received.append(fields)

payloads = [m["payload"] for m in received]
check(payloads == ["msg-%d" % i for i in range(count)], "payloads %s" % payloads)
check(all(m["qos"] == 2 for m in received), "a message arrived below QoS 2")
pub.disconnect()
sub.disconnect()
emit("done", count=len(received))
