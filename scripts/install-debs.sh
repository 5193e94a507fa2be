#!/usr/bin/env bash
# Installs the Debian packages named as arguments when any is missing (apt-get update first).
# --no-recommends first: leave out the packages' recommendations (prometheus recommends a node exporter we do not want).
set -euo pipefail
extra=()
if [ "${1:-}" = "--no-recommends" ]; then
  extra+=(--no-install-recommends)
  shift
fi
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing missing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${extra[@]}" "${missing[@]}" >/dev/null
