#!/usr/bin/env bash
# Installs the Debian packages Retz needs to build and test, idempotently.
#   scripts/setup-debian.sh            build dependencies only
#   scripts/setup-debian.sh --test     plus what the test suite needs (PostgreSQL, Python venv,
#                                      headless Chromium for the web page test, prometheus
#                                      for promtool check metrics, ZooKeeper (with a JRE) for
#                                      master detection, bzip2 for hwloc's XML test
#                                      set, and the packaging tools:
#                                      the suite builds the packages)
#   scripts/setup-debian.sh --package  plus what scripts/package.sh needs
# Run as root on Debian 12 (bookworm) or later. Safe to run again: installs only what is missing.
set -euo pipefail

want=(pkg-config libhwloc-dev libudev-dev hwloc gcc make ca-certificates curl)
for arg in "$@"; do
  case "$arg" in
    --test) want+=(postgresql python3 python3-venv python3-dev dpkg-dev help2man binutils adduser util-linux bzip2 chromium fonts-dejavu-core prometheus zookeeper) ;;
    --package) want+=(dpkg-dev help2man binutils adduser) ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup-debian: unknown option '$arg' (use --test, --package or --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-debian: missing Debian packages: ${missing[*]}; run this script as root or install them" >&2
    exit 1
  fi
  echo "setup-debian: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
    [[ -x "$c" ]] && export PATH="$(dirname "$c"):$PATH" && break
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup-debian: no Rust toolchain found; install Rust 1.88 or newer with rustup, then run again" >&2
  exit 1
fi
echo "setup-debian: ok ($(cargo --version))"
