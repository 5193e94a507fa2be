# shellcheck shell=bash
# Shared by bench/*.sh: knob checks, the command line as run, installing missing Debian packages, the binaries to
# measure (gossamer, benchmark executables), and stopping a Python driver and what it started. The caller sets ROOT
# (the repo) and defines say() and die() first.

int_in() { # name value min max
  [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) || die "$1 must be an integer in $3..$4, not '$2'"
}

knobs_set() { # name...: prints "NAME=value " (shell-quoted) for each knob set to something in the environment
  local v
  for v; do
    if [[ -n $(printenv "$v" || true) ]]; then printf '%s=%q ' "$v" "${!v}"; fi
  done
}

install_debs() { # package... (only the missing ones are passed)
  (($#)) || return 0
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then command -v sudo >/dev/null 2>&1 && sudo=(sudo) || die "need root or sudo to install $*"; fi
  say "installing $*"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

release_bin() { # product var: prints the binary to measure: $var if set, or a release build of the working tree's
  # product (scratch path .build-release, shared by every benchmark)
  local product=$1 var=$2
  if [[ -n ${!var:-} ]]; then
    [[ -x ${!var} ]] || die "$var=${!var} is not an executable"
    realpath "${!var}"
    return
  fi
  command -v swift >/dev/null 2>&1 || die "swift not found (set $var to a built $product binary)"
  say "building $product (release, as shipped: scripts/build-release.sh, scratch path .build-release)"
  "$ROOT/scripts/build-release.sh" "$product"
}

gossamer_bin() { release_bin gossamer GOSSAMER_BIN; } # $GOSSAMER_BIN, or a release build of gossamer

stop_driver() { # pid tenths: SIGTERM (the driver then reports what it measured and stops its own children), up to
  # tenths x 0.1 s for it to exit, then SIGKILL. Nothing if pid is empty or already gone.
  local i
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < $2; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

kill_listed() { # pidfile regex: SIGKILL every PID listed in pidfile (one a line, written by the driver) whose command
  # line still matches the extended regex, so a PID reused by someone else's process is left alone.
  local pid
  while read -r pid; do
    [[ -n $pid && -r /proc/$pid/cmdline ]] || continue
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -Eq "$2"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$1"
}

# A script that runs a Python driver (which lists every PID it starts in $PIDFILE and prints its table on stdout)
# calls driver_prepare once its knobs are checked and its binaries are ready, then run_driver with the driver's command.

driver_prepare() { # name regex: makes $OUT_DIR, a temp dir $WORK holding $PIDFILE, and the traps: on exit (also Ctrl-C,
  # SIGTERM, errors) driver_cleanup stops the driver and every listed PID whose command line matches regex
  mkdir -p "$OUT_DIR"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/gossamer-$1.XXXXXX")
  PIDFILE=$WORK/pids
  : >"$PIDFILE"
  DRIVER_PID=""
  PRINTED=""
  KILL_REGEX=$2
  trap driver_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

driver_cleanup() { # the EXIT trap set by driver_prepare
  local rc=$?
  trap - EXIT INT TERM
  stop_driver "$DRIVER_PID" 100 # it prints the partial table and stops what it started
  # Everything the driver started, by PID (only if that PID still runs one of our commands).
  kill_listed "$PIDFILE" "$KILL_REGEX"
  if ((rc != 0)) && [[ -z $PRINTED && -s ${OUT_DIR:-}/table.md ]]; then
    printf '\nPARTIAL RESULTS (exit %d):\n' "$rc" >&2
    cat "$OUT_DIR/table.md" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}

run_driver() { # command...: runs the driver with its stdout in $OUT_DIR/table.md, prints that table, and exits with
  # the driver's status
  local rc
  set +e
  "$@" >"$OUT_DIR/table.md" &
  DRIVER_PID=$!
  wait "$DRIVER_PID"
  rc=$?
  DRIVER_PID=""
  set -e
  echo
  cat "$OUT_DIR/table.md"
  PRINTED=1
  echo
  echo "Raw output: $OUT_DIR"
  exit "$rc"
}
