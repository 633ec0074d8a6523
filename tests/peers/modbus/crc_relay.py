#!/usr/bin/env python3
"""A serial line between a Modbus RTU master and its slaves that spoils replies.

    python3 tests/peers/modbus/crc_relay.py --master pty --slave pty \\
        [--corrupt-every N] [--truncate-every M] [--baud 9600 --parity N --stopbits 1]

Each side is a serial device path (`/dev/pts/N`, opened here like any serial
port, whose other end the test holds) or `pty`: a new pseudo-terminal pair made
here, its master side kept by the relay, its device path printed for a program
to open. With `--master pty --slave pty` the relay joins two programs that each
open a path (mqgate on the master side, slave.py --rtu PATH on the other), as a
null-modem cable does, and with no fault options it changes nothing.

What comes from the master side (requests) goes to the slave side at once and
unchanged. What comes back (replies) is gathered until the line has been quiet
for --quiet-ms (default 4 ms, about the 3.5 characters of silence that end an
RTU frame at 9,600 baud; a pseudo-terminal splits writes anywhere, so bytes are
only taken as a frame once the line is quiet), split into frames by their
lengths when they are well-formed replies (functions 1-6, 15, 16 and
exceptions), then numbered from 1 and passed on:
  --corrupt-every N    every Nth reply has the lowest bit of its last byte
                       flipped (its CRC no longer matches)
  --truncate-every M   every Mth reply loses its last 3 bytes; a reply that is
                       both Nth and Mth is only truncated
0 (the default) turns either off.

Prints `ready <master-side path> <slave-side path>` on stdout once both sides are
open (for a `pty` side, the path a program opens), relays until SIGTERM or SIGINT,
then writes its counts on stderr, e.g.
`crc relay: requests 12, replies 11, corrupted 3, truncated 1, bytes up 96 down 143`,
and exits 0. It exits 1 if a side it opened by path goes away.
"""

import argparse
import os
import selectors
import signal
import sys
import termios
import time
import tty

try:
    import serial
except ImportError:
    sys.exit("pyserial is missing: apt-get install python3-serial")


def frame_length(data, reply):
    """Length of the RTU frame at the start of `data`, or None if unknown."""
    if len(data) < 2:
        return None
    fc = data[1]
    if fc & 0x80:
        return 5
    if reply:
        if fc in (1, 2, 3, 4):
            return 5 + data[2] if len(data) >= 3 else None
        if fc in (5, 6, 15, 16):
            return 8
    else:
        if fc in (1, 2, 3, 4, 5, 6):
            return 8
        if fc in (15, 16):
            return 9 + data[6] if len(data) >= 7 else None
    return None


def split(data, reply):
    """Frames in a burst; what cannot be parsed stays one frame."""
    frames = []
    while data:
        n = frame_length(data, reply)
        if n is None or n > len(data):
            frames.append(data)
            break
        frames.append(data[:n])
        data = data[n:]
    return frames


class Side:
    """One end of the relay: a serial device opened by path, or a pty made here."""

    def __init__(self, spec, args):
        self.port = None
        self.keep = None
        if spec == "pty":
            self.fd, self.keep = os.openpty()
            tty.setraw(self.keep)  # nothing echoed before a program opens it
            self.path = os.ttyname(self.keep)
        else:
            parity = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
            self.port = serial.Serial(
                spec,
                baudrate=args.baud,
                parity=parity[args.parity],
                stopbits=args.stopbits,
                bytesize=8,
                timeout=0,
                exclusive=False,
            )
            self.fd = self.port.fileno()
            self.path = spec
        os.set_blocking(self.fd, False)

    def read(self):
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise EOFError(f"{self.path}: {exc}") from None
        if not data and self.port is not None:
            raise EOFError(f"{self.path}: closed")
        return data

    def write(self, data):
        deadline = time.monotonic() + 2
        while data:
            try:
                n = os.write(self.fd, data)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EOFError(f"{self.path}: nobody reads") from None
                time.sleep(0.001)
                continue
            except OSError as exc:
                raise EOFError(f"{self.path}: {exc}") from None
            data = data[n:]


class Relay:
    def __init__(self, args):
        self.args = args
        self.quiet = args.quiet_ms / 1000
        self.master = Side(args.master, args)
        self.slave = Side(args.slave, args)
        self.up = bytearray()  # request bytes since the line was last quiet
        self.down = bytearray()  # reply bytes not yet passed on
        self.up_at = self.down_at = 0.0
        self.requests = self.replies = self.corrupted = self.truncated = 0
        self.bytes_up = self.bytes_down = 0

    def spoil(self, frame):
        self.replies += 1
        k = self.replies
        m, n = self.args.truncate_every, self.args.corrupt_every
        if m and k % m == 0:
            self.truncated += 1
            return frame[:-3] if len(frame) > 3 else b""
        if n and k % n == 0 and frame:
            self.corrupted += 1
            return frame[:-1] + bytes([frame[-1] ^ 0x01])
        return frame

    def run(self, stopped):
        sel = selectors.DefaultSelector()
        sel.register(self.master.fd, selectors.EVENT_READ, "up")
        sel.register(self.slave.fd, selectors.EVENT_READ, "down")
        while not stopped():
            now = time.monotonic()
            waits = [0.1]
            for buf, at in ((self.up, self.up_at), (self.down, self.down_at)):
                if buf:
                    waits.append(max(0.0, at + self.quiet - now))
            for key, _ in sel.select(min(waits)):
                if key.data == "up":
                    data = self.master.read()
                    if data:
                        self.slave.write(data)  # requests pass at once
                        self.bytes_up += len(data)
                        self.up += data
                        self.up_at = time.monotonic()
                else:
                    data = self.slave.read()
                    if data:
                        self.down += data
                        self.down_at = time.monotonic()
            now = time.monotonic()
            if self.up and now - self.up_at >= self.quiet:
                self.requests += len(split(bytes(self.up), reply=False))
                self.up.clear()
            if self.down and now - self.down_at >= self.quiet:
                out = b"".join(self.spoil(f) for f in split(bytes(self.down), reply=True))
                self.down.clear()
                self.bytes_down += len(out)
                self.master.write(out)

    def counts(self):
        return (
            f"crc relay: requests {self.requests}, replies {self.replies}, "
            f"corrupted {self.corrupted}, truncated {self.truncated}, "
            f"bytes up {self.bytes_up} down {self.bytes_down}"
        )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See tests/peers/modbus/README.md."
    )
    parser.add_argument("--master", required=True, metavar="DEVICE|pty", help="the master's side")
    parser.add_argument("--slave", required=True, metavar="DEVICE|pty", help="the slaves' side")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--parity", choices=["N", "E", "O"], default="N")
    parser.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    parser.add_argument("--corrupt-every", type=int, default=0, metavar="N")
    parser.add_argument("--truncate-every", type=int, default=0, metavar="M")
    parser.add_argument("--quiet-ms", type=float, default=4.0, metavar="MS")
    args = parser.parse_args()
    if args.corrupt_every < 0 or args.truncate_every < 0:
        parser.error("--corrupt-every and --truncate-every: 0 (never) or more")
    if args.quiet_ms <= 0:
        parser.error("--quiet-ms: more than 0")

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    try:
        relay = Relay(args)
    except (OSError, termios.error, serial.SerialException) as exc:
        hint = " (some kernels refuse parity on a pseudo-terminal: try --parity N)" if args.parity != "N" else ""
        sys.stderr.write(f"crc relay: cannot open: {exc!r}{hint}\n")
        sys.exit(2)
    print(f"ready {relay.master.path} {relay.slave.path}", flush=True)
    status = 0
    try:
        relay.run(lambda: bool(stop))
    except EOFError as exc:
        sys.stderr.write(f"crc relay: {exc}\n")
        status = 1
    sys.stderr.write(relay.counts() + "\n")
    sys.stderr.flush()
    sys.exit(status)


if __name__ == "__main__":
    main()
