# shellcheck shell=bash
# Shared by bench/*.sh: knob checks, installing missing Debian packages, and the gossamer binary to measure.
# The caller sets ROOT (the repo) and defines say() and die() first.

int_in() { # name value min max
  [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) || die "$1 must be an integer in $3..$4, not '$2'"
}

install_debs() { # package... (only the missing ones are passed)
  (($#)) || return 0
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then command -v sudo >/dev/null 2>&1 && sudo=(sudo) || die "need root or sudo to install $*"; fi
  say "installing $*"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

gossamer_bin() { # prints the binary: $GOSSAMER_BIN, or a release build of the working tree
  if [[ -n ${GOSSAMER_BIN:-} ]]; then
    [[ -x $GOSSAMER_BIN ]] || die "GOSSAMER_BIN=$GOSSAMER_BIN is not an executable"
    echo "$GOSSAMER_BIN"
    return
  fi
  command -v swift >/dev/null 2>&1 || die "swift not found (set GOSSAMER_BIN to a built gossamer binary)"
  say "building gossamer (release, scratch path .build-release)"
  # One retry: swift build fails when a source file changes while it compiles (someone editing the tree).
  (cd "$ROOT" && swift build -c release --product gossamer --scratch-path .build-release) >&2 ||
    { say "build failed; retrying once"; sleep 5; (cd "$ROOT" && swift build -c release --product gossamer --scratch-path .build-release) >&2; }
  echo "$ROOT/.build-release/release/gossamer"
}
