#!/usr/bin/env python3
"""amqtt 0.12.1 as an upstream broker for the end-to-end tests.

    python3 tests/peers/amqtt-broker.py --port N [--host 127.0.0.1]

One TCP listener, anonymous clients allowed, no $SYS topics and no packet
logging; sessions live in memory, so none survives a restart. Prints
`listening on HOST:PORT` on stdout once the listener accepts connections, logs
the broker's connection events and errors on stderr, and exits on SIGTERM or
SIGINT: 0 after shutting the broker down, 1 if the shutdown took longer than
SHUTDOWN_LIMIT.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys

try:
    from amqtt.broker import Broker
except ImportError:
    sys.exit("amqtt is missing: python3 -m pip install amqtt==0.12.1")

# Seconds a graceful shutdown may take before the process exits anyway.
SHUTDOWN_LIMIT = 3


def config(host: str, port: int) -> dict:
    # amqtt 0.12's BrokerConfig: `listeners` needs a `default` entry; `plugins`
    # replaces the default list (event and packet loggers, $SYS every 20 s).
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(config(host, port))
    await broker.start()
    print(f"listening on {host}:{port}", flush=True)
    await stop.wait()
    log = logging.getLogger("amqtt-broker")
    log.info("signal: shutting down")
    try:
        await asyncio.wait_for(broker.shutdown(), SHUTDOWN_LIMIT)
    except asyncio.TimeoutError:
        # amqtt 0.12.1 can wait a long time for sessions with messages in flight.
        log.warning("shutdown unfinished after %s s: exiting without it", SHUTDOWN_LIMIT)
        logging.shutdown()
        os._exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    if not 0 < args.port < 65536:
        parser.error("--port must be 1 to 65535")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="amqtt: %(levelname)s %(name)s: %(message)s",
    )
    # Connections, disconnections and their reasons; not every packet.
    logging.getLogger("amqtt.broker").setLevel(logging.INFO)
    logging.getLogger("amqtt-broker").setLevel(logging.INFO)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
