#!/usr/bin/env bash
# Two Tidings nodes on one local Redis, from local processes: the topology of
# docker-compose.yml for machines without Docker. Node A on https://localhost:8443, node B on
# https://localhost:8444, Redis (append-only, so seq survives a restart) on 127.0.0.1:6390.
# The nodes share the certificate, ticket key, audit key and dev issuer key made in
# .data/cluster/keys. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

data=.data/cluster
redis_port="${TIDINGS_CLUSTER_REDIS_PORT:-6390}"
pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

command -v redis-server >/dev/null || { echo "cluster.sh: redis-server is not on PATH" >&2; exit 1; }
node scripts/make-keys.ts "$data/keys" >/dev/null
mkdir -p "$data/redis"

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes --dir "$data/redis" \
  --logfile "" >"$data/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; then break; fi
  sleep 0.1
done

export TIDINGS_REDIS_URL="redis://127.0.0.1:$redis_port"
export TIDINGS_TLS_CERT_FILE="$data/keys/tls-cert.pem" TIDINGS_TLS_KEY_FILE="$data/keys/tls-key.pem"
ticket_key="$data/keys/ticket-key.bin"
[ -f "$data/keys/ticket-key.pem" ] && ticket_key="$data/keys/ticket-key.pem" # made before HS256 secrets
export TIDINGS_TICKET_KEY_FILE="$ticket_key" TIDINGS_AUDIT_KEY_FILE="$data/keys/audit-key.bin"
export TIDINGS_DEV_ISSUER_KEY_FILE="$data/keys/dev-issuer-key.pem" TIDINGS_DATA_KEY_FILE="$data/keys/data-key.bin"
export TIDINGS_TLS_RESUMPTION_KEY_FILE="$data/keys/tls-resumption.bin"
export TIDINGS_ALLOWED_ORIGINS="${TIDINGS_ALLOWED_ORIGINS:-https://localhost:8443,https://localhost:8444}"

for node in a:8443 b:8444; do
  name="${node%%:*}" port="${node##*:}"
  # Metrics on 9464 for A and 9465 for B: one port each, or B runs without its listener.
  TIDINGS_NODE_ID="node-$name" TIDINGS_LISTEN="127.0.0.1:$port" TIDINGS_AUDIT_SINK="file:$data/audit-$name" \
    TIDINGS_METRICS_LISTEN="127.0.0.1:$((port + 1021))" \
    node --max-semi-space-size=16 src/main.ts &
  pids+=($!)
done

echo "cluster.sh: node-a https://localhost:8443, node-b https://localhost:8444, Redis 127.0.0.1:$redis_port (Ctrl-C stops all)" >&2
echo "cluster.sh: clients verify TLS with --cacert $data/keys/tls-cert.pem" >&2
wait -n "${pids[@]}"
