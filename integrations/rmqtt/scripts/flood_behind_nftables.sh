#!/usr/bin/env bash
# Floods 2 and 4 of `node_rate` (clients hanging up without waiting for their
# CONNACK, or sending nothing), with the README's nftables rule limiting new
# connections per source address on node A's MQTT port. Needs root and `nft`
# (Debian `nftables`); the rule is removed at the end, pass or fail.
#
#   cd integrations/rmqtt && cargo build --release --examples && scripts/flood_behind_nftables.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
table=structure_flood_bench
rule() {
  cat <<NFT
table inet $table {
  chain input {
    type filter hook input priority 0;
    tcp dport $1 ct state new meter per_source4 { ip saddr limit rate over 20/second burst 50 packets } drop
    tcp dport $1 ct state new meter per_source6 { ip6 saddr and ffff:ffff:ffff:ffff:: limit rate over 20/second burst 50 packets } drop
  }
}
NFT
}
cleanup() { nft delete table inet "$table" 2>/dev/null || true; }
trap cleanup EXIT
out=$(mktemp)
FLOODS=24 target/release/examples/node_rate 100 "$seconds" >"$out" 2>&1 &
runner=$!
last=""
# node_rate starts a fresh two-node cluster for each flood: follow node A's port.
while kill -0 "$runner" 2>/dev/null; do
  config=$(ls -t "${TMPDIR:-/tmp}"/structure-node-rate-"$runner"/node1.toml 2>/dev/null | head -1 || true)
  port=$([ -n "$config" ] && sed -n 's/^mqtt_listen = ".*:\([0-9]*\)"$/\1/p' "$config" || true)
  if [ -n "$port" ] && [ "$port" != "$last" ]; then
    cleanup
    rule "$port" | nft -f -
    echo "nftables rule on node A's port $port"
    last=$port
  fi
  sleep 0.2
done
wait "$runner"
grep -v connects "$out"
rm -f "$out"
