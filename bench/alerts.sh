#!/usr/bin/env bash
# Alert rules on this machine: one round of RULES rules over SERIES series, in the engine alone and in a real
# agent (its round time and CPU share), and the latency from a threshold crossing to the webhook receiving the
# firing notification.
#
#   bash bench/alerts.sh                               # 1,000 rules, 10,000 series, 60 s of rounds, 20 crossings: ~3 min + build
#   MEASURE=20 CROSSINGS=5 bash bench/alerts.sh         # quick look
#   GOSSAMER_BIN=… ALERTBENCH_BIN=… bash bench/alerts.sh  # skip the release builds
#
# Builds gossamer and Benchmarks/AlertBench in release (unless the *_BIN variables are set), runs AlertBench (pure:
# samples from a MetricsRegistry, AlertEvaluator, state encoding), then bench/lib/alertbench.py: one agent on a free
# loopback port with test gauges (debug_metrics), SERIES gauges and RULES rules loaded over HTTP, MEASURE seconds of
# rounds at INTERVAL (round time from the agent's gossamer_alert_round_seconds, CPU from /proc), then CROSSINGS
# crossings of a rule with `for: 0` and its own LATENCY_INTERVAL, notifying a webhook receiver in the driver
# (group_wait 0); last, Benchmarks/WebhookBench posts the same webhook message to the same receiver through
# AsyncHTTPClient and through URLSession (libcurl), the two outbound clients we could use. Goals (issue: Monitor): a round of 1,000 rules ≤ 50 ms; crossing → webhook ≤ one evaluation
# interval + 100 ms. There is no reference system for this figure. See bench/README.md, section "Alerts".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib

RULES=${RULES:-1000}
SERIES=${SERIES:-10000}
INTERVAL=${INTERVAL:-15s}
MEASURE=${MEASURE:-60}
CROSSINGS=${CROSSINGS:-20}
LATENCY_INTERVAL=${LATENCY_INTERVAL:-1s}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out/alerts-$(date +%Y%m%d-%H%M%S)}

say() { printf '==> [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'alerts.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib/common.sh
source "$LIB/common.sh"
int_in RULES "$RULES" 1 20000
int_in SERIES "$SERIES" 100 100000
int_in MEASURE "$MEASURE" 5 600
int_in CROSSINGS "$CROSSINGS" 1 200
[[ $INTERVAL =~ ^[0-9]+s$ ]] || die "INTERVAL must be whole seconds such as 15s, not '$INTERVAL'"
[[ $LATENCY_INTERVAL =~ ^[0-9]+s$ ]] || die "LATENCY_INTERVAL must be whole seconds such as 1s, not '$LATENCY_INTERVAL'"

CMD="$(knobs_set RULES SERIES INTERVAL MEASURE CROSSINGS LATENCY_INTERVAL GOSSAMER_BIN ALERTBENCH_BIN WEBHOOKBENCH_BIN OUT_DIR)bash bench/alerts.sh"

command -v python3 >/dev/null 2>&1 || install_debs python3
BIN=$(gossamer_bin)
"$BIN" agent --help 2>&1 | grep -q -- "--config" || die "$BIN has no 'agent --config'"
ABIN=$(release_bin AlertBench ALERTBENCH_BIN)
WBIN=$(release_bin WebhookBench WEBHOOKBENCH_BIN)

driver_prepare alertbench '(^|/)(gossamer agent|AlertBench|WebhookBench) '
GVER=$("$BIN" --version 2>/dev/null | head -1 || true)
say "RULES=$RULES SERIES=$SERIES INTERVAL=$INTERVAL MEASURE=$MEASURE CROSSINGS=$CROSSINGS; raw output in $OUT_DIR"
run_driver python3 "$LIB/alertbench.py" --gossamer-bin "$BIN" --alertbench-bin "$ABIN" --webhookbench-bin "$WBIN" --rules "$RULES" --series "$SERIES" \
  --interval "$INTERVAL" --measure "$MEASURE" --crossings "$CROSSINGS" --latency-interval "$LATENCY_INTERVAL" \
  --out-dir "$OUT_DIR" --pidfile "$PIDFILE" --tmp "$WORK" \
  --meta "command=$CMD" \
  --meta "versions=gossamer $GVER ($BIN), AlertBench ($ABIN), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), shared with other work"
