# Sourced by scripts/test.sh: starts a standalone ZooKeeper from Debian's `zookeeper`
# package (no systemd needed; data under /tmp/retz-test-zk) and exports RETZ_TEST_ZK for
# the master-detection tests. Idempotent: a ZooKeeper already answering is reused.
start_test_zookeeper() {
  local port=${RETZ_TEST_ZK_PORT:-2181}
  local dir=/tmp/retz-test-zk
  if ! [[ -f /usr/share/zookeeper/bin/zkServer.sh ]]; then
    echo "zookeeper: ZooKeeper is not installed (scripts/setup-debian.sh --test installs it)" >&2
    return 1
  fi
  if ! zk_ruok "$port"; then
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok
CFG
    ZOOCFGDIR=$dir ZOO_LOG_DIR=$dir ZOOPIDFILE=$dir/zk.pid \
      /usr/share/zookeeper/bin/zkServer.sh start "$dir/zoo.cfg" >"$dir/start.log" 2>&1 || true
    local i
    for i in $(seq 1 60); do
      zk_ruok "$port" && break
      sleep 0.5
    done
    if ! zk_ruok "$port"; then
      echo "zookeeper: did not start on 127.0.0.1:$port (see $dir/start.log and $dir/*.out)" >&2
      return 1
    fi
  fi
  export RETZ_TEST_ZK="127.0.0.1:$port"
  echo "zookeeper: standalone server on $RETZ_TEST_ZK"
}

# Whether a ZooKeeper answers `ruok` on 127.0.0.1:PORT.
zk_ruok() {
  local reply
  reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf ruok >&3 && timeout 2 cat <&3) 2>/dev/null) || true
  [[ "$reply" == imok ]]
}
