#!/usr/bin/env python3
"""Prints BENCHMARKING.md's oracle table from criterion's estimates of the last
`cargo bench --bench auth -- oracle` run: for each policy setting, key-id shape
and presented secret shape, the median refusal of an unknown key, of a known
key (wrong secret), and their ratio, unknown ÷ known (target 1.00 ± 0.05)."""
import json, pathlib, sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion/oracle")
medians = {}
for bench in root.rglob("new/benchmark.json"):
    full_id = json.loads(bench.read_text())["full_id"]
    estimates = json.loads((bench.parent / "estimates.json").read_text())
    medians[full_id.removeprefix("oracle/")] = estimates["median"]["point_estimate"]

def shown(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e5 else f"{ns:.0f} ns"

print("| policy | key id | secret presented | record | unknown key | known key, wrong secret | unknown ÷ known |")
print("|---|---|---|---|---|---|---|")
worst = 0.0
for cell_id, known in sorted(medians.items()):
    policy, key, secret, side = cell_id.split("/")
    if side == "unknown":
        continue
    unknown = medians[f"{policy}/{key}/{secret}/unknown"]
    ratio = unknown / known
    worst = max(worst, abs(ratio - 1))
    record = side.removeprefix("known, ")
    print(f"| `{policy}` | {key} | {secret} | {record} | {shown(unknown)} | {shown(known)} | **{ratio:.2f}** |")
print(f"\nlargest |ratio − 1|: {worst:.3f}", file=sys.stderr)
