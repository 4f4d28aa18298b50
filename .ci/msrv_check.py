#!/usr/bin/env python3
"""Fails when a dependency in Cargo.lock declares a newer Rust than its dependent.

For every workspace member that declares `rust-version`, walks the locked
dependency graph (all features, every target platform) along normal and build
edges, and fails if any package reached declares a higher `rust-version`: the
member's MSRV would then be a promise the lockfile cannot keep. Dev-dependencies
do not count against the MSRV; what the tests and benches need is printed, for
information.

Usage: .ci/msrv_check.py [--manifest-path PATH]
"""

import json
import subprocess
import sys


def version_key(text):
    """`1.87` and `1.87.0` compare equal; missing parts are 0."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def reach(graph, start, kinds):
    """Packages reachable from `start` through edges whose kind is in `kinds`
    (`None` is a normal dependency)."""
    seen = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for dep in graph[node]["deps"]:
            if dep["pkg"] in seen:
                continue
            if any(k["kind"] in kinds for k in dep["dep_kinds"]):
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
    return seen


def main():
    command = ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"]
    command += sys.argv[1:]
    metadata = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
    packages = {p["id"]: p for p in metadata["packages"]}
    graph = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    failed = False
    for member in metadata["workspace_members"]:
        package = packages[member]
        declared = package.get("rust_version")
        if declared is None:
            print(f"{package['name']}: no rust-version declared, nothing to check")
            continue
        too_new = []
        for dep in sorted(reach(graph, member, {None, "build"})):
            needed = packages[dep].get("rust_version")
            if needed and version_key(needed) > version_key(declared):
                too_new.append(f"{packages[dep]['name']} {packages[dep]['version']} needs {needed}")
        everything = reach(graph, member, {None, "build", "dev"})
        with_dev = max(
            (packages[d].get("rust_version") or "0" for d in everything | {member}),
            key=version_key,
        )
        if too_new:
            failed = True
            print(f"{package['name']}: rust-version {declared} is not what the lockfile builds:")
            for line in too_new:
                print(f"  {line}")
        else:
            print(f"{package['name']}: rust-version {declared} holds for every normal and build dependency")
        if version_key(with_dev) > version_key(declared):
            print(f"  (its tests, examples and benches need Rust {with_dev})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
