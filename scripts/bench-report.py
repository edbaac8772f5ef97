#!/usr/bin/env python3
"""Prints the criterion results of one `cargo bench` run as a table, with the
ratios BENCHMARKS.md quotes (all figures from the same run)."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def rate(group, name):
    """Elements per second of a benchmark (mean), or None."""
    d = root / group / name / "new"
    try:
        est = json.loads((d / "estimates.json").read_text())
        bench = json.loads((d / "benchmark.json").read_text())
    except FileNotFoundError:
        return None
    elements = bench["throughput"]["Elements"]
    return elements / (est["mean"]["point_estimate"] / 1e9)


def show(group, names):
    for n in names:
        r = rate(group, n.replace("/", "_"))
        if r is not None:
            print(f"  {group}/{n}: {r/1e6:.3f} M/s")


print("engine (20k records, 10k rules, one thread):")
show("engine", ["simd_json_parse_only", "serde_json_borrowed_struct", "decode_only", "full_engine"])
full, parse = rate("engine", "full_engine"), rate("engine", "simd_json_parse_only")
if full and parse:
    print(f"  full engine / simd-json parse-only = {full/parse:.3f}")

print("rule index lookups (100k lookups):")
names = [f"{kind}/{n}" for n in ["10", "10k", "1M"] for kind in ["single", "batch", "batch_zipf"]]
show("rule_index_lookup", names)
g = "rule_index_lookup"
best10 = max(filter(None, [rate(g, "single_10"), rate(g, "batch_10")]), default=None)
for kind in ["single", "batch", "batch_zipf"]:
    r = rate(g, f"{kind}_1M")
    if r and best10:
        print(f"  {kind}/1M / best 10-rule rate = {r/best10:.3f}")
    same = rate(g, f"{kind}_10")
    if r and same:
        print(f"  {kind}/1M / {kind}/10 = {r/same:.3f}")
