# Sourced by scripts/test.sh: starts the Debian PostgreSQL cluster (no systemd needed) and
# exports RETZ_TEST_DATABASE_URL for the store tests. Idempotent.
start_test_postgres() {
  local ver
  ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  if [[ -z "$ver" ]]; then
    echo "postgres: PostgreSQL is not installed (scripts/setup-debian.sh --test installs it)" >&2
    return 1
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
    pg_createcluster "$ver" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
    pg_ctlcluster "$ver" main start
  fi
  local port
  port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
  su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='retz'\"" | grep -q 1 ||
    su postgres -c "psql -p $port -qc \"CREATE ROLE retz LOGIN SUPERUSER PASSWORD 'retz'\""
  su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_database WHERE datname='retz_test'\"" | grep -q 1 ||
    su postgres -c "psql -p $port -qc 'CREATE DATABASE retz_test OWNER retz'"
  export RETZ_TEST_DATABASE_URL="postgres://retz:retz@127.0.0.1:$port/retz_test"
  echo "postgres: $ver main online on port $port"
}
