"""Overlapping subscriptions of one client get ONE copy of a message, at the
highest granted QoS, whether the filters came in one SUBSCRIBE or several.

usage: overlapping.py HOST PORT
"""

from paho_common import Client, check, emit, host_port, install_timeout, message_fields, unique

install_timeout(40)
host, port = host_port()
base = unique("ov")

one_packet = Client(host, port, client_id=base + "-one")
one_packet.connect()
check(
    one_packet.subscribe([(base + "/#", 1), (base + "/+/c", 2), (base + "/b/c", 0)]) == [1, 2, 0],
    "granted QoS for one SUBSCRIBE",
)

separate = Client(host, port, client_id=base + "-sep")
separate.connect()
for flt, qos in [(base + "/b/c", 0), (base + "/#", 1), (base + "/+/c", 2)]:
    check(separate.subscribe([(flt, qos)]) == [qos], "granted QoS for %s" % flt)

pub = Client(host, port, client_id=base + "-pub")
pub.connect()
pub.publish(base + "/b/c", "one", qos=2)
# A QoS 2 marker: paho hands a QoS 2 message to the application on PUBREL, so a
# QoS 2 marker is seen after every copy of "one" sent before it on the wire.
pub.publish(base + "/end/c", "end", qos=2)

for name, client in [("one_packet", one_packet), ("separate", separate)]:
    got = []
    while True:
        fields = message_fields(client.next_message())
        emit("received", client=name, **fields)
        got.append(fields)
        if fields["payload"] == "end":
            break
    check(len(got) == 2, "%s got %d messages: %s" % (name, len(got), got))
    check(got[0]["payload"] == "one" and got[0]["qos"] == 2, "%s first %s" % (name, got[0]))
    check(got[1]["qos"] == 2, "%s marker QoS %s" % (name, got[1]["qos"]))
    client.disconnect()
pub.disconnect()
emit("done")
