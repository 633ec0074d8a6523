"""One side of a persistent session (clean_session=False) that lives across broker
restarts; the test restarts the broker between two runs of this script.

usage: persist_restart.py HOST PORT subscribe CLIENT_ID TOPIC
           connect, subscribe TOPIC/q1 at QoS 1 and TOPIC/q2 at QoS 2, disconnect
       persist_restart.py HOST PORT receive CLIENT_ID COUNT
           connect, print CONNACK's session present, receive COUNT messages,
           then report any extra message that arrives before a fence
"""

import sys

from paho_common import Client, check, emit, host_port, install_timeout, message_fields, unique

install_timeout(40)
host, port = host_port()
check(len(sys.argv) == 6, "usage: HOST PORT subscribe|receive CLIENT_ID TOPIC|COUNT")
mode, cid, arg = sys.argv[3], sys.argv[4], sys.argv[5]

client = Client(host, port, client_id=cid, clean_session=False)
present = client.connect()
emit("connack", session_present=present)
if mode == "subscribe":
    granted = client.subscribe([(arg + "/q1", 1), (arg + "/q2", 2)])
    check(granted == [1, 2], "granted QoS %s" % granted)
elif mode == "receive":
    for _ in range(int(arg)):
        emit("received", **message_fields(client.next_message()))
    # The fence: a topic of its own, a marker published there at QoS 1 by another
    # client (the broker has routed it when the PUBACK comes, after all it routed
    # before); whatever arrives before the marker is extra.
    fence = unique("fence/" + cid)
    client.subscribe([(fence, 0)])
    marker = Client(host, port, client_id=unique("fence-pub"))
    marker.connect()
    marker.publish(fence, "fence", qos=1)
    marker.disconnect()
    while True:
        msg = client.next_message()
        if msg.topic == fence:
            break
        emit("extra", **message_fields(msg))
    client.unsubscribe(fence)
else:
    check(False, "unknown mode %s" % mode)
client.disconnect()
emit("done")
