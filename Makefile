# Gossamer: the two set-up commands are `make run` and `make test` (see README.md).
SWIFT ?= swift
CONFIG ?= debug
NODE ?= local
HTTP ?= 127.0.0.1:7700
DATA ?= ./data

BUILD_DEBS := pkg-config libsqlite3-dev libhiredis-dev libcurl4-openssl-dev
TEST_DEBS := $(BUILD_DEBS) redis-server curl python3

.PHONY: run test build release deps bench-kv bench-gossip bench-picker bench-registry bench-lb bench-alerts clean help

help:
	@echo "make run    build and run one agent on $(HTTP) with data in $(DATA)"
	@echo "make test   install what the tests need and run the whole test suite"
	@echo "make release   the binary as shipped: .build-release/release/gossamer (scripts/build-release.sh)"
	@echo "make bench-kv / bench-gossip / bench-picker   benchmarks (see bench/README.md)"

deps:
	@scripts/install-debs.sh $(BUILD_DEBS)

build: deps
	$(SWIFT) build -c $(CONFIG) --product gossamer

release: deps
	scripts/build-release.sh gossamer

run: build
	$$($(SWIFT) build -c $(CONFIG) --show-bin-path)/gossamer agent --node-name $(NODE) --data-dir $(DATA) --http $(HTTP)

test:
	@scripts/install-debs.sh $(TEST_DEBS)
	@scripts/install-debs.sh --no-recommends prometheus  # promtool checks /metrics
	scripts/test.sh

bench-kv:
	bash bench/kv.sh

bench-picker: deps
	$(SWIFT) run -c release PickerBench

clean:
	rm -rf .build .build-release

bench-gossip:
	bash bench/gossip.sh

bench-registry:
	bash bench/registry.sh

bench-lb:
	bash bench/lb.sh

bench-alerts:
	bash bench/alerts.sh
