#!/usr/bin/env bash
# Installs the Debian packages on this machine and runs a job through them, the way an
# operator would: retz-server as the package's `retz` user (the unit's User=, with its
# ExecStart command line), talking to a packaged retz-mesos-local with framework
# authentication, the job placed on the packaged retz-executor and run as `nobody`.
# Then purges the packages and checks nothing of them is left.
#
#   scripts/test-package.sh [--no-build]
#
# Run as root on Debian (the test suite calls it with the binaries it has already built:
# --no-build packages target/debug). Leaves the machine as it found it; the packages must
# not be installed beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."

build_flag=()
[[ "${1:-}" == "--no-build" ]] && build_flag=(--no-build)
[[ $EUID -eq 0 ]] || { echo "test-package.sh: needs root (installs packages)" >&2; exit 1; }
for p in retz-server retz-client retz-executor; do
  if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    echo "test-package.sh: $p is installed already; purge it first (dpkg --purge $p)" >&2
    exit 1
  fi
done

work=$(mktemp -d /tmp/retz-package-test.XXXXXX)
chmod 0755 "$work"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  dpkg --purge retz-server retz-client retz-executor >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "test-package.sh: FAILED: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT WHAT LOG
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$3" >&2 || true
  fail "$2 did not listen on port $1"
}

echo "== package (dev binaries)"
bash scripts/package.sh --profile dev "${build_flag[@]}" --out "$work/debs" >/dev/null
ls "$work/debs"/*.deb

echo "== install retz-server, retz-client, retz-executor"
dpkg -i "$work"/debs/retz-server_*.deb "$work"/debs/retz-client_*.deb \
  "$work"/debs/retz-executor_*.deb >/dev/null
for b in retz-server retz-mesos-local retz-client retz-admin retz-executor; do
  [[ -x /usr/bin/$b ]] || fail "/usr/bin/$b missing"
  /usr/bin/$b --help >/dev/null || fail "$b --help"
  [[ -f /usr/share/man/man1/$b.1.gz ]] || fail "no man page for $b"
done
id retz >/dev/null || fail "postinst made no retz user"
[[ "$(stat -c '%U %a' /var/lib/retz)" == "retz 700" ]] || fail "/var/lib/retz is $(stat -c '%U %a' /var/lib/retz), not retz 700"
[[ -f /etc/retz/retz.toml && -f /etc/retz/client.toml ]] || fail "config files missing"
[[ -f /lib/systemd/system/retz-server.service ]] || fail "no systemd unit"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/retz-server.service || fail "systemd-analyze verify"
fi
unit=/lib/systemd/system/retz-server.service
user=$(sed -n 's/^User=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ "$user" == retz ]] || fail "the unit runs as '$user'"

echo "== a Mesos cluster with framework authentication (packaged retz-mesos-local)"
secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '{"credentials":[{"principal":"retz","secret":"%s"}]}\n' "$secret" >"$work/credentials.json"
chmod 0600 "$work/credentials.json"
printf '%s\n' "$secret" >"$work/mesos-secret"
chown retz:retz "$work/mesos-secret"
chmod 0400 "$work/mesos-secret"
mesos_port=$(free_port)
mkdir -p "$work/mesos"
/usr/bin/retz-mesos-local --bind "127.0.0.1:$mesos_port" --work-dir "$work/mesos" \
  --credentials "$work/credentials.json" >"$work/mesos.log" 2>&1 &
pids+=($!)
wait_port "$mesos_port" retz-mesos-local "$work/mesos.log"

echo "== retz-server as the unit runs it (user $user): $exec_start"
api_port=$(free_port)
# The unit's ExecStart, with this test's cluster and port as flags (a drop-in would set them).
read -r -a cmd <<<"$exec_start"
setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs --inh-caps=-all \
  env RUST_LOG=info "${cmd[@]}" --mesos "127.0.0.1:$mesos_port" --bind "127.0.0.1:$api_port" \
  --mesos-principal retz --mesos-secret-file "$work/mesos-secret" >"$work/server.log" 2>&1 &
pids+=($!)
wait_port "$api_port" retz-server "$work/server.log"
for _ in $(seq 1 100); do [[ -f /var/lib/retz/client.toml ]] && break; sleep 0.1; done
[[ "$(stat -c '%U %a' /var/lib/retz/client.toml)" == "retz 600" ]] || fail "client.toml is not retz's 0600"
for f in /var/lib/retz/retz.db*; do
  [[ "$(stat -c '%a' "$f")" == 600 ]] || fail "$f is $(stat -c '%a' "$f")"
done

echo "== a job through the packaged client"
client=(/usr/bin/retz-client -C /var/lib/retz/client.toml)
"${client[@]}" load-app -A pkg >/dev/null
out=$(timeout 120 "${client[@]}" run -A pkg -c 'id -un; echo "cpus=$RETZ_CPUSET"') ||
  { cat "$work/server.log" "$work/mesos.log" >&2; fail "retz-client run"; }
echo "$out"
[[ "$(head -n1 <<<"$out")" == nobody ]] || fail "the job ran as '$(head -n1 <<<"$out")', not nobody"
grep -q '^cpus=[0-9]' <<<"$out" || fail "the job saw no RETZ_CPUSET"

echo "== purge"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
dpkg --purge retz-server retz-client retz-executor >/dev/null
for f in /usr/bin/retz-server /usr/bin/retz-client /usr/bin/retz-executor \
  /etc/retz/retz.toml /lib/systemd/system/retz-server.service /var/lib/retz; do
  [[ ! -e "$f" ]] || fail "$f is left after purge"
done
echo "package test: ok"
