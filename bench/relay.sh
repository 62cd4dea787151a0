#!/usr/bin/env bash
# A no-op CONNECT relay as a peer of the egress benchmark harness
# (../shared/bench; see its peers/lib.sh for the contract):
#   bench/run.sh /path/to/standin/bench/relay.sh /path/to/standin/bench/standin.sh
# It measures what forwarding bytes costs on this machine with no TLS
# termination, no HTTP and no credential: the load generator does TLS with
# the upstream itself through the relay (so the upstream sees the
# placeholder key: bad-key by design). No MITM can be faster than this; see
# docs/BENCHMARKS.md. The relay (bench/relay/relay.c) dials only 127.0.0.0/8.
set -euo pipefail
if [ -z "${UPSTREAM_CA:-}" ]; then echo "error: UPSTREAM_CA must be set (see bench/peers/lib.sh)" >&2; exit 2; fi
src=$(cd "$(dirname "$0")" && pwd)/relay/relay.c
PORT=${PEER_PORT:-18095}
PEER_DIR=${PEER_DIR:-$(mktemp -d /tmp/bench-peer-relay.XXXXXX)}
mkdir -p "$PEER_DIR"
cc -O2 -pthread -o "$PEER_DIR/relay" "$src" >&2
echo "PROXY_URL=http://127.0.0.1:$PORT"
echo "PROXY_CA=$UPSTREAM_CA"
echo "PROXY_VERSION=no-op CONNECT relay in C (bench/relay/relay.c, $(cc --version | head -1)), a thread per direction"
exec "$PEER_DIR/relay" "$PORT"
