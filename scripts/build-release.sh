#!/usr/bin/env bash
# Builds a release product the way Gossamer ships it, and prints the binary's path on stdout.
#
#   scripts/build-release.sh [--no-order] [PRODUCT]     # PRODUCT defaults to gossamer
#
# Scratch path .build-release (every benchmark shares it). The flags, and why (docs/architecture.md, "Memory
# footprint"):
#   --static-swift-stdlib            the Swift runtime and Foundation are linked into the binary, so the linker can
#                                    place their code too, and calls to swift_retain/release need no PLT;
#   -function-sections (Swift and C) every function in its own section, so it can be placed and dropped alone;
#   -use-ld=lld                      lld, for --symbol-ordering-file;
#   --symbol-ordering-file           scripts/gossamer.order (written by scripts/order-profile.py): the functions a
#                                    running agent executes, hottest first, packed at the start of .text;
#   -z pack-relative-relocs          RELR relocations: 30 KiB instead of 3.5 MiB that the loader reads at start;
#   --no-export-dynamic              no dynamic symbol table of every Swift symbol (4 MiB of .dynsym and .dynstr).
# --no-order leaves the order file out (scripts/order-profile.py profiles such a build). A map of the link, with
# mangled names, is written next to the binary (PRODUCT.map) for order-profile.py.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
order=1
if [[ ${1:-} == --no-order ]]; then order=0; shift; fi
product=${1:-gossamer}
scratch=.build-release
flags=(-c release --product "$product" --scratch-path "$scratch" --static-swift-stdlib
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xswiftc -use-ld=lld
  -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic
  -Xlinker -Map="$ROOT/$scratch/$product.map" -Xlinker --no-demangle)
if ((order)) && [[ -s $ROOT/scripts/gossamer.order ]]; then
  # Names the order file holds but this product lacks are expected (other products, shared libraries).
  flags+=(-Xlinker --symbol-ordering-file="$ROOT/scripts/gossamer.order" -Xlinker --no-warn-symbol-ordering)
fi
mkdir -p "$ROOT/$scratch"
cd "$ROOT"
# One retry: swift build fails when a source file changes while it compiles (someone editing the tree).
swift build "${flags[@]}" >&2 || { echo "build failed; retrying once" >&2; sleep 5; swift build "${flags[@]}" >&2; }
echo "$ROOT/$scratch/release/$product"
