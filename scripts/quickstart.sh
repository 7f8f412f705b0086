#!/usr/bin/env bash
# The main job on a fresh Debian machine (as root): install what is missing, build, start
# `retz-server --local` (the embedded local Mesos cluster on this machine), load an example
# application (a small tarball) and run a few jobs through retz-client. Each job prints
# the Unix user it runs as (nobody: the server's default job user; never root),
# $RETZ_CPU, $RETZ_CPUSET and its own Cpus_allowed_list: the CPUs it was granted and is
# pinned to.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-debian.sh
source scripts/lib/env.sh

# RETZ_QUICKSTART_BIN=DIR uses binaries already built there (e.g. target/debug).
bin="${RETZ_QUICKSTART_BIN:-target/release}"
if [[ -z "${RETZ_QUICKSTART_BIN:-}" ]]; then
  echo "== building (release; the first build takes a few minutes)"
  cargo build --release --locked -p retz-scheduler -p retz-client -p retz-executor --bins
fi

echo "== this machine, by the NUMA resource convention (retz-executor topology)"
"$bin/retz-executor" topology
"$bin/retz-executor" topology --agent-flags

if [[ -n "${RETZ_QUICKSTART_DIR:-}" ]]; then
  work="$RETZ_QUICKSTART_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d /tmp/retz-quickstart.XXXXXX)"
  # mktemp makes it 0700; jobs run as nobody and must reach their sandboxes in
  # $work/data-work (the data dir itself stays 0700: it holds the secrets).
  chmod 0755 "$work"
fi
port="${RETZ_QUICKSTART_PORT:-19090}"
echo "== starting retz-server --local --data-dir $work/data (log: $work/server.log; sandboxes in $work/data-work)"
"$bin/retz-server" --local --data-dir "$work/data" --bind "127.0.0.1:$port" \
  >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [[ -f "$work/data/client.toml" ]] && "$bin/retz-client" -C "$work/data/client.toml" status >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; echo "retz-server exited" >&2; exit 1; }
  sleep 0.2
done
client() { "$bin/retz-client" -C "$work/data/client.toml" "$@"; }

echo "== loading the example application (a tarball with bin/hello.sh)"
mkdir -p "$work/app/bin"
printf '#!/bin/sh\necho "hello from $RETZ_PVNAME"\n' >"$work/app/bin/hello.sh"
chmod +x "$work/app/bin/hello.sh"
tar -C "$work/app" -czf "$work/example.tar.gz" bin
client load-app -A example -F "file://$work/example.tar.gz"

cmd='echo "job $RETZ_JOB_ID as $(id -un): RETZ_CPU=$RETZ_CPU RETZ_CPUSET=$RETZ_CPUSET RETZ_NUMA_NODES=$RETZ_NUMA_NODES"; grep Cpus_allowed_list /proc/self/status; $RETZ_PVNAME/bin/hello.sh'
echo "== run: 1 CPU under numa-strict"
client run -A example -cpu 1 --affinity numa-strict -cmd "$cmd"
echo "== run: 1 to 4 CPUs under numa-prefer (granted what is free)"
client run -A example -cpu 1-4 --affinity numa-prefer -cmd "$cmd"
echo "== schedule two jobs at once, then list them"
a=$(client schedule -q -A example -cpu 1 -cmd "$cmd; sleep 1")
b=$(client schedule -q -A example -cpu 1 -cmd "$cmd; sleep 1")
for id in "$a" "$b"; do
  until client get-job -i "$id" --json | grep -Eq '"state": ?"(FINISHED|KILLED)"'; do sleep 0.5; done
  client get-file -i "$id" --path stdout
done
client list --states ALL
echo "== done: server data and sandboxes under $work (admin config: $work/data/client.toml)"
