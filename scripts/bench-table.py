#!/usr/bin/env python3
"""Tables and ratios from the criterion results of `cargo bench -p edge-agent-benches`.

Reads target/criterion/**/new/{benchmark,estimates}.json (the last run of
each bench) and prints, per group, the mean time per operation and its
ratio to the group's reference: the memcpy + 2 CRC bound for pipelines,
heapless for pushes, a plain agent-core push for pushes into a full ring.

    python3 scripts/bench-table.py [target/criterion]
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target", "criterion")
rows = {}
for dirpath, _dirs, files in os.walk(root):
    if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        b = json.load(f)
    with open(os.path.join(dirpath, "estimates.json")) as f:
        e = json.load(f)
    ns = e["mean"]["point_estimate"]
    tp = b.get("throughput") or {}
    per = tp.get("Elements") or 1
    nbytes = tp.get("Bytes")
    name = b["function_id"] + ("/" + b["value_str"] if b.get("value_str") else "")
    rows.setdefault(b["group_id"], []).append((name, ns / per, nbytes / ns if nbytes else None))

plain_push = dict((n, v) for n, v, _ in rows.get("push/64", [])).get("agent-core")
for group in sorted(rows):
    items = sorted(rows[group])
    vals = dict((n, v) for n, v, _ in items)
    if group.startswith("pipeline/"):
        ref, ref_name = vals.get("bound"), "bound"
        peers = [v for n, v in vals.items() if n not in ("agent-core", "bound")]
    elif group == "push/64":
        ref, ref_name, peers = vals.get("heapless"), "heapless", []
    elif group.startswith("push_full/"):
        ref, ref_name, peers = plain_push, "plain push", []
    else:
        ref, ref_name, peers = None, "", []
    print(f"\n{group}")
    print(f"  {'bench':<24} {'ns/op':>10} {'GB/s':>8}   {'x ' + ref_name if ref else ''}")
    for name, v, gbs in items:
        ratio = f"{v / ref:8.2f}" if ref else ""
        gb = f"{gbs:8.2f}" if gbs else ""
        print(f"  {name:<24} {v:10.1f} {gb:>8}   {ratio}")
    if peers and "agent-core" in vals:
        best = min(peers)
        print(f"  agent-core vs best peer: {best / vals['agent-core']:.2f}x faster")
