#!/usr/bin/env python3
"""A Modbus device (slave) for mqgate's tests, on pymodbus 3.16.

    python3 tests/peers/modbus/slave.py --tcp 127.0.0.1:PORT          [options]
    python3 tests/peers/modbus/slave.py --rtu-over-tcp 127.0.0.1:PORT [options]
    python3 tests/peers/modbus/slave.py --rtu /dev/pts/N [--baud 9600 --parity N --stopbits 1] [options]
    python3 tests/peers/modbus/slave.py --rtu pty        [--baud ...]  [options]

Transports:
  --tcp HOST:PORT           Modbus TCP (MBAP header). PORT 0 picks a free port.
  --rtu-over-tcp HOST:PORT  RTU frames (unit, PDU, CRC) over a TCP connection, as
                            serial-to-Ethernet converters pass them; PORT 0 as above.
  --rtu PATH                RTU on a serial device, e.g. the slave side of a
                            pseudo-terminal whose master side the test holds.
  --rtu pty                 RTU on a pseudo-terminal made here: the device path a
                            master opens is the one on the ready line. (Two pairs,
                            bridged inside: pymodbus opens one by its path, the
                            master program the other.)
Only loopback addresses are accepted for the TCP transports.

Options:
  --layout FILE     the register layout (default: layout.json beside this file)
  --units 1,2,3     the unit ids served, each with its own copy of the layout (default 1)
  --dead 3          this unit never answers (repeatable, or 3,4)
  --late 2:300      unit 2 answers 300 ms late (repeatable, or 2:300,3:50)
  --busy 2:3        unit 2 answers its first 3 requests with exception 6, Slave
                    Device Busy, then normally (repeatable, or 2:3,3:1)
  --log FILE        append one line per request received:
                    `<unix time> unit=U fn=F address=A count=C fault=F`, fault being
                    none, dead, unknown (a unit not served), busy, late or busy+late
Unit ids not in --units are not answered either (on TCP too: no exception 0x0B).
Reads and writes of addresses past the layout's sizes, or touching a forbidden
range (holding and input 900..909), answer exception 2, Illegal Data Address.
Writes (functions 5, 6, 15, 16) change what later reads return, per unit.

Prints exactly one line on stdout once it listens: `ready <port>` for the TCP
transports, `ready <device path>` for RTU; then serves until SIGTERM or SIGINT
and exits 0. Errors go to stderr with exit status 2.

How the faults are made: pymodbus 3.16 reads and writes the data store in an
async coroutine per request (ServerRequestHandler.handle_request), but takes the
request from a field of the connection's handler (`last_pdu`) that the next
request overwrites; a reply sent late would then carry the unit id and
transaction id of whatever request came after it. So the handler here is a
subclass that takes each request as it is decoded and answers it in a task of
its own: log it, stay silent for a dead or unknown unit, sleep for a late one,
answer exception 6 while a busy one still has busy answers left, else let the
request update or read the data store (pymodbus's datastore_update) and send
that. The data store is pymodbus 3.16's SimDevice/SimData, one SimDevice per
unit with four separate tables; ModbusDeviceContext and ModbusSequentialDataBlock
still exist in 3.16 but are deprecated wrappers that build the same SimDevice.
"""

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import layout as layout_file  # noqa: E402  (beside this script)

try:
    import pymodbus
    from pymodbus.constants import ExcCodes
    from pymodbus.framer import FramerType
    from pymodbus.pdu import ExceptionResponse
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer
    from pymodbus.server.requesthandler import ServerRequestHandler
    from pymodbus.simulator import DataType, SimData, SimDevice
except ImportError as exc:
    sys.exit(f"pymodbus 3.16 is needed ({exc}): python3 -m pip install pymodbus==3.16.1")

log = logging.getLogger("modbus-slave")


def tables(values, size, forbidden):
    """The four SimData lists (coils, discrete inputs, holding, input) of one unit."""
    out = []
    for table in ("coil", "discrete", "holding", "input"):
        n = size[table]
        if table in ("coil", "discrete"):
            # Bits are addressed one by one (SimDevice's use_bit_addressing,
            # the default with four separate tables).
            bits = [bool(values[table].get(a, False)) for a in range(n)]
            out.append([SimData(address=0, values=bits, datatype=DataType.BITS)])
            continue
        bad = set()
        for t, first, last in forbidden:
            if t == table:
                bad.update(range(first, last + 1))
        blocks, run, start = [], [], 0
        for a in range(n + 1):
            if a < n and a not in bad:
                if not run:
                    start = a
                run.append(values[table].get(a, 0))
                continue
            if run:
                blocks.append(SimData(address=start, values=run, datatype=DataType.REGISTERS))
                run = []
            if a < n:
                blocks.append(SimData(address=a, datatype=DataType.INVALID))
        out.append(blocks)
    return tuple(out)


class Faults:
    """Which units answer, and how; shared by every connection."""

    def __init__(self, units, dead, late, busy, log_path):
        self.units = set(units)
        self.dead = set(dead)
        self.late = dict(late)  # unit -> seconds
        self.busy = dict(busy)  # unit -> busy answers left
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def take(self, pdu):
        """What to do with a request just received: (answer?, delay s, busy?)."""
        unit = pdu.dev_id
        if unit not in self.units:
            fault, answer, delay, busy = "unknown", False, 0.0, False
        elif unit in self.dead:
            fault, answer, delay, busy = "dead", False, 0.0, False
        else:
            busy = self.busy.get(unit, 0) > 0
            if busy:
                self.busy[unit] -= 1
            delay = self.late.get(unit, 0.0)
            parts = (["busy"] if busy else []) + (["late"] if delay else [])
            fault, answer = "+".join(parts) or "none", True
        if self.log:
            fc = pdu.function_code
            count = 1 if fc in (5, 6) else pdu.count
            self.log.write(
                f"{time.time():.6f} unit={unit} fn={fc} address={pdu.address} count={count} fault={fault}\n"
            )
        return answer, delay, busy


class Handler(ServerRequestHandler):
    """One connection (or the serial line): each request answered by its own task."""

    def callback_data(self, data, addr=None):
        used = super().callback_data(data, addr)  # decodes into last_pdu
        pdu, self.last_pdu = self.last_pdu, None  # handle_later finds nothing
        if pdu is not None:
            task = self.loop.create_task(self.answer(pdu, self.last_addr))
            self.server.tasks.add(task)
            task.add_done_callback(self.server.tasks.discard)
        return used

    def handle_later(self):
        """pymodbus's own dispatch, scheduled by callback_data: nothing left to do."""

    async def answer(self, pdu, addr):
        faults = self.server.faults
        answer, delay, busy = faults.take(pdu)
        if not answer:
            return
        if delay:
            await asyncio.sleep(delay)
        if busy:
            response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_BUSY)
        else:
            try:
                response = await pdu.datastore_update(self.server.context, pdu.dev_id)
            except Exception as exc:  # noqa: BLE001  (pymodbus answers 4 here too)
                log.error("request %s: %s", pdu, exc)
                response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        if not self.transport:
            return  # the connection closed while this one waited
        try:
            self.server_send(response, addr)
        except Exception as exc:  # noqa: BLE001
            log.warning("reply to unit %s not sent: %s", pdu.dev_id, exc)


class Faulty:
    """Mixed into pymodbus's server classes: connections get the Handler above."""

    def callback_new_connection(self):
        return Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class TcpServer(Faulty, ModbusTcpServer):
    pass


class SerialServer(Faulty, ModbusSerialServer):
    pass


def host_port(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        port = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: HOST:PORT, e.g. 127.0.0.1:0") from None
    if not loopback:
        raise argparse.ArgumentTypeError(f"{host}: only loopback addresses")
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"{port}: a port is 0 to 65535")
    return host, port


def unit_list(text):
    units = []
    for part in text.split(","):
        u = int(part)
        if not 0 <= u <= 255:
            raise argparse.ArgumentTypeError(f"unit {u}: 0 to 255")
        units.append(u)
    return units


def unit_pairs(text):
    pairs = []
    for part in text.split(","):
        unit, sep, n = part.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"{part!r}: UNIT:N")
        pairs.append((unit_list(unit)[0], int(n)))
    return pairs


class PtyBridge:
    """Two pseudo-terminal pairs joined at their master sides: pymodbus opens
    `inner`, the test's master program opens `outer`."""

    def __init__(self, loop):
        self.loop = loop
        self.inner_m, self.inner_s = os.openpty()
        self.outer_m, self.outer_s = os.openpty()
        # Raw, so that nothing is echoed back before a program sets its own mode;
        # the slave sides stay open here so the master sides never read EIO.
        tty.setraw(self.inner_s)
        tty.setraw(self.outer_s)
        for fd in (self.inner_m, self.outer_m):
            os.set_blocking(fd, False)
        self.inner = os.ttyname(self.inner_s)
        self.outer = os.ttyname(self.outer_s)
        loop.add_reader(self.inner_m, self.copy, self.inner_m, self.outer_m)
        loop.add_reader(self.outer_m, self.copy, self.outer_m, self.inner_m)

    def copy(self, src, dst):
        try:
            data = os.read(src, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        while data:
            try:
                n = os.write(dst, data)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                return
            data = data[n:]

    def close(self):
        for fd in (self.inner_m, self.outer_m):
            self.loop.remove_reader(fd)
        for fd in (self.inner_m, self.outer_m, self.inner_s, self.outer_s):
            os.close(fd)


async def serve(args, devices, faults):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bridge = None
    if args.tcp or args.rtu_over_tcp:
        host, port = args.tcp or args.rtu_over_tcp
        framer = FramerType.SOCKET if args.tcp else FramerType.RTU
        server = TcpServer(devices, framer=framer, address=(host, port))
    else:
        path = args.rtu
        if path == "pty":
            bridge = PtyBridge(loop)
            path = bridge.inner
        server = SerialServer(
            devices,
            framer=FramerType.RTU,
            port=path,
            baudrate=args.baud,
            parity=args.parity,
            stopbits=args.stopbits,
            bytesize=8,
            timeout=1,
            reconnect_delay=0.2,
        )
    server.faults = faults
    server.tasks = set()
    try:
        await server.serve_forever(background=True)
    except Exception as exc:  # noqa: BLE001  (OSError, termios.error, RuntimeError...)
        hint = ""
        if args.rtu and args.parity != "N":
            hint = " (some kernels refuse parity on a pseudo-terminal: try --parity N)"
        sys.stderr.write(f"modbus slave: cannot listen: {exc!r}{hint}\n")
        if bridge:
            bridge.close()
        sys.exit(2)
    if args.tcp or args.rtu_over_tcp:
        where = server.transport.sockets[0].getsockname()[1]
    else:
        where = bridge.outer if bridge else args.rtu
    print(f"ready {where}", flush=True)
    await stop.wait()
    for task in list(server.tasks):
        task.cancel()
    await server.shutdown()
    if bridge:
        bridge.close()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="See tests/peers/modbus/README.md.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=host_port, metavar="HOST:PORT")
    where.add_argument("--rtu-over-tcp", type=host_port, metavar="HOST:PORT")
    where.add_argument("--rtu", metavar="DEVICE|pty")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--parity", choices=["N", "E", "O"], default="N")
    parser.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    parser.add_argument("--layout", type=Path, default=layout_file.LAYOUT)
    parser.add_argument("--units", type=unit_list, default=[1])
    parser.add_argument("--dead", type=unit_list, action="append", default=[])
    parser.add_argument("--late", type=unit_pairs, action="append", default=[], metavar="UNIT:MS")
    parser.add_argument("--busy", type=unit_pairs, action="append", default=[], metavar="UNIT:N")
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()

    units = args.units
    dead = [u for group in args.dead for u in group]
    late = {u: ms / 1000 for group in args.late for u, ms in group}
    busy = {u: n for group in args.busy for u, n in group}
    for what, listed in (("--late", late), ("--busy", busy)):
        for u in listed:
            if u not in units:
                parser.error(f"{what} {u}: unit {u} is not in --units")
    if len(set(units)) != len(units):
        parser.error("--units: a unit id twice")

    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="modbus slave: %(levelname)s %(name)s: %(message)s"
    )
    try:
        values, size, forbidden = layout_file.load(args.layout)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"modbus slave: layout {args.layout}: {exc}\n")
        sys.exit(2)
    # One SimDevice per unit served, dead ones too (they are silenced before the
    # data store is reached); each has its own registers.
    devices = [SimDevice(id=u, simdata=tables(values, size, forbidden)) for u in sorted(set(units) | set(dead))]
    faults = Faults(units, dead, late, busy, args.log)
    log.info("pymodbus %s", pymodbus.__version__)
    asyncio.run(serve(args, devices, faults))


if __name__ == "__main__":
    main()
