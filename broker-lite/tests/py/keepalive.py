"""A client that only sends PINGREQs stays connected over several keep-alive
periods, and can still publish and receive afterwards.

usage: keepalive.py HOST PORT [KEEPALIVE_SECS] [PERIODS]
"""

import sys
import time

from paho_common import Client, check, emit, host_port, install_timeout, message_fields, unique

host, port = host_port()
keepalive = int(sys.argv[3]) if len(sys.argv) > 3 else 4
periods = int(sys.argv[4]) if len(sys.argv) > 4 else 3
install_timeout(keepalive * periods + 30)
base = unique("ka")

client = Client(host, port, client_id=base, keepalive=keepalive, log_pings=True)
client.connect()
check(client.subscribe([(base + "/echo", 1)]) == [1], "SUBACK")

deadline = time.monotonic() + keepalive * periods + keepalive / 2.0
while time.monotonic() < deadline:
    check(client.disconnects.empty(), "disconnected after %d PINGRESPs" % client.pingresps)
    time.sleep(0.2)
emit("idle_over", pingresps=client.pingresps)
check(client.pingresps >= periods - 1, "only %d PINGRESPs" % client.pingresps)
check(client.disconnects.empty(), "disconnected while idle")

client.publish(base + "/echo", "still here", qos=1)
fields = message_fields(client.next_message())
emit("received", **fields)
check(fields["payload"] == "still here", "echo %s" % fields)
client.disconnect()
emit("done", pingresps=client.pingresps)
