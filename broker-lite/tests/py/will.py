"""A will is published when a client's socket closes without DISCONNECT, and
not when it disconnects cleanly.

usage: will.py HOST PORT
"""

from paho_common import Client, check, emit, host_port, install_timeout, message_fields, unique

install_timeout(40)
host, port = host_port()
base = unique("will")

watcher = Client(host, port, client_id=base + "-watch")
watcher.connect()
check(watcher.subscribe([(base + "/#", 1)]) == [1], "watcher SUBACK")

polite = Client(host, port, client_id=base + "-polite", will=(base + "/polite", "polite-gone", 1, False))
polite.connect()
polite.disconnect()
emit("disconnected", client="polite")

crashed = Client(host, port, client_id=base + "-crash", will=(base + "/crash", "crash-gone", 1, False))
crashed.connect()
crashed.drop_socket()
emit("socket_closed", client="crash")

fields = message_fields(watcher.next_message())
emit("received", **fields)
check(fields["topic"] == base + "/crash", "first will on %s (the clean one must not publish)" % fields["topic"])
check(fields["payload"] == "crash-gone", "will payload %r" % fields["payload"])
check(fields["qos"] == 1, "will QoS %s" % fields["qos"])
watcher.disconnect()
emit("done")
