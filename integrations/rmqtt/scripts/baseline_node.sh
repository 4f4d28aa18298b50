#!/usr/bin/env bash
# Builds `structure-broker` as it was at a given commit (default 8dbebf5:
# every reload re-read everything, and asked the other node about every
# affected device), in a temporary worktree of this repository, and prints
# the path of the built binary: the baseline of `examples/scale.rs`
# (BASELINE=…).
set -euo pipefail
commit=${1:-8dbebf5}
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
git -C "$top" worktree add --detach "$work/tree" "$commit" >/dev/null 2>&1
(cd "$work/tree/integrations/rmqtt" && cargo build --release -q --locked --bin structure-broker >&2)
out="$work/structure-broker-$commit"
cp "$work/tree/integrations/rmqtt/target/release/structure-broker" "$out"
git -C "$top" worktree remove --force "$work/tree"
echo "$out"
