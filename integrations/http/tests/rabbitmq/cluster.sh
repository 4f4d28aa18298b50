#!/bin/sh
# cluster.sh - start/stop a throw-away two-node RabbitMQ 3.10.8 cluster (as root,
# loopback only) with MQTT + HTTP auth backend + management, for automated tests.
#
# Usage:
#   cluster.sh start DIR AUTH_URL_BASE [BASE_PORT]
#       DIR            working dir (created; may be 0700 root). Everything lives in it.
#       AUTH_URL_BASE  e.g. http://127.0.0.1:8000/auth  -> .../user .../vhost
#                      .../resource .../topic are used (HTTP POST, form-encoded).
#       BASE_PORT      optional; if absent a free block of 40 ports is chosen.
#     Port layout (B = BASE_PORT):
#       B+0  epmd (private epmd instance for this cluster, ERL_EPMD_PORT)
#       node N (N=1,2), o=(N-1)*10:
#         B+1+o AMQP   B+2+o Erlang dist   B+3+o MQTT   B+4+o management HTTP
#       B+30..B+39  CLI (rabbitmqctl) distribution ports
#     On success prints KEY=VALUE lines on stdout (also written to DIR/ports.env):
#       EPMD_PORT NODE1 NODE2 AMQP1 AMQP2 DIST1 DIST2 MQTT1 MQTT2 MGMT1 MGMT2
#       ADMIN_USER ADMIN_PASS
#     and exits 0. Progress/timings go to stderr. Exit != 0 on failure.
#   cluster.sh stop DIR
#       Stops both nodes (rabbitmqctl shutdown, kill -9 fallback) and the
#       private epmd. Leaves DIR in place (logs under DIR/nodeN/log).
#   cluster.sh ctl DIR N ARGS...
#       Run rabbitmqctl against node N with the right environment.
#   cluster.sh env DIR N
#       Print the environment (sh syntax) for node N.
#
# Internal admin user (management API): admin with a random password, tag administrator,
# no vhost permissions needed to list/close connections.
set -eu

# The package's own scripts (the wrappers on the PATH switch to the rabbitmq user).
SBIN=${RABBITMQ_SBIN:-$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin 2>/dev/null | tail -n 1)}
ADMIN_USER=admin
PLUGINS='[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_management].'

log() { echo "cluster.sh: $*" >&2; }
now_ms() { date +%s%3N; }

free_block() {
    # print a base port B such that B..B+39 are all free on 127.0.0.1
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    b = random.randrange(20000, 60000 - 40)
    ok = True
    socks = []
    for p in range(b, b + 40):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        socks.append(s)
        if not ok:
            break
    for s in socks:
        s.close()
    if ok:
        print(b)
        break
else:
    raise SystemExit("no free port block")
EOF
}

# node_env DIR N : export the environment for node N (ports from DIR/ports.env)
node_env() {
    _d=$1; _n=$2
    . "$_d/ports.env"
    _o=$(( (_n - 1) * 10 ))
    export HOME="$_d/home"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export ERL_EPMD_PORT="$EPMD_PORT"
    export RABBITMQ_NODENAME="rmq$_n@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$(( BASE + 1 + _o ))
    export RABBITMQ_DIST_PORT=$(( BASE + 2 + _o ))
    export RABBITMQ_MNESIA_BASE="$_d/node$_n/mnesia"
    export RABBITMQ_LOG_BASE="$_d/node$_n/log"
    export RABBITMQ_CONFIG_FILE="$_d/node$_n/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$_d/node$_n/advanced.config"
    export RABBITMQ_CONF_ENV_FILE="$_d/rabbitmq-env.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$_d/node$_n/enabled_plugins"
    export RABBITMQ_PID_FILE="$_d/node$_n/rabbitmq.pid"
    # Erlang distribution listener of the server on 127.0.0.1 only
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    # ... and of the CLI tools (they listen too while running)
    export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_CTL_DIST_PORT_MIN=$(( BASE + 30 ))
    export RABBITMQ_CTL_DIST_PORT_MAX=$(( BASE + 39 ))
}

ctl() { # ctl DIR N args...
    _cd=$1; _cn=$2; shift 2
    ( node_env "$_cd" "$_cn"; "$SBIN/rabbitmqctl" -n "rmq$_cn@localhost" "$@" )
}

await_node() { # await_node DIR N TIMEOUT_S
    _deadline=$(( $(date +%s) + $3 ))
    while :; do
        if ctl "$1" "$2" await_startup --timeout 60 >/dev/null 2>&1; then
            return 0
        fi
        if [ "$(date +%s)" -ge "$_deadline" ]; then
            log "node $2 did not start; see $1/node$2/log and $1/node$2/stdout.log"
            return 1
        fi
        if [ -f "$1/node$2/server.pid" ] && ! kill -0 "$(cat "$1/node$2/server.pid")" 2>/dev/null; then
            log "node $2 process died; see $1/node$2/stdout.log"
            tail -n 30 "$1/node$2/stdout.log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

start_node() { # start_node DIR N
    ( node_env "$1" "$2"
      cd "$1/node$2"
      # setsid: own session, so the caller's process group / terminal do not matter
      setsid "$SBIN/rabbitmq-server" >"$1/node$2/stdout.log" 2>&1 </dev/null &
      echo $! >"$1/node$2/server.pid" )
}

cmd_start() {
    DIR=$1; AUTH=$2; BASE=${3:-}
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    AUTH=${AUTH%/}
    [ -n "$BASE" ] || BASE=$(free_block)
    ADMIN_PASS=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    EPMD_PORT=$BASE
    cat >"$DIR/ports.env" <<EOF
BASE=$BASE
EPMD_PORT=$EPMD_PORT
NODE1=rmq1@localhost
NODE2=rmq2@localhost
AMQP1=$((BASE + 1))
DIST1=$((BASE + 2))
MQTT1=$((BASE + 3))
MGMT1=$((BASE + 4))
AMQP2=$((BASE + 11))
DIST2=$((BASE + 12))
MQTT2=$((BASE + 13))
MGMT2=$((BASE + 14))
ADMIN_USER=$ADMIN_USER
ADMIN_PASS=$ADMIN_PASS
EOF
    mkdir -p "$DIR/home"
    chmod 700 "$DIR/home"
    if [ ! -s "$DIR/home/.erlang.cookie" ]; then
        ( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/home/.erlang.cookie" )
        chmod 400 "$DIR/home/.erlang.cookie"
    fi
    : >"$DIR/rabbitmq-env.conf"   # do not source /etc/rabbitmq/rabbitmq-env.conf
    for n in 1 2; do
        o=$(( (n - 1) * 10 ))
        mkdir -p "$DIR/node$n/mnesia" "$DIR/node$n/log"
        echo "$PLUGINS" >"$DIR/node$n/enabled_plugins"
        echo "[]." >"$DIR/node$n/advanced.config"
        cat >"$DIR/node$n/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$((BASE + 1 + o))
mqtt.listeners.tcp.default = 127.0.0.1:$((BASE + 3 + o))
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
management.tcp.ip = 127.0.0.1
management.tcp.port = $((BASE + 4 + o))
auth_backends.1 = internal
auth_backends.2 = http
auth_http.http_method = post
auth_http.user_path = $AUTH/user
auth_http.vhost_path = $AUTH/vhost
auth_http.resource_path = $AUTH/resource
auth_http.topic_path = $AUTH/topic
loopback_users = none
# The management API lists a connection once its statistics are collected:
# the revocation of a key's connections waits for that (default 5000 ms).
collect_statistics_interval = 500
log.file.level = info
log.console = false
EOF
    done

    # private epmd for this cluster (loopback only)
    ERL_EPMD_ADDRESS=127.0.0.1 epmd -address 127.0.0.1 -port "$EPMD_PORT" -daemon

    t0=$(now_ms)
    start_node "$DIR" 1
    start_node "$DIR" 2
    await_node "$DIR" 1 120
    t1=$(now_ms); log "node1 up after $((t1 - t0)) ms"
    await_node "$DIR" 2 120
    t2=$(now_ms); log "node2 up after $((t2 - t0)) ms"

    ctl "$DIR" 2 stop_app >/dev/null
    ctl "$DIR" 2 join_cluster rmq1@localhost >/dev/null
    ctl "$DIR" 2 start_app >/dev/null
    await_node "$DIR" 2 60
    t3=$(now_ms); log "join took $((t3 - t2)) ms"

    ctl "$DIR" 1 add_user "$ADMIN_USER" "$ADMIN_PASS" >/dev/null
    ctl "$DIR" 1 set_user_tags "$ADMIN_USER" administrator >/dev/null
    log "total start $(( $(now_ms) - t0 )) ms"
    cat "$DIR/ports.env"
}

stop_node() { # stop_node DIR N
    t0=$(now_ms)
    ctl "$1" "$2" shutdown --timeout 30 >/dev/null 2>&1 || true
    if [ -f "$1/node$2/server.pid" ]; then
        p=$(cat "$1/node$2/server.pid")
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null || true
    fi
    if [ -f "$1/node$2/rabbitmq.pid" ]; then
        kill -9 "$(cat "$1/node$2/rabbitmq.pid")" 2>/dev/null || true
    fi
    log "node$2 stopped in $(( $(now_ms) - t0 )) ms"
}

cmd_stop() {
    DIR=$(cd "$1" && pwd)
    [ -f "$DIR/ports.env" ] || { log "no $DIR/ports.env"; return 1; }
    . "$DIR/ports.env"
    # Both at once: each takes several seconds.
    stop_node "$DIR" 2 &
    stop_node "$DIR" 1
    wait
    ERL_EPMD_PORT=$EPMD_PORT epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
}

case "${1:-}" in
    start) [ $# -ge 3 ] || { echo "usage: $0 start DIR AUTH_URL_BASE [BASE_PORT]" >&2; exit 2; }
           cmd_start "$2" "$3" "${4:-}" ;;
    stop)  [ $# -ge 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
           cmd_stop "$2" ;;
    ctl)   d=$(cd "$2" && pwd); n=$3; shift 3; ctl "$d" "$n" "$@" ;;
    env)   d=$(cd "$2" && pwd); ( node_env "$d" "$3"; env | grep -E '^(HOME|ERL_|RABBITMQ_)' | sed "s/^\([^=]*\)=\(.*\)$/export \1='\2'/" ) ;;
    *) sed -n '2,30p' "$0" >&2; exit 2 ;;
esac
