#!/usr/bin/env bash
# Builds the Debian packages of Retz into DIR (default target/debian):
#   retz-server    retz-server, retz-mesos-local, /etc/retz/retz.toml, the systemd unit,
#                  a supervisord sample; postinst creates the `retz` system user and
#                  /var/lib/retz (0700, owned by retz)
#   retz-client    retz-client and retz-admin, /etc/retz/client.toml
#   retz-executor  retz-executor (copy it to the same path on every Mesos agent)
#   retz-sim       retz-sim
# Binaries are stripped; man pages are generated from --help with help2man; shared-library
# dependencies come from dpkg-shlibdeps. Run as root on Debian 12 or later (installs
# dpkg-dev, help2man and binutils when missing, like the other scripts).
#
#   scripts/package.sh [--profile release|dev|test] [--out DIR] [--no-build]
#
# --profile dev/test package the binaries of that cargo profile (the test suite uses the
# ones it has already built); release is the default and what operators install.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
out=target/debian
build=1
while (($#)); do
  case "$1" in
    --profile) profile="${2:?--profile needs release, dev or test}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) bindir=target/release ;;
  dev|test) bindir=target/debug ;;
  *) echo "package.sh: --profile must be release, dev or test, not '$profile'" >&2; exit 2 ;;
esac
[[ -n "${CARGO_TARGET_DIR:-}" ]] && bindir="$CARGO_TARGET_DIR/${bindir#target/}"

bash scripts/setup-debian.sh --package
source scripts/lib/env.sh

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
[[ -n "$version" ]] || { echo "package.sh: no version in Cargo.toml [workspace.package]" >&2; exit 1; }

if ((build)); then
  echo "== cargo build --profile $profile (binaries)"
  cargo build --locked --profile "$profile" -p retz-scheduler -p retz-mesos-local \
    -p retz-client -p retz-executor -p retz-sim --bins
fi
for b in retz-server retz-mesos-local retz-client retz-admin retz-executor retz-sim; do
  [[ -x "$bindir/$b" ]] || { echo "package.sh: $bindir/$b is missing; build it or drop --no-build" >&2; exit 1; }
done

rm -rf "$out/stage"
mkdir -p "$out/stage"
out=$(cd "$out" && pwd)

# stage PKG: an empty package tree
stage() { local d="$out/stage/$1"; mkdir -p "$d/DEBIAN" "$d/usr/bin" "$d/usr/share/doc/$1" "$d/usr/share/man/man1"; echo "$d"; }

# add_bin TREE NAME SUMMARY: stripped binary and its help2man page
add_bin() {
  local tree=$1 name=$2 summary=$3
  install -m 0755 "$bindir/$name" "$tree/usr/bin/$name"
  strip --strip-unneeded "$tree/usr/bin/$name"
  help2man --no-info --no-discard-stderr --version-string="$version" \
    --name="$summary" --section=1 "$tree/usr/bin/$name" >"$tree/usr/share/man/man1/$name.1"
  gzip -9n "$tree/usr/share/man/man1/$name.1"
}

# control TREE PKG DESCRIPTION [extra Depends]: DEBIAN/control with shlibdeps
control() {
  local tree=$1 pkg=$2 desc=$3 extra=${4:-}
  local scratch; scratch=$(mktemp -d)
  mkdir -p "$scratch/debian"
  printf 'Source: retz\n\nPackage: %s\nArchitecture: any\n' "$pkg" >"$scratch/debian/control"
  local shlibs args=() f
  for f in "$tree"/usr/bin/*; do args+=("-e$f"); done
  shlibs=$(cd "$scratch" && dpkg-shlibdeps -O "${args[@]}" | sed -n 's/^shlibs:Depends=//p')
  rm -rf "$scratch"
  local depends="$shlibs"
  [[ -n "$extra" ]] && depends="${depends:+$depends, }$extra"
  local size; size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
  cat >"$tree/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: Retz developers <retz@example.invalid>
Installed-Size: $size
Depends: $depends
Section: admin
Priority: optional
Homepage: https://example.invalid/retz
Description: $desc
CONTROL
  cat "$tree/DEBIAN/control.long" >>"$tree/DEBIAN/control" 2>/dev/null || true
  rm -f "$tree/DEBIAN/control.long"
  cp LICENSE* "$tree/usr/share/doc/$pkg/" 2>/dev/null || true
  cp README.md "$tree/usr/share/doc/$pkg/README.md"
}

build_deb() {
  local tree=$1 pkg=$2
  find "$tree" -type d -exec chmod 0755 {} +
  dpkg-deb --root-owner-group -Zxz --build "$tree" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "package.sh: $out/${pkg}_${version}_${arch}.deb"
}

# -- retz-server
t=$(stage retz-server)
add_bin "$t" retz-server "Retz batch job scheduler for Apache Mesos (NUMA-aware placement)"
add_bin "$t" retz-mesos-local "embedded local Mesos cluster of Retz, as a standalone process"
install -D -m 0644 etc/retz.toml "$t/etc/retz/retz.toml"
install -D -m 0644 etc/systemd/retz-server.service "$t/lib/systemd/system/retz-server.service"
install -D -m 0644 etc/supervisord/retz-server.conf "$t/usr/share/doc/retz-server/examples/supervisord.conf"
printf '/etc/retz/retz.toml\n' >"$t/DEBIAN/conffiles"
cp packaging/debian/retz-server.postinst "$t/DEBIAN/postinst"
cp packaging/debian/retz-server.postrm "$t/DEBIAN/postrm"
chmod 0755 "$t/DEBIAN/postinst" "$t/DEBIAN/postrm"
printf ' The Retz server queues batch jobs, places them on Mesos offers by a NUMA-aware\n cost model (agent, NUMA nodes, exact CPU ids) and launches them through\n retz-executor. Includes retz-mesos-local, the embedded local Mesos cluster.\n' >"$t/DEBIAN/control.long"
control "$t" retz-server "NUMA-aware batch job scheduler for Apache Mesos" "adduser"
build_deb "$t" retz-server

# -- retz-client
t=$(stage retz-client)
add_bin "$t" retz-client "command-line client of the Retz batch job scheduler"
add_bin "$t" retz-admin "administration client of the Retz batch job scheduler"
install -D -m 0644 etc/client.toml "$t/etc/retz/client.toml"
printf '/etc/retz/client.toml\n' >"$t/DEBIAN/conffiles"
printf ' retz-client schedules and follows jobs, loads applications and reads job files;\n retz-admin manages users. Both sign their requests (Retz-auth-v1).\n' >"$t/DEBIAN/control.long"
control "$t" retz-client "clients of the Retz batch job scheduler"
build_deb "$t" retz-client

# -- retz-executor
t=$(stage retz-executor)
add_bin "$t" retz-executor "Mesos executor of Retz: runs each job pinned to its CPUs as its own user"
printf ' Installed on every Mesos agent: runs Retz jobs in their own cgroup with the exact\n CPUs and memory nodes they were granted, as their Unix user, without privileges.\n retz-executor topology --agent-flags prints the agent flags of the NUMA convention.\n' >"$t/DEBIAN/control.long"
control "$t" retz-executor "Mesos executor of Retz (CPU pinning, per-job users)"
build_deb "$t" retz-executor

# -- retz-sim
t=$(stage retz-sim)
add_bin "$t" retz-sim "placement simulator of Retz: replays offers and workloads through the placement engine"
printf ' Replays recorded Mesos offers or hwloc topologies against a workload trace through\n the same placement code as retz-server, on virtual time, and compares policies.\n' >"$t/DEBIAN/control.long"
control "$t" retz-sim "placement simulator of the Retz scheduler"
build_deb "$t" retz-sim

rm -rf "$out/stage"
