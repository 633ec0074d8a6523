#!/usr/bin/env python3
"""The register layout the test device (slave.py) serves, and its encoding.

    python3 tests/peers/modbus/layout.py            # rewrite layout.json beside this file
    python3 tests/peers/modbus/layout.py --check    # exit 1 if layout.json is out of date

The fields are defined once, below, by their value before scale (`raw`); this
file turns each into the registers that hold it (with `struct`, independently
of mqgate's Rust code and of pymodbus's own conversions) and into the value a
reader must decode (`expected` = raw * scale + offset). Both go into layout.json
so that a test can compare either.

Byte and word orders: the bytes of a value, most significant first, are
A B C D (A..H for 64-bit values).
  ABCD  registers in order, high byte first in each (big endian)
  CDAB  the registers in reverse order, bytes in each big endian
  BADC  registers in order, the two bytes of each register swapped
  DCBA  both: registers reversed and bytes swapped
For 64-bit values CDAB and DCBA reverse all four registers. A string holds two
characters per register, the first in the high byte, padded with NUL bytes; the
order applies to its registers the same way. A 16-bit value has one register,
so only the byte swap (BADC, DCBA) changes it.

slave.py imports `load` from here to build its data store from layout.json.
"""

import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYOUT = HERE / "layout.json"

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TABLES = ("holding", "input", "coil", "discrete")

# struct codes (big endian) of the numeric types.
PACK = {
    "u16": ">H",
    "i16": ">h",
    "u32": ">I",
    "i32": ">i",
    "u64": ">Q",
    "i64": ">q",
    "f32": ">f",
    "f64": ">d",
}

# Registers each table answers for: addresses below the size, except the
# forbidden ranges, read as 0 where no field is; the rest answer exception 2.
SIZE = {"holding": 4100, "input": 1000, "coil": 64, "discrete": 64}

# Ranges (first..last, inclusive) that answer exception 2, Illegal Data Address.
FORBIDDEN = [
    {"register": "holding", "first": 900, "last": 909},
    {"register": "input", "first": 900, "last": 909},
]

# The exact single-precision value nearest -1234.5678: every byte differs, so a
# wrong order cannot decode to the same number by chance.
F32_ODD = -1234.5677490234375
F64_ODD = -9876.54321


def f(name, register, address, type_, raw, order="ABCD", scale=1, offset=0, note=None):
    item = {
        "name": name,
        "register": register,
        "address": address,
        "type": type_,
        "order": order,
        "raw": raw,
        "scale": scale,
        "offset": offset,
    }
    if note:
        item["note"] = note
    return item


def _four(type_, base, raw, first):
    """The same value at four addresses, one per order, each `width` registers apart."""
    width = {"u32": 2, "i32": 2, "f32": 2, "u64": 4, "i64": 4, "f64": 4}[type_]
    return [
        f(f"{base}_{order.lower()}", "holding", first + i * width, type_, raw, order)
        for i, order in enumerate(ORDERS)
    ]


FIELDS = (
    [
        # 0..5: 16-bit values, adjacent.
        f("u16_plain", "holding", 0, "u16", 1234),
        f("u16_scaled", "holding", 1, "u16", 2315, scale=0.1, note="a voltage in 0.1 V"),
        f("i16_negative", "holding", 2, "i16", -1234),
        f("i16_scaled", "holding", 3, "i16", -125, scale=0.1),
        f("u16_offset", "holding", 4, "u16", 655, scale=0.1, offset=-40,
          note="a temperature sent as (t + 40) * 10"),
        f("u16_badc", "holding", 5, "u16", 0x1234, order="BADC",
          note="bytes swapped: the register holds 0x3412"),
        # gap: 6, 7
    ]
    + _four("u32", "u32", 0x12345678, 8)  # 8..15
    + _four("i32", "i32", -123456789, 16)  # 16..23
    # gap: 24, 25, 26
    + _four("f32", "f32", F32_ODD, 27)  # 27..34
    + [
        f("u32_energy", "holding", 35, "u32", 12345678, order="CDAB", scale=0.01,
          note="a counter in 0.01 kWh, low word first"),
        # gap: 37..40
    ]
    + _four("u64", "u64", 0x0123456789ABCDEF, 41)  # 41..56
    + _four("i64", "i64", -1234567890123456789, 57)  # 57..72
    + _four("f64", "f64", F64_ODD, 73)  # 73..88
    # gap: 89..93
    + [
        f("text", "holding", 94, "string(8)", "MQGATE-1"),
        f("text_odd", "holding", 98, "string(5)", "v1.20",
          note="an odd length: the last register's low byte is 0"),
        f("status", "holding", 101, "u16", 0x00A5,
          note="bit fields of it are in the bits list"),
        f("flags", "holding", 102, "u16", 0xC30F,
          note="bit fields of it are in the bits list"),
        f("holding_bool", "holding", 103, "bool", 7,
          note="a register read as bool: true when not 0"),
        # gap: 104..106
        f("setpoint", "holding", 107, "f32", 20.0, note="writable (function 6 or 16)"),
        f("far_counter", "holding", 4000, "u32", 4000123, note="far from the others"),
        # Input registers, as a sensor or a meter has them.
        f("in_temperature", "input", 0, "i16", 215, scale=0.1),
        f("in_humidity", "input", 1, "u16", 456, scale=0.1),
        f("in_voltage", "input", 2, "f32", 230.5),
        f("in_power", "input", 4, "f32", -1500.25, order="CDAB"),
        # gap: 6, 7, 8
        f("in_energy", "input", 9, "u32", 987654321, order="CDAB", scale=0.001),
        f("in_i32", "input", 11, "i32", -42, order="CDAB"),
        # Coils and discrete inputs: one bit each.
        f("relay", "coil", 0, "bool", False, note="writable (function 5 or 15)"),
        f("coil_1", "coil", 1, "bool", True),
        f("coil_2", "coil", 2, "bool", False),
        f("coil_3", "coil", 3, "bool", True),
        # gap: 4, 5, 6
        f("coil_7", "coil", 7, "bool", True),
        f("input_0", "discrete", 0, "bool", True),
        f("input_1", "discrete", 1, "bool", False),
        f("input_2", "discrete", 2, "bool", False),
        f("input_3", "discrete", 3, "bool", True),
        # gap: 4..9
        f("input_10", "discrete", 10, "bool", True),
    ]
)

# Parts of the status and flags registers above. They share their register with
# that field, so they are listed apart: a map that has both would overlap.
BITS = [
    f("status_low", "holding", 101, "bits(0..4)", None),
    f("status_high", "holding", 101, "bits(4..8)", None),
    f("status_top", "holding", 101, "bits(8..16)", None),
    f("status_bit0", "holding", 101, "bits(0..1)", None),
    f("status_bit1", "holding", 101, "bits(1..2)", None),
    f("flags_low", "holding", 102, "bits(0..8)", None),
    f("flags_nibble", "holding", 102, "bits(8..12)", None),
    f("flags_top2", "holding", 102, "bits(14..16)", None),
    f("flags_bit15", "holding", 102, "bits(15..16)", None),
]


def string_length(type_):
    if type_.startswith("string(") and type_.endswith(")"):
        return int(type_[len("string("):-1])
    return None


def bits_range(type_):
    if type_.startswith("bits(") and type_.endswith(")"):
        lo, hi = type_[len("bits("):-1].split("..")
        return int(lo), int(hi)
    return None


def width(type_):
    """Registers (or bits) a field spans."""
    n = string_length(type_)
    if n is not None:
        return (n + 1) // 2
    if type_ in ("u16", "i16", "bool") or bits_range(type_):
        return 1
    return struct.calcsize(PACK[type_]) // 2


def value_bytes(type_, raw):
    """The value's bytes, most significant first (A B C D ...)."""
    n = string_length(type_)
    if n is not None:
        data = raw.encode("ascii")
        if len(data) > n:
            raise ValueError(f"{raw!r} is longer than {type_}")
        data = data.ljust(n, b"\0")
        return data + b"\0" * (len(data) % 2)
    if type_ == "bool":
        return struct.pack(">H", int(raw))
    data = struct.pack(PACK[type_], raw)
    if type_ in ("f32", "f64") and struct.unpack(PACK[type_], data)[0] != raw:
        raise ValueError(f"{raw!r} is not exactly a {type_}: choose a value that is")
    return data


def encode(type_, order, raw):
    """The registers, as they are on the wire, that hold `raw`."""
    if order not in ORDERS:
        raise ValueError(f"order {order!r}: one of {ORDERS}")
    data = value_bytes(type_, raw)
    words = [data[i:i + 2] for i in range(0, len(data), 2)]
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    return [int.from_bytes(w, "big") for w in words]


def expected(type_, raw, scale, offset):
    """What a reader decodes: an unscaled integer stays an integer."""
    if type_ == "bool":
        return bool(raw)
    if string_length(type_) is not None:
        return raw
    if scale == 1 and offset == 0:
        return float(raw) if type_ in ("f32", "f64") else raw
    return raw * scale + offset


def build():
    fields = []
    registers = {t: {} for t in TABLES}
    for item in FIELDS:
        item = dict(item)
        t = item["register"]
        if t in ("coil", "discrete"):
            if item["type"] != "bool":
                raise ValueError(f"{item['name']}: a {t} is a bool")
            regs = None
        else:
            regs = encode(item["type"], item["order"], item["raw"])
            assert len(regs) == width(item["type"])
            item["registers"] = [f"0x{r:04X}" for r in regs]
        for i in range(width(item["type"])):
            a = item["address"] + i
            if a in registers[t]:
                raise ValueError(f"{item['name']} overlaps {registers[t][a]} at {t} {a}")
            if not 0 <= a < SIZE[t]:
                raise ValueError(f"{item['name']}: {t} {a} is outside the table")
            registers[t][a] = item["name"]
        item["expected"] = expected(item["type"], item["raw"], item["scale"], item["offset"])
        fields.append(item)
    by_name = {x["name"]: x for x in fields}
    bits = []
    for item in BITS:
        item = dict(item)
        owner = next(
            x for x in fields if x["register"] == item["register"] and x["address"] == item["address"]
        )
        word = encode(owner["type"], owner["order"], owner["raw"])[0]
        lo, hi = bits_range(item["type"])
        item["of"] = owner["name"]
        item["registers"] = [f"0x{word:04X}"]
        item["raw"] = (word >> lo) & ((1 << (hi - lo)) - 1)
        item["expected"] = item["raw"]
        item["note"] = f"bits {lo} to {hi - 1} (0 = least significant) of 0x{word:04X}"
        bits.append(item)
    assert len(by_name) == len(fields), "field names must be unique"
    return {
        "about": "Generated by layout.py (python3 layout.py); edit that file, not this one.",
        "size": SIZE,
        "forbidden": FORBIDDEN,
        "fields": fields,
        "bits": bits,
    }


def text():
    """layout.json: one field a line."""
    doc = build()
    out = ["{"]
    for key in ("about", "size", "forbidden"):
        out.append(f"  {json.dumps(key)}: {json.dumps(doc[key])},")
    for key in ("fields", "bits"):
        out.append(f"  {json.dumps(key)}: [")
        lines = [f"    {json.dumps(item)}" for item in doc[key]]
        out.append(",\n".join(lines))
        out.append("  ]," if key == "fields" else "  ]")
    out.append("}")
    return "\n".join(out) + "\n"


def load(path):
    """layout.json → {table: {address: value}} with register values (0..65535)
    for holding and input and bools for coil and discrete, plus the sizes and
    the forbidden ranges. Registers are encoded again from each field's raw
    value and checked against the file's own."""
    doc = json.loads(Path(path).read_text())
    values = {t: {} for t in TABLES}
    for item in doc["fields"]:
        t = item["register"]
        if t in ("coil", "discrete"):
            values[t][item["address"]] = bool(item["raw"])
            continue
        regs = encode(item["type"], item.get("order", "ABCD"), item["raw"])
        listed = item.get("registers")
        if listed is not None and [int(r, 16) for r in listed] != regs:
            raise ValueError(f"{path}: {item['name']}: registers {listed} do not hold raw {item['raw']!r}")
        for i, r in enumerate(regs):
            values[t][item["address"] + i] = r
    size = {t: int(doc["size"][t]) for t in TABLES}
    forbidden = [(x["register"], int(x["first"]), int(x["last"])) for x in doc.get("forbidden", [])]
    return values, size, forbidden


def main():
    new = text()
    if sys.argv[1:] == ["--check"]:
        if not LAYOUT.exists() or LAYOUT.read_text() != new:
            sys.exit(f"{LAYOUT} is out of date: run python3 {Path(__file__).name}")
        return
    if sys.argv[1:]:
        sys.exit(__doc__)
    LAYOUT.write_text(new)
    print(f"wrote {LAYOUT}")


if __name__ == "__main__":
    main()
