#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine (as root): installs what it needs,
# starts a throw-away PostgreSQL for the store tests and a ZooKeeper for master detection,
# fetches hwloc's XML test set (scripts/lib/hwloc_testset.sh), then runs formatting, lints and tests.
# Under CI=true, tests that need root, cgroups, PostgreSQL, ZooKeeper or hwloc's test set fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-debian.sh --test
source scripts/lib/env.sh
if [[ ! -d "$RETZ_SHARED_DIR/topologies" ]]; then
  echo "test.sh: no shared test data at $RETZ_SHARED_DIR/topologies; check out beside the project's shared/ directory or set RETZ_SHARED_DIR=/path/to/shared" >&2
  exit 2
fi
source scripts/lib/postgres.sh
start_test_postgres
source scripts/lib/zookeeper.sh
start_test_zookeeper
source scripts/lib/hwloc_testset.sh
fetch_hwloc_testset

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
echo "== Debian packages: install, run a job as the unit does, purge"
bash scripts/test-package.sh --no-build
