# Sourced by the scripts: puts cargo on PATH and sets shared defaults.
for c in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [[ -x "$c/cargo" ]] && case ":$PATH:" in *":$c:"*) ;; *) PATH="$c:$PATH" ;; esac
done
export PATH
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RETZ_SHARED_DIR="${RETZ_SHARED_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared}"
