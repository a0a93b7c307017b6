#!/usr/bin/env bash
# The datagate demo: a gateway on https://127.0.0.1:8443 (mutual TLS) in
# front of a demo provider on 127.0.0.1:8081 that serves scripts/demo-data,
# with the sample policy policy/sample.yaml.
#
#   scripts/run-demo.sh start     (what `make run` does after building)
#   scripts/run-demo.sh stop      (`make stop`)
#   scripts/run-demo.sh calls     run the sample calls again
#
# Needs build/modules/ngx_http_datagate_module.so and build/certs (make run
# builds both).  Runtime files: build/demo/ (nginx.conf, error.log,
# access.log, audit.log, datagate.secret).
# Environment: DG_GATEWAY_PORT (8443), DG_PROVIDER_PORT (8081),
# DG_POLICY (policy/sample.yaml), NGINX (/usr/sbin/nginx).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=$TOP/build/modules/ngx_http_datagate_module.so
CERTS=$TOP/build/certs
PREFIX=$TOP/build/demo
POLICY=${DG_POLICY:-$TOP/policy/sample.yaml}
GATEWAY_PORT=${DG_GATEWAY_PORT:-8443}
PROVIDER_PORT=${DG_PROVIDER_PORT:-8081}
TEMPLATE=$TOP/config/demo.nginx.conf.template
URL=https://127.0.0.1:$GATEWAY_PORT

die() { echo "run-demo: $*" >&2; exit 1; }

running_pid() {
    local pid
    [ -s "$PREFIX/nginx.pid" ] || return 1
    pid=$(cat "$PREFIX/nginx.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

stop() {
    local pid i
    if ! pid=$(running_pid); then
        echo "datagate demo is not running"
        return 0
    fi
    "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -s quit 2>/dev/null \
        || kill -QUIT "$pid"
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
    fi
    echo "datagate demo stopped"
}

port_busy() {
    # bash's /dev/tcp: a connection means something listens there
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# the user nginx workers run as: the distribution's www-data when it can
# read the runtime dir (the checkout may sit under an unreadable /root),
# otherwise root; nothing to choose when not started as root
worker_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if id www-data >/dev/null 2>&1 && command -v runuser >/dev/null \
       && runuser -u www-data -- test -r "$PREFIX/provider/person/1.json" \
       && runuser -u www-data -- test -w "$PREFIX/tmp"
    then
        echo "user www-data;"
    else
        echo "user root;  # the checkout is not readable by www-data"
    fi
}

start() {
    [ -f "$MODULE" ] || die "$MODULE missing: run 'make run' (or 'make module')"
    [ -f "$CERTS/.complete" ] || die "$CERTS missing: run 'make certs'"
    [ -f "$POLICY" ] || die "policy $POLICY missing"
    command -v curl >/dev/null || die "curl missing (make deps)"

    if running_pid >/dev/null; then
        stop
    fi
    for p in "$GATEWAY_PORT" "$PROVIDER_PORT"; do
        if port_busy "$p"; then
            die "port $p is in use (set DG_GATEWAY_PORT / DG_PROVIDER_PORT)"
        fi
    done

    mkdir -p "$PREFIX/tmp" "$PREFIX/logs"
    rm -rf "$PREFIX/provider"
    cp -r "$TOP/scripts/demo-data" "$PREFIX/provider"
    rm -f "$PREFIX/provider/generate.pl"
    chmod -R a+rX "$PREFIX"
    chmod 1777 "$PREFIX/tmp"

    # the key behind pseudonyms and Redis MACs: 32 random bytes, root only
    if [ ! -s "$PREFIX/datagate.secret" ]; then
        (umask 077 && head -c 32 /dev/urandom > "$PREFIX/datagate.secret")
    fi
    chmod 600 "$PREFIX/datagate.secret"

    local user
    user=$(worker_user)
    sed -e "s|@MODULE@|$MODULE|g" -e "s|@PREFIX@|$PREFIX|g" \
        -e "s|@CERTS@|$CERTS|g" -e "s|@POLICY@|$POLICY|g" \
        -e "s|@GATEWAY_PORT@|$GATEWAY_PORT|g" \
        -e "s|@PROVIDER_PORT@|$PROVIDER_PORT|g" \
        -e "s|@USER@|$user|g" "$TEMPLATE" > "$PREFIX/nginx.conf"

    if ! out=$("$NGINX" -t -p "$PREFIX/" -c "$PREFIX/nginx.conf" 2>&1); then
        echo "$out" >&2
        die "the demo configuration does not load"
    fi
    "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" \
        || die "nginx did not start; see $PREFIX/error.log"

    for i in $(seq 1 100); do
        port_busy "$GATEWAY_PORT" && port_busy "$PROVIDER_PORT" && break
        sleep 0.05
    done
    port_busy "$GATEWAY_PORT" \
        || die "the gateway does not answer; see $PREFIX/error.log"

    cat <<EOF
datagate demo running:
  gateway   $URL  (mutual TLS, policy ${POLICY#"$TOP"/})
  provider  http://127.0.0.1:$PROVIDER_PORT  (scripts/demo-data)
  logs      build/demo/error.log, access.log, audit.log
  stop it   make stop
EOF
    calls
}

# one sample call: the command line, then what came back
call() {
    local title=$1 cert=$2 path=$3
    shift 3
    local args=(--cacert build/certs/ca.crt)
    if [ "$cert" != "-" ]; then
        args+=(--cert "build/certs/$cert.crt" --key "build/certs/$cert.key")
    fi
    local h
    for h in "$@"; do
        args+=(-H "$h")
    done
    echo
    echo "### $title"
    printf '$ curl'
    for a in "${args[@]}"; do
        case $a in
        *[!A-Za-z0-9_./:=@-]*) printf " '%s'" "$a" ;;
        *)                     printf ' %s' "$a" ;;
        esac
    done
    printf ' %s\n' "$URL$path"
    local out lines
    out=$(curl -sS --max-time 10 -w '\n[HTTP %{http_code}]' "${args[@]}" \
          "$URL$path" 2>&1) || true
    lines=$(printf '%s\n' "$out" | wc -l)
    if [ "$lines" -gt 40 ]; then
        printf '%s\n' "$out" | head -n 36
        echo "  ... ($((lines - 37)) more lines)"
        printf '%s\n' "$out" | tail -n 1
    else
        printf '%s\n' "$out"
    fi
}

calls() {
    call "allowed: civil affairs checks a person for social assistance (grant with approval number: ID, phone, address masked, name revealed, ethnicity dropped)" \
         assistance /population/1 \
         "Data-Purpose: social-assistance" "Data-Approval: GXSJ-2024-0137"

    call "allowed: the HRSS portal lists insured persons (bank cards, IDs masked)" \
         hrss /social-security/ "Data-Purpose: employment-service"

    call "allowed: unconditional dataset, market supervision reads a registration" \
         market /enterprise/1 "Data-Purpose: market-regulation"

    call "allowed: housing registry, allow-list dataset (unlisted keys dropped)" \
         housing /realestate/1 "Data-Purpose: housing-security"

    call "denied: no Data-Purpose header -> purpose_required" \
         assistance /population/1

    call "denied: the grant demands its approval number -> approval_required" \
         assistance /population/1 "Data-Purpose: social-assistance"

    call "denied: a purpose the grant does not cover -> purpose_not_granted" \
         assistance /population/1 "Data-Purpose: market-regulation" \
         "Data-Approval: GXSJ-2024-0137"

    call "denied: the grant ran out at the end of 2023 -> grant_expired" \
         hrss /population/1 "Data-Purpose: employment-service"

    call "denied: clearance 1 below the dataset's level 2 -> level_exceeded" \
         housing /enterprise/1 "Data-Purpose: housing-security"

    call "denied: valid certificate, but no consumer in the policy -> unknown_consumer" \
         unknown /population/1 "Data-Purpose: social-assistance"

    call "denied: a dataset that is never shared -> dataset_not_shared" \
         assistance /tax/1 "Data-Purpose: social-assistance"

    call "refused: a certificate from a foreign CA -> client_certificate_required" \
         foreign /population/1 "Data-Purpose: social-assistance"

    call "the catalogue: what civil affairs may ask for (its datasets, purposes, windows, limits, field plans)" \
         assistance /datagate/catalogue

    call "statistics (JSON; ?format=prometheus for Prometheus text, ?format=html for the status page)" \
         assistance /datagate/status
    echo
    echo "audit trail: build/demo/audit.log"
    echo "  verify it: build/bin/datagate audit verify build/demo/audit.log"
}

case "${1:-start}" in
start)  start ;;
stop)   stop ;;
calls)  running_pid >/dev/null || die "not running: scripts/run-demo.sh start"
        calls ;;
*)      echo "usage: $0 start|stop|calls" >&2; exit 2 ;;
esac
