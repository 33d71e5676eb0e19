#!/usr/bin/env bash
# A Kafka-protocol broker (Tansu) on loopback, for the tests of crm-log-kafka.
#
#   scripts/kafka-broker.sh install        cargo install tansu (a no-op when it is there)
#   scripts/kafka-broker.sh start [PORT]   start it (a free port when none is given);
#                                          prints HOST:PORT on stdout
#   scripts/kafka-broker.sh env            prints: export CRM_KAFKA_BROKERS=HOST:PORT
#   scripts/kafka-broker.sh status         exit 0 when it is running
#   scripts/kafka-broker.sh stop           stop it and remove its data
#
# In .ci/run:
#   scripts/kafka-broker.sh install
#   CRM_KAFKA_BROKERS=$(scripts/kafka-broker.sh start); export CRM_KAFKA_BROKERS
#   trap 'scripts/kafka-broker.sh stop' EXIT
#
# Environment:
#   CRM_KAFKA_BROKER_DIR  state directory: pid, port, addr (= brokers: HOST:PORT),
#                         storage, broker.log, data/
#                         (default /tmp/crm-kafka-broker)
#   CRM_KAFKA_STORAGE     Tansu storage engine URL; default sqlite://tansu.db (in
#                         data/) when this tansu has the libsql feature, else
#                         memory://tansu/
#   TANSU_BIN             the tansu binary (default: tansu on PATH, else ~/.cargo/bin/tansu)
#   TANSU_VERSION         the version `install` installs (default 0.6.0)
set -euo pipefail

DIR=${CRM_KAFKA_BROKER_DIR:-/tmp/crm-kafka-broker}
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
# dynostore: the memory engine; libsql: the sqlite engine (persistent, and the
# one whose ListOffsets answers are right: see docs/kafka.md).
TANSU_FEATURES=dynostore,libsql

say() { echo "kafka-broker: $*" >&2; }

tansu_bin() {
    if [[ -n ${TANSU_BIN:-} ]]; then
        [[ -x $TANSU_BIN ]] && { echo "$TANSU_BIN"; return 0; }
        return 1
    fi
    command -v tansu 2>/dev/null && return 0
    [[ -x $HOME/.cargo/bin/tansu ]] && { echo "$HOME/.cargo/bin/tansu"; return 0; }
    return 1
}

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() {
    [[ -f $DIR/pid ]] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null
}

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 40000))
        if ! accepts "$port"; then
            echo "$port"
            return 0
        fi
    done
    say "no free port found"
    return 1
}

# Starts tansu with one storage engine; 0 when it listens, 1 when it exited.
launch() {
    local bin=$1 port=$2 storage=$3 url="tcp://127.0.0.1:$2"
    mkdir -p "$DIR/data"
    (
        cd "$DIR/data"
        exec setsid "$bin" broker --storage-engine "$storage" \
            --listener-url "$url" --advertised-listener-url "$url" \
            </dev/null >>"$DIR/broker.log" 2>&1
    ) &
    local pid=$!
    echo "$pid" >"$DIR/pid"
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$DIR/pid"
            return 1
        fi
        if accepts "$port"; then
            echo "$port" >"$DIR/port"
            echo "127.0.0.1:$port" >"$DIR/brokers"
            echo "127.0.0.1:$port" >"$DIR/addr"
            echo "$storage" >"$DIR/storage"
            return 0
        fi
        sleep 0.1
    done
    say "tansu did not listen on $port within 30 s; log:"
    tail -n 30 "$DIR/broker.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$DIR/pid"
    exit 1
}

cmd_install() {
    if [[ -n ${TANSU_BIN:-} ]]; then
        say "TANSU_BIN is set ($TANSU_BIN): not installing"
        return 0
    fi
    # A no-op when this version with these features is installed already;
    # cargo reinstalls when the features differ.
    say "cargo install tansu $TANSU_VERSION (features $TANSU_FEATURES); a first build takes a while"
    cargo install tansu --locked --version "$TANSU_VERSION" --features "$TANSU_FEATURES"
}

cmd_start() {
    mkdir -p "$DIR"
    if running; then
        say "already running (pid $(cat "$DIR/pid"))"
        cat "$DIR/brokers"
        return 0
    fi
    local bin port
    if ! bin=$(tansu_bin); then
        say "no tansu binary: run scripts/kafka-broker.sh install (or set TANSU_BIN)"
        exit 1
    fi
    port=${1:-$(free_port)}
    if accepts "$port"; then
        say "port $port is taken"
        exit 1
    fi
    : >"$DIR/broker.log"
    if [[ -n ${CRM_KAFKA_STORAGE:-} ]]; then
        launch "$bin" "$port" "$CRM_KAFKA_STORAGE" || {
            say "tansu exited at start; log:"
            tail -n 30 "$DIR/broker.log" >&2
            exit 1
        }
    elif ! launch "$bin" "$port" "sqlite://tansu.db"; then
        if grep -q FeatureNotEnabled "$DIR/broker.log"; then
            say "this tansu has no sqlite engine (install with --features $TANSU_FEATURES); using memory://tansu/"
        fi
        launch "$bin" "$port" "memory://tansu/" || {
            say "tansu exited at start; log:"
            tail -n 30 "$DIR/broker.log" >&2
            exit 1
        }
    fi
    say "tansu pid $(cat "$DIR/pid") on 127.0.0.1:$port, storage $(cat "$DIR/storage"), log $DIR/broker.log"
    cat "$DIR/brokers"
}

cmd_stop() {
    if running; then
        local pid
        pid=$(cat "$DIR/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        say "stopped tansu (pid $pid)"
    else
        say "not running"
    fi
    rm -rf "$DIR/pid" "$DIR/port" "$DIR/brokers" "$DIR/addr" "$DIR/storage" "$DIR/data"
}

case ${1:-} in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) cmd_stop ;;
    status)
        if running; then
            say "running: pid $(cat "$DIR/pid"), $(cat "$DIR/brokers"), storage $(cat "$DIR/storage")"
        else
            say "not running"
            exit 1
        fi
        ;;
    env)
        running || { say "not running"; exit 1; }
        echo "export CRM_KAFKA_BROKERS=$(cat "$DIR/brokers")"
        ;;
    *)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
