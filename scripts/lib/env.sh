# Sourced by the scripts: puts cargo on PATH and sets shared defaults.
for c in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [[ -x "$c/cargo" ]] && case ":$PATH:" in *":$c:"*) ;; *) PATH="$c:$PATH" ;; esac
done
export PATH
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The project's shared test data (topologies, traces, references) lives beside the
# checkout (`../shared`). A checkout elsewhere finds it in the nearest ancestor that has a
# `shared/topologies` directory; RETZ_SHARED_DIR overrides both.
retz_find_shared() {
  local d
  d="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  while [[ "$d" != / ]]; do
    d="$(dirname "$d")"
    [[ -d "$d/shared/topologies" ]] && { echo "$d/shared"; return; }
  done
  echo "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared"
}
export RETZ_SHARED_DIR="${RETZ_SHARED_DIR:-$(retz_find_shared)}"
