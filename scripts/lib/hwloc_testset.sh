# Sourced by scripts/test.sh: provides hwloc's own test set of XML topologies (the
# `tests/hwloc/xml/*.xml` of hwloc 2.9.0) for the topology tests, without committing
# hwloc's files. Downloads Debian's copy of the upstream source tarball once, checks it
# against the SHA-256 that Debian's hwloc_2.9.0-1.dsc lists, extracts only those XML
# files into a cache directory and exports RETZ_HWLOC_TESTSET=that directory.
# Offline, the set is skipped with a warning; under CI=true a missing set is an error.
#   RETZ_HWLOC_CACHE   where to keep the tarball and the files (default
#                      /var/cache/retz-test/hwloc when writable, else ~/.cache/retz-test/hwloc)
#   RETZ_HWLOC_TESTSET already set to a directory: used as is, nothing is downloaded

HWLOC_TESTSET_VERSION=2.9.0
HWLOC_TESTSET_URL="http://deb.debian.org/debian/pool/main/h/hwloc/hwloc_${HWLOC_TESTSET_VERSION}.orig.tar.bz2"
# From Checksums-Sha256 of http://deb.debian.org/debian/pool/main/h/hwloc/hwloc_2.9.0-1.dsc
HWLOC_TESTSET_SHA256=b3fb1a43a14d8fbcd8e976de5ede2ea7ce1d768ed173adb33c7ceaaf098dc970

fetch_hwloc_testset() {
  if [[ -n "${RETZ_HWLOC_TESTSET:-}" ]]; then
    if compgen -G "$RETZ_HWLOC_TESTSET/*.xml" >/dev/null; then
      echo "hwloc test set: using RETZ_HWLOC_TESTSET=$RETZ_HWLOC_TESTSET"
      return 0
    fi
    echo "hwloc test set: RETZ_HWLOC_TESTSET=$RETZ_HWLOC_TESTSET holds no *.xml; unset it to download the set" >&2
    return 1
  fi
  local cache="${RETZ_HWLOC_CACHE:-}"
  if [[ -z "$cache" ]]; then
    if mkdir -p /var/cache/retz-test/hwloc 2>/dev/null && [[ -w /var/cache/retz-test/hwloc ]]; then
      cache=/var/cache/retz-test/hwloc
    else
      cache="${XDG_CACHE_HOME:-$HOME/.cache}/retz-test/hwloc"
    fi
  fi
  local tarball="$cache/hwloc_${HWLOC_TESTSET_VERSION}.orig.tar.bz2"
  local dir="$cache/hwloc-${HWLOC_TESTSET_VERSION}-xml"
  if ! compgen -G "$dir/*.xml" >/dev/null; then
    mkdir -p "$cache" || { hwloc_testset_missing "cannot create $cache"; return; }
    if ! hwloc_testset_tarball_ok "$tarball"; then
      echo "hwloc test set: downloading $HWLOC_TESTSET_URL"
      if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$tarball.part" "$HWLOC_TESTSET_URL"; then
        rm -f "$tarball.part"
        hwloc_testset_missing "cannot download $HWLOC_TESTSET_URL"
        return
      fi
      mv "$tarball.part" "$tarball"
      if ! hwloc_testset_tarball_ok "$tarball"; then
        rm -f "$tarball"
        echo "hwloc test set: $HWLOC_TESTSET_URL does not have SHA-256 $HWLOC_TESTSET_SHA256 (Debian's hwloc_2.9.0-1.dsc); refusing it" >&2
        return 1
      fi
    fi
    rm -rf "$dir.part" && mkdir -p "$dir.part"
    if ! tar -xjf "$tarball" -C "$dir.part" --strip-components=4 --wildcards \
        "hwloc-${HWLOC_TESTSET_VERSION}/tests/hwloc/xml/*.xml"; then
      rm -rf "$dir.part"
      echo "hwloc test set: cannot extract the XML files from $tarball (is bzip2 installed?)" >&2
      return 1
    fi
    rm -rf "$dir" && mv "$dir.part" "$dir"
  fi
  export RETZ_HWLOC_TESTSET="$dir"
  echo "hwloc test set: $(compgen -G "$dir/*.xml" | wc -l) XML files in $RETZ_HWLOC_TESTSET"
}

# Whether FILE exists and has the pinned SHA-256.
hwloc_testset_tarball_ok() {
  [[ -f "$1" ]] && echo "$HWLOC_TESTSET_SHA256  $1" | sha256sum --check --status
}

# Reports a set that cannot be had: an error under CI=true, else a warning (tests skip).
hwloc_testset_missing() {
  if [[ "${CI:-}" == true ]]; then
    echo "hwloc test set: $1; CI=true needs it (set RETZ_HWLOC_TESTSET to a directory of hwloc's tests/hwloc/xml files)" >&2
    return 1
  fi
  echo "hwloc test set: $1; the tests over hwloc's test set will be skipped" >&2
  return 0
}
