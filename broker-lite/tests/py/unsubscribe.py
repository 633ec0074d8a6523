"""UNSUBSCRIBE stops delivery on that filter and leaves the others alone.

usage: unsubscribe.py HOST PORT
"""

from paho_common import Client, check, emit, host_port, install_timeout, message_fields, unique

install_timeout(40)
host, port = host_port()
base = unique("unsub")

client = Client(host, port, client_id=base)
client.connect()
check(client.subscribe([(base + "/a", 1), (base + "/marker", 1)]) == [1, 1], "SUBACK")

pub = Client(host, port, client_id=base + "-pub")
pub.connect()
pub.publish(base + "/a", "before", qos=1)
fields = message_fields(client.next_message())
emit("received", **fields)
check(fields["payload"] == "before", "before unsubscribe: %s" % fields)

client.unsubscribe(base + "/a")
emit("unsubscribed")
pub.publish(base + "/a", "after", qos=1)
pub.publish(base + "/marker", "marker", qos=1)
fields = message_fields(client.next_message())
emit("received", **fields)
check(fields["payload"] == "marker", "after unsubscribe got %s" % fields)
client.disconnect()
pub.disconnect()
emit("done")
