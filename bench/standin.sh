#!/usr/bin/env bash
# standin as a peer of the egress benchmark harness (../shared/bench, see its
# peers/lib.sh for the contract). Run from the harness:
#   bench/run.sh /path/to/standin/bench/standin.sh goproxy squid
# It builds standin, starts `standin serve` with its explicit proxy on
# 127.0.0.1:$PEER_PORT (dial guard 127.0.0.0/8, upstream CA from the
# harness), stores REAL_KEY as a custom secret sent in x-api-key on
# 127.0.0.1, and binds it to a sandbox "bench" with the harness's fixed
# placeholder key as stand-in (the load generator cannot be told another).
# The sandbox inspects all flows, so the mint mode (new 127.0.1.x hosts)
# measures certificate minting; those hosts have no secret, so their
# responses count as bad-key by design.
set -euo pipefail
for v in UPSTREAM_CA REAL_KEY; do
  if [ -z "${!v:-}" ]; then echo "error: $v must be set (see bench/peers/lib.sh)" >&2; exit 2; fi
done
repo=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PEER_PORT:-18090}
PEER_DIR=${PEER_DIR:-$(mktemp -d /tmp/bench-peer-standin.XXXXXX)}
mkdir -p "$PEER_DIR"
bin="$PEER_DIR/standin"
(cd "$repo" && go build -o "$bin" ./cmd/standin) >&2

export STANDIN_DATA_DIR="$PEER_DIR/data"
rm -rf "$STANDIN_DATA_DIR"
cat >"$PEER_DIR/config.json" <<JSON
{"version": 1, "dataDir": "$STANDIN_DATA_DIR", "listen": "off", "runtime": "none",
 "log": {"level": "warn"},
 "gateway": {"listen": "127.0.0.1:$PORT", "upstreamCAFile": "$UPSTREAM_CA", "dialGuard": ["127.0.0.0/8"]}}
JSON
"$bin" serve --config "$PEER_DIR/config.json" 2>"$PEER_DIR/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' TERM INT EXIT
for _ in $(seq 100); do [ -S "$STANDIN_DATA_DIR/api.sock" ] && break; sleep 0.1; done
[ -S "$STANDIN_DATA_DIR/api.sock" ] || { echo "error: standin did not start" >&2; cat "$PEER_DIR/server.log" >&2; exit 1; }

printf %s "$REAL_KEY" | "$bin" secret create bench-key --host '127.0.0.1=header:x-api-key' >&2
"$bin" sandbox create bench --allow-out 127.0.0.0/8 --inspect all >&2
"$bin" sandbox attach bench X_API_KEY=bench-key --stand-in sk-stand-in-not-a-real-key >&2
proxy=$("$bin" sandbox env bench | sed -n 's/^HTTPS_PROXY=//p')

echo "PROXY_URL=$proxy"
echo "PROXY_CA=$STANDIN_DATA_DIR/ca.pem"
echo "PROXY_VERSION=standin $(cd "$repo" && git describe --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION)"
trap 'kill $pid 2>/dev/null' TERM INT
wait $pid
