#!/usr/bin/env bash
# The JetStream sink beside the file sink (BENCHMARKS.md, "The JetStream
# sink beside it"): the load generator at 100 and 1,000 agents, one and
# three collectors, file sink (fdatasync) and JetStream with a nats-server
# (R1, file storage) started here on 127.0.0.1:14222, its CPU added to the
# collectors' (--measure-pid), a fresh stream per run.
#
#   scripts/bench-jetstream.sh [SECONDS] [SYNC] [PARTITIONS]
#
# SECONDS per run (default 4); SYNC "always" (default: sync_interval:
# always, the durable setting at R1) or "default" (the server's periodic
# sync: not durable at R1, for the bound); PARTITIONS the collectors'
# --nats-partitions (default 1). Needs the release builds:
#   cargo build --release -p edge-collector --bin edge-collector --example load
# nats-server: $EDGE_NATS_SERVER, else /opt/nats-venv/bin/nats-server, else PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-4}
SYNC=${2:-always}
PARTS=${3:-1}
NATS=${EDGE_NATS_SERVER:-/opt/nats-venv/bin/nats-server}
[ -x "$NATS" ] || NATS=$(command -v nats-server) || { echo "nats-server not found" >&2; exit 1; }
LOAD=target/release/examples/load
BIN=target/release/edge-collector
DIR=$(mktemp -d /tmp/edge-bench-js.XXXXXX)
sync_line=""
[ "$SYNC" = always ] && sync_line="sync_interval: always"
cat > "$DIR/nats.conf" <<CONF
listen: 127.0.0.1:14222
jetstream { store_dir: "$DIR/nats", $sync_line }
CONF
"$NATS" -c "$DIR/nats.conf" & NATS_PID=$!
trap 'kill $NATS_PID 2>/dev/null; wait $NATS_PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 0.1; done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); nats-server $("$NATS" --version), sync: $SYNC, partitions: $PARTS"
for k in 1 3; do
    echo "## file sink, $k collector(s)"
    "$LOAD" --bin "$BIN" --agents 100,1000 --seconds "$SECS" --skip-trivial --collectors "$k"
    echo "## JetStream ($SYNC, $PARTS partitions), $k collector(s)"
    "$LOAD" --bin "$BIN" --agents 100,1000 --seconds "$SECS" --skip-trivial --collectors "$k" \
        --collector-args "--sink nats://127.0.0.1:14222 --nats-stream L{run} --nats-subject-prefix l{run} --nats-partitions $PARTS" --measure-pid "$NATS_PID"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
