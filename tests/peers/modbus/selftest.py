#!/usr/bin/env python3
"""Checks slave.py and crc_relay.py against mbpoll, the way the Rust tests use them.

    python3 tests/peers/modbus/selftest.py            # run every check; exit 1 on a failure
    python3 tests/peers/modbus/selftest.py --table    # also print README.md's mbpoll table

Needs mbpoll (apt-get install mbpoll) and pymodbus 3.16. Everything listens on
127.0.0.1 or on pseudo-terminals made for the run.

mbpoll reads a field's registers as they are (no scale, no offset): a check
compares what it prints with the field's `raw` value in layout.json, or with
its `registers` where mbpoll has no matching type (64-bit values, strings, the
byte-swapped orders).
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYOUT = json.loads((HERE / "layout.json").read_text())
FIELDS = {x["name"]: x for x in LAYOUT["fields"]}
PY = sys.executable

failures = []


def check(what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


class Peer:
    """A script started in the background, its ready line read."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [PY, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.proc.kill()
            raise SystemExit(f"{args[0]} did not start: {line} {self.proc.stderr.read()}")
        self.ready = line[1:]

    def stop(self):
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def mbpoll(where, *args, timeout="1", write=()):
    """Runs mbpoll once, reading (or writing `write`): (exit status,
    {reference: printed value}, error line, seconds)."""
    if where[0] == "tcp":
        target = ["-m", "tcp", "-p", str(where[1]), "127.0.0.1"]
    else:
        target = ["-m", "rtu", "-b", "9600", "-P", "none", where[1]]
    cmd = ["mbpoll", "-0", "-o", timeout, *args, *target]
    cmd += ["--", *map(str, write)] if write else ["-1"]
    start = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    took = time.monotonic() - start
    values = {}
    for line in run.stdout.splitlines():
        if line.startswith("[") and "]:" in line:
            ref, _, val = line.partition("]:")
            values[int(ref[1:])] = val.strip()
    error = next((l for l in (run.stdout + run.stderr).splitlines() if "failed" in l), "")
    return run.returncode, values, error, took


def mbpoll_read(field):
    """mbpoll options that read `field`, and the printed values that mean it is right."""
    t, order, a = field["type"], field["order"], field["address"]
    table = {"holding": "4", "input": "3", "coil": "0", "discrete": "1"}[field["register"]]
    regs = [int(r, 16) for r in field.get("registers", [])]
    if field["register"] in ("coil", "discrete"):
        return ["-t", table, "-r", str(a), "-c", "1"], {a: "1" if field["raw"] else "0"}
    if t in ("u16", "i16", "bool") and order in ("ABCD", "CDAB"):
        r = regs[0]
        text = str(r) if r < 0x8000 else f"{r} ({r - 0x10000})"
        return ["-t", table, "-r", str(a), "-c", "1"], {a: text}
    if t in ("u32", "i32", "f32") and order in ("ABCD", "CDAB"):
        kind = "float" if t == "f32" else "int"
        word = ["-B"] if order == "ABCD" else []
        if kind == "int":
            raw = field["raw"] if field["raw"] < 2**31 else field["raw"] - 2**32
            text = str(raw)
        else:
            text = f"{field['raw']:g}"
        return ["-t", f"{table}:{kind}", *word, "-r", str(a), "-c", "1"], {a: text}
    n = len(regs)
    return (
        ["-t", f"{table}:hex", "-r", str(a), "-c", str(n)],
        {a + i: f"0x{r:04X}" for i, r in enumerate(regs)},
    )


def fields_by_mbpoll(where, label, table_rows=None):
    for name, field in FIELDS.items():
        args, want = mbpoll_read(field)
        rc, got, err, _ = mbpoll(where, "-a", "1", *args)
        check(f"{label} {name} ({' '.join(args)})", rc == 0 and got == want, f"rc {rc} {err} got {got} want {want}")
        if table_rows is not None:
            table_rows.append((field, args, want))


def print_table(rows):
    print()
    print("| field | register, type, order | mbpoll options | prints |")
    print("| --- | --- | --- | --- |")
    for field, args, want in rows:
        printed = "<br>".join(f"`[{k}]: {v}`" for k, v in want.items())
        what = f"{field['register']} {field['address']}, {field['type']} {field['order']}"
        if field["register"] in ("coil", "discrete"):
            what = f"{field['register']} {field['address']}"
        print(f"| {field['name']} | {what} | `{' '.join(args)}` | {printed} |")
    print()


def tcp_checks(table_rows):
    slave_log = Path(os.environ.get("TMPDIR", "/tmp")) / f"modbus-selftest-{os.getpid()}.log"
    slave_log.unlink(missing_ok=True)
    peer = Peer(HERE / "slave.py", "--tcp", "127.0.0.1:0", "--units", "1,2,3", "--dead", "3",
                "--late", "2:300", "--busy", "2:2", "--log", slave_log)
    tcp = ("tcp", int(peer.ready[0]))
    try:
        fields_by_mbpoll(tcp, "tcp", table_rows)
        # Exception 2: a forbidden range, a read across its edge, past the table.
        for args in (["-r", "900", "-c", "1"], ["-r", "898", "-c", "3"], ["-t", "3", "-r", "905", "-c", "1"],
                     ["-r", "4099", "-c", "2"], ["-t", "0", "-r", "60", "-c", "8"]):
            rc, _, err, _ = mbpoll(tcp, "-a", "1", *args)
            check(f"tcp exception 2 for {' '.join(args)}", rc != 0 and "Illegal data address" in err, err)
        rc, _, err, _ = mbpoll(tcp, "-a", "1", "-r", "905", write=[5])
        check("tcp write to a forbidden register: exception 2", rc != 0 and "Illegal data address" in err, err)
        # Gaps read as 0; the far field is there.
        rc, got, err, _ = mbpoll(tcp, "-a", "1", "-r", "6", "-c", "2")
        check("tcp a gap reads 0", got == {6: "0", 7: "0"}, f"{got} {err}")
        # Writes: setpoint (f32 ABCD) and relay (coil), on unit 1 only.
        rc, _, err, _ = mbpoll(tcp, "-a", "1", "-t", "4:float", "-B", "-r", "107", write=[21.5])
        rc2, got, _, _ = mbpoll(tcp, "-a", "1", "-t", "4:float", "-B", "-r", "107", "-c", "1")
        check("tcp write setpoint 21.5 (function 16) and read it back", rc == 0 and got == {107: "21.5"}, f"{err} {got}")
        rc, got, _, _ = mbpoll(tcp, "-a", "1", "-t", "4:hex", "-r", "107", "-c", "2")
        check("tcp setpoint 21.5 is 0x41AC 0x0000", got == {107: "0x41AC", 108: "0x0000"}, str(got))
        rc, _, err, _ = mbpoll(tcp, "-a", "1", "-t", "0", "-r", "0", write=[1])
        rc2, got, _, _ = mbpoll(tcp, "-a", "1", "-t", "0", "-r", "0", "-c", "2")
        check("tcp write relay on (function 5) and read it back", rc == 0 and got == {0: "1", 1: "1"}, f"{err} {got}")
        rc, _, err, _ = mbpoll(tcp, "-a", "1", "-r", "0", write=[7, 8, 9])
        rc2, got, _, _ = mbpoll(tcp, "-a", "1", "-r", "0", "-c", "3")
        check("tcp write 3 registers (function 16)", rc == 0 and got == {0: "7", 1: "8", 2: "9"}, f"{err} {got}")
        rc, _, err, _ = mbpoll(tcp, "-a", "1", "-t", "0", "-r", "4", write=[1, 0, 1])
        rc2, got, _, _ = mbpoll(tcp, "-a", "1", "-t", "0", "-r", "4", "-c", "3")
        check("tcp write 3 coils (function 15)", rc == 0 and got == {4: "1", 5: "0", 6: "1"}, f"{err} {got}")
        # Unit 2 has its own registers: unchanged by unit 1's writes. It is
        # busy twice, and late every time.
        for i in (1, 2):
            rc, got, err, took = mbpoll(tcp, "-a", "2", "-r", "0", "-c", "1")
            check(f"tcp unit 2 busy ({i}) after 300 ms", rc != 0 and "busy" in err and took >= 0.3, f"{err} {took:.3f}")
        rc, got, err, took = mbpoll(tcp, "-a", "2", "-t", "4:float", "-B", "-r", "107", "-c", "1")
        check("tcp unit 2 answers after busy, late, own registers", got == {107: "20"} and took >= 0.3, f"{got} {err} {took:.3f}")
        rc, got, err, took = mbpoll(tcp, "-a", "1", "-r", "1", "-c", "1")
        check("tcp unit 1 answers at once", rc == 0 and took < 0.25, f"{took:.3f}")
        rc, got, err, took = mbpoll(tcp, "-a", "3", "-r", "0", "-c", "1", timeout="0.5")
        check("tcp dead unit 3 never answers", rc != 0 and "timed out" in err, err)
        rc, got, err, took = mbpoll(tcp, "-a", "7", "-r", "0", "-c", "1", timeout="0.5")
        check("tcp unit 7 (not served) never answers", rc != 0 and "timed out" in err, err)
    finally:
        status, err = peer.stop()
    check("slave.py exits 0 on SIGTERM", status == 0, err)
    lines = slave_log.read_text().splitlines()
    last = lines[-1].split()
    check("log: one line per request, with unit fn address count fault",
          last[1:] == ["unit=7", "fn=3", "address=0", "count=1", "fault=unknown"], lines[-1])
    busy = [l for l in lines if "unit=2" in l]
    check("log: unit 2's faults", [l.split()[-1] for l in busy] == ["fault=busy+late"] * 2 + ["fault=late"], str(busy))
    slave_log.unlink()


def rtu_checks():
    peer = Peer(HERE / "slave.py", "--rtu", "pty", "--units", "1,2,3", "--dead", "3", "--late", "2:300",
                "--busy", "2:1")
    rtu = ("rtu", peer.ready[0])
    try:
        for name in ("u16_plain", "i16_negative", "u32_abcd", "i32_cdab", "f32_abcd", "f32_cdab", "u64_dcba",
                     "text", "in_power", "coil_3", "input_10"):
            args, want = mbpoll_read(FIELDS[name])
            rc, got, err, _ = mbpoll(rtu, "-a", "1", *args)
            check(f"rtu {name}", rc == 0 and got == want, f"{err} {got} {want}")
        rc, _, err, _ = mbpoll(rtu, "-a", "1", "-r", "900", "-c", "1")
        check("rtu exception 2", rc != 0 and "Illegal data address" in err, err)
        rc, _, err, took = mbpoll(rtu, "-a", "2", "-r", "0", "-c", "1")
        check("rtu unit 2 busy, late", rc != 0 and "busy" in err and took >= 0.3, f"{err} {took:.3f}")
        rc, got, err, took = mbpoll(rtu, "-a", "2", "-r", "0", "-c", "1")
        check("rtu unit 2 then answers, late", got == {0: "1234"} and took >= 0.3, f"{got} {err} {took:.3f}")
        rc, got, err, took = mbpoll(rtu, "-a", "3", "-r", "0", "-c", "1", timeout="0.5")
        check("rtu dead unit 3 silent", rc != 0 and "timed out" in err, err)
        rc, _, err, _ = mbpoll(rtu, "-a", "1", "-t", "4:float", "-B", "-r", "107", write=[19.25])
        rc2, got, _, _ = mbpoll(rtu, "-a", "1", "-t", "4:float", "-B", "-r", "107", "-c", "1")
        check("rtu write setpoint", rc == 0 and got == {107: "19.25"}, f"{err} {got}")
        # A reply that comes after the master gave up carries its own unit id.
        import serial  # noqa: PLC0415

        with serial.Serial(rtu[1], 9600, timeout=0.05) as port:
            port.write(rtu_request(2, 3, 0, 1))
            time.sleep(0.05)
            port.write(rtu_request(1, 3, 1, 1))
            got = read_for(port, 0.6)
        check("rtu a late reply (unit 2) after a prompt one (unit 1), each with its own id",
              got == rtu_reply(1, 3, [2315]) + rtu_reply(2, 3, [1234]), got.hex())
    finally:
        status, err = peer.stop()
    check("slave.py --rtu pty exits 0", status == 0, err)
    peer = Peer(HERE / "slave.py", "--rtu", "pty", "--stopbits", "2", "--baud", "19200")
    try:
        rc, got, err, _ = mbpoll(("rtu", peer.ready[0]), "-a", "1", "-r", "0", "-c", "1")
        check("rtu --stopbits 2 --baud 19200 (a pty takes them, and ignores them)", got == {0: "1234"}, err)
    finally:
        peer.stop()
    # Parity: Linux 6.x pseudo-terminals refuse PARENB (tcsetattr: EINVAL).
    run = subprocess.Popen([PY, HERE / "slave.py", "--rtu", "pty", "--parity", "E"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        out, err = run.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        run.terminate()
        out, err = run.communicate()
    check("rtu --parity E on a pty: ready, or a clean error (exit 2) where the kernel refuses it",
          out.startswith("ready") or (run.returncode == 2 and "parity" in err), err)


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def rtu_request(unit, fc, address, count):
    frame = struct.pack(">BBHH", unit, fc, address, count)
    return frame + crc16(frame)


def rtu_reply(unit, fc, registers):
    frame = struct.pack(">BBB", unit, fc, 2 * len(registers)) + b"".join(struct.pack(">H", r) for r in registers)
    return frame + crc16(frame)


def read_for(port, seconds):
    end, got = time.monotonic() + seconds, b""
    while time.monotonic() < end:
        got += port.read(256)
    return got


def relay_checks():
    relay = Peer(HERE / "crc_relay.py", "--master", "pty", "--slave", "pty", "--corrupt-every", "3",
                 "--truncate-every", "5")
    master, slave_side = relay.ready
    peer = Peer(HERE / "slave.py", "--rtu", slave_side)
    rtu = ("rtu", master)
    try:
        seen = []
        for _ in range(10):
            rc, got, err, _ = mbpoll(rtu, "-a", "1", "-r", "0", "-c", "2", timeout="0.3")
            seen.append("ok" if got == {0: "1234", 1: "2315"} else "crc" if "CRC" in err else
                        "timeout" if "timed out" in err else err)
        want = ["ok", "ok", "crc", "ok", "timeout", "crc", "ok", "ok", "crc", "timeout"]
        check("relay: every 3rd reply a bad CRC, every 5th cut short", seen == want, str(seen))
        # Bytes exactly as they pass, by hand.
        import serial  # noqa: PLC0415

        with serial.Serial(master, 9600, timeout=0.05) as port:
            port.write(rtu_request(1, 3, 0, 1))
            one = read_for(port, 0.3)
            port.write(rtu_request(1, 3, 0, 1))
            two = read_for(port, 0.3)  # the 12th reply
            port.write(rtu_request(1, 3, 0, 1))
            three = read_for(port, 0.3)  # the 13th reply
            port.write(rtu_request(1, 3, 0, 1))
            four = read_for(port, 0.3)  # the 14th reply
            port.write(rtu_request(1, 3, 0, 1))
            five = read_for(port, 0.3)  # the 15th: both 3rd and 5th: truncated only
        good = rtu_reply(1, 3, [1234])
        check("relay passes a reply unchanged", one == good, one.hex())
        check("relay flips the lowest bit of the last byte", two == good[:-1] + bytes([good[-1] ^ 1]), two.hex())
        check("relay: replies 13 and 14 unchanged", three == good and four == good, three.hex() + " " + four.hex())
        check("relay drops the last 3 bytes", five == good[:-3], five.hex())
    finally:
        peer.stop()
        status, err = relay.stop()
    check("relay exits 0 and logs its counts", status == 0 and
          "requests 15, replies 15, corrupted 4, truncated 3" in err, err)


def rtu_over_tcp_checks():
    peer = Peer(HERE / "slave.py", "--rtu-over-tcp", "127.0.0.1:0", "--units", "1,2", "--late", "2:200")
    try:
        with socket.create_connection(("127.0.0.1", int(peer.ready[0])), timeout=1) as s:
            s.sendall(rtu_request(1, 3, 8, 2))
            got = s.recv(256)
            check("rtu over tcp reads u32_abcd", got == rtu_reply(1, 3, [0x1234, 0x5678]), got.hex())
            s.sendall(rtu_request(2, 3, 0, 1))
            time.sleep(0.05)
            s.sendall(rtu_request(1, 3, 1, 1))
            got = b""
            end = time.monotonic() + 0.5
            s.settimeout(0.05)
            while time.monotonic() < end:
                try:
                    got += s.recv(256)
                except socket.timeout:
                    pass
            check("rtu over tcp: late unit 2 answers after unit 1, with its own id",
                  got == rtu_reply(1, 3, [2315]) + rtu_reply(2, 3, [1234]), got.hex())
    finally:
        status, err = peer.stop()
    check("slave.py --rtu-over-tcp exits 0", status == 0, err)


def main():
    if not shutil.which("mbpoll"):
        sys.exit("mbpoll is missing: apt-get install mbpoll")
    rows = []
    tcp_checks(rows)
    rtu_checks()
    relay_checks()
    rtu_over_tcp_checks()
    if "--table" in sys.argv[1:]:
        print_table(rows)
    print(f"{len(failures)} failed" if failures else "all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
