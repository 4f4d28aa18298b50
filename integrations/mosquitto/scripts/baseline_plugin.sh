#!/usr/bin/env bash
# Builds the Mosquitto plugin as it was at a given commit (default 8dbebf5:
# every reload re-read and re-evaluated everything on the broker's thread), in
# a temporary worktree of this repository, and prints the path of the built
# library: the baseline of `examples/scale.rs` (BASELINE=…).
set -euo pipefail
commit=${1:-8dbebf5}
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
git -C "$top" worktree add --detach "$work/tree" "$commit" >/dev/null 2>&1
(cd "$work/tree" && cargo build --release -q -p structure-access-mosquitto --lib >&2)
out="$work/libstructure_access_mosquitto-$commit.so"
cp "$work/tree/target/release/libstructure_access_mosquitto.so" "$out"
git -C "$top" worktree remove --force "$work/tree"
echo "$out"
