#!/usr/bin/env bash
# The main job on a fresh Debian machine (as root): install what is missing, build, show
# this machine's NUMA layout as a Mesos agent would advertise it, then start the embedded
# local Mesos cluster and run jobs placed by the NUMA engine and pinned by retz-executor.
# Each job prints $RETZ_CPU, $RETZ_CPUSET and its own Cpus_allowed_list.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-debian.sh
source scripts/lib/env.sh

echo "== building (release; the first build takes a few minutes)"
cargo build --release --locked -p retz-executor -p retz-e2e-tests --bins --examples

echo "== this machine, by the NUMA resource convention (retz-executor topology --agent-flags)"
target/release/retz-executor topology
target/release/retz-executor topology --agent-flags

echo "== pinned jobs on the embedded local cluster"
work="${RETZ_QUICKSTART_DIR:-$(mktemp -d /tmp/retz-quickstart.XXXXXX)}"
target/release/examples/quickstart --executor target/release/retz-executor --work-dir "$work" "$@"
echo "== done: sandboxes are under $work"
