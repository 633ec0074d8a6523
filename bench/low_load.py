#!/usr/bin/env python3
"""The table of `bench/run.sh --low-load`: for each load and broker, the broker's
CPU per delivered message and the latency percentiles, as the median of the
rounds with their range."""

import json
import sys
from statistics import median


def cell(values, scale, digits):
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    lo, mid, hi = min(values), median(values), max(values)
    if len(values) == 1:
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    loads = []
    for r in runs:
        key = (r.get("publishers", 1), r.get("rate"))
        if key not in loads:
            loads.append(key)
    print("| load | broker | broker CPU per message (µs) | p50 (ms) | p99 (ms) | max (ms) | delivered |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for pubs, rate in loads:
        for broker in ("mosquitto", "broker-lite"):
            rs = [r for r in runs if r.get("broker") == broker and r.get("publishers", 1) == pubs
                  and r.get("rate") == rate]
            ok = [r for r in rs if r.get("ok")]
            cpu = [r["broker_cpu_s"] / r["distinct"] for r in ok
                   if r.get("broker_cpu_s") is not None and r.get("distinct")]
            failed = len(rs) - len(ok)
            print(f"| {pubs} publisher{'s' if pubs > 1 else ''}, {rate:,} msg/s | {broker} | "
                  f"{cell(cpu, 1e6, 1)} | {cell([r.get('p50_us') for r in ok], 1e-3, 3)} | "
                  f"{cell([r.get('p99_us') for r in ok], 1e-3, 3)} | "
                  f"{cell([r.get('max_us') for r in ok], 1e-3, 2)} | "
                  f"{sum(r.get('distinct', 0) for r in ok):,}"
                  f"{f' ({failed} failed)' if failed else ''} |")


main()
