#!/usr/bin/env bash
# Runs the whole test suite with the real parts it needs: a throwaway redis-server on a free
# loopback port (stopped afterwards, by its own pidfile) and the built `gossamer` binary.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

REDIS_DIR=$(mktemp -d /tmp/gossamer-redis.XXXXXX)
REDIS_PORT=$(free_port)
cleanup() {
  if [ -f "$REDIS_DIR/redis.pid" ]; then kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true; fi
  sleep 0.2
  rm -rf "$REDIS_DIR"
}
trap cleanup EXIT
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" \
  --save '' --appendonly no --daemonize yes --logfile "$REDIS_DIR/redis.log" >/dev/null
for _ in $(seq 1 100); do
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG || { echo "error: redis-server did not start"; cat "$REDIS_DIR/redis.log"; exit 1; }
export REDIS_HOSTNAME=127.0.0.1 REDIS_PORT
echo "redis-server for tests on 127.0.0.1:$REDIS_PORT"

swift build --build-tests
export GOSSAMER_BIN="$(swift build --show-bin-path)/gossamer"
# Swift Testing only (no XCTest tests in this package): --disable-xctest avoids an "Executed 0 tests" line.
# --no-parallel: the simulator and fuzz tests are CPU-bound and would starve the socket and process tests of
# the two cooperative threads, making their timeouts flaky; one at a time the whole suite takes about 2 minutes.
swift test --skip-build --disable-xctest --no-parallel
# Every example in README.md's tour and docs/api.md, run against real agents and a real lb (about 30 s).
python3 scripts/check-docs.py --bin "$GOSSAMER_BIN"
