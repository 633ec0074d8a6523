"""Connect once, with or without a user name and password, and report the
CONNACK return code paho received.

usage: connack.py HOST PORT CLIENT_ID [USER [PASSWORD]]
"""

import os
import queue
import sys

from paho_common import WAIT, _new_paho, emit, fail, host_port, install_timeout

install_timeout(30)
host, port = host_port()
client_id = sys.argv[3]
user = sys.argv[4] if len(sys.argv) > 4 else None
password = sys.argv[5] if len(sys.argv) > 5 else None

codes = queue.Queue()
c = _new_paho(client_id, True)
if user is not None:
    c.username_pw_set(user, password)
c.on_connect = lambda _c, _u, _flags, rc: codes.put(rc)
c.connect(host, port, keepalive=30)
c.loop_start()
try:
    rc = codes.get(timeout=WAIT)
except queue.Empty:
    fail("no CONNACK within %ss" % WAIT)
emit("connack", rc=rc)
sys.stdout.flush()
# A refused client would otherwise keep reconnecting in its network thread.
os._exit(0)
