#!/usr/bin/env bash
# bench/compare/run.sh - the project and Keycloak side by side on this machine (issue 14).
#
#   bench/compare/run.sh                       # everything, default knobs: about 15 minutes
#   DURATION=5 ROUNDS=1 WARMUP=3 bench/compare/run.sh    # a quick trial, about 5.5 minutes
#
# 1. Keycloak: fetches keycloak-quarkus-dist (KC_VERSION, pinned; SHA-1 checked) from Maven Central
#    once into ~/.cache/idp-bench/keycloak/VERSION, finds a JDK 21+ under /usr/lib/jvm (or
#    JAVA_HOME), runs `kc.sh build --db=postgres` there once per build options;
# 2. services: a private PostgreSQL 15 + Redis from scripts/services (its Kafka is halted at
#    once: unused), or SERVICES=shared to reuse running ones; databases `idp_bench_compare` and
#    `keycloak` on the same PostgreSQL;
# 3. the project as deployed: granian idp.wsgi:application (WSGI), WORKERS (2) x THREADS (4), DEBUG=0, no access log, as the
#    Dockerfile serves it; and `manage.py grpcserver` (GRPC_PROCS x GRPC_THREADS) for TokenValidate;
#    clients, users and tokens from setup_project.py;
# 4. Keycloak in production mode: `kc.sh start --optimized --cache=local` (one node: nothing to
#    cluster with, and loopback only), plain HTTP on 127.0.0.1, heap KC_HEAP (-Xms64m -Xmx1g), the
#    same PostgreSQL; realm `bench` (refresh tokens single use, as
#    ours), clients `bench-cc` (client_credentials) and `bench-app` (code flow with PKCE S256 +
#    direct access), USERS users, all by kcadm.sh; tokens from mint_keycloak.py;
# 5. warms every path on both (WARMUP s each), then ROUNDS rounds of DURATION s per path,
#    alternating project, Keycloak, project, Keycloak...: wrk -t1 -c8 closed loop (bench.lua) for
#    client_credentials, introspection, refresh (chained single-use tokens) and userinfo;
#    codeflow.py (FLOW_C flows at a time) for the code flow; then, on their own, gRPC
#    TokenValidate (ghz) and REST validate (wrk). CPU split (server, PostgreSQL, Redis, the
#    project's gRPC server, load generator, other) from bench/token_validate/cpusplit.py; RSS/PSS
#    of the server after each run;
# 6. open loop at HALF of each system's own peak (HALF_DURATION s): oha -q RATE
#    --latency-correction (client_credentials, introspection, userinfo, REST validate),
#    chainloop.py (refresh), codeflow.py --rate (code flow), ghz --async --rps (gRPC);
#    With FLOOR=1, each round also measures the floors (floor.py) served the same way: a bare WSGI
#    app and a Django view without middleware under granian (WORKERS x THREADS) with introspection's
#    requests, a bare grpcio TokenValidate (GRPC_PROCS x GRPC_THREADS) and the same answer from a
#    bare gRPC server in Go (gofloor/, built with the machine's `go`; skipped without one) with
#    gRPC's, both gRPC floors also in the open loop at half of their own peaks; with cc in PATHS,
#    client_credentials with only the work the issue keeps (ccfloor.py: sign, and the project's one
#    statement for the token's row, audit record and event; and the same without the token's row)
#    with cc's requests;
# 7. the bcrypt floor (hashfloor.py; also after each code-flow round of the project, so that each
#    round is set against the check measured beside it), then summarize.py writes OUT/summary.md;
#    removes what it started (servers, databases, private services, temp dir; OUT is kept), also
#    on failure.
#
# Knobs (environment): DURATION (12), ROUNDS (3), WARMUP (8), HALF_DURATION (DURATION),
# CONNS (8), WRK_THREADS (1), FLOW_C (8), OHA_C (64), WORKERS (2), THREADS (4), IDLE_TIMEOUT (the Dockerfile's
# GRANIAN_BLOCKING_THREADS_IDLE_TIMEOUT), GRPC_PROCS (2), GRPC_THREADS (8),
# GHZ_C (32), GHZ_CONNS (8), POOL (1000), CHAINS (128), KC_LOGINS (50), USERS (5), CC_ALG (RS256;
# ES256: the project's bench-cc signs its tokens with ES256, Keycloak's stays on its RS256 default),
# PATHS ("cc introspect refresh userinfo codeflow"), VALIDATE (1), FLOOR (1), HALF (1), HASHFLOOR_S (5),
# SERVICES (private|shared), KC_VERSION (26.4.7), KC_HEAP, KC_CACHE (local; ispn = clustered),
# IDP_BENCH_CACHE (~/.cache/idp-bench), JAVA_HOME (a JDK 21+), GO (the Go toolchain for the Go floor),
# OUT (results dir; default a kept temp dir). Needs: the project's .venv, wrk, oha, ghz, psql, curl,
# a JDK 21+ (and go, optional). Loopback only.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
PY=$REPO/.venv/bin/python
GRANIAN=$REPO/.venv/bin/granian
CPUSPLIT=$REPO/bench/token_validate/cpusplit.py

DURATION=${DURATION:-12}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-8}
HALF_DURATION=${HALF_DURATION:-$DURATION}
CONNS=${CONNS:-8}
WRK_THREADS=${WRK_THREADS:-1}
FLOW_C=${FLOW_C:-8}
OHA_C=${OHA_C:-64}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-4}
# How long granian keeps an idle thread (and with it the thread's database connection): the Dockerfile's.
IDLE_TIMEOUT=${IDLE_TIMEOUT:-$(sed -n 's/.*GRANIAN_BLOCKING_THREADS_IDLE_TIMEOUT=\([0-9]*\).*/\1/p' "$REPO/Dockerfile")}
GRPC_PROCS=${GRPC_PROCS:-2}
GRPC_THREADS=${GRPC_THREADS:-8}
GHZ_C=${GHZ_C:-32}
GHZ_CONNS=${GHZ_CONNS:-8}
POOL=${POOL:-1000}
CHAINS=${CHAINS:-128}
CC_ALG=${CC_ALG:-RS256}
KC_LOGINS=${KC_LOGINS:-50}
USERS=${USERS:-5}
PATHS=${PATHS:-cc introspect refresh userinfo codeflow}
VALIDATE=${VALIDATE:-1}
FLOOR=${FLOOR:-1}
HALF=${HALF:-1}
HASHFLOOR_S=${HASHFLOOR_S:-5}
SERVICES=${SERVICES:-private}
KC_VERSION=${KC_VERSION:-26.4.7}
KC_HEAP=${KC_HEAP:--Xms64m -Xmx1g}
KC_CACHE=${KC_CACHE:-local}
CACHE_ROOT=${IDP_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idp-bench}
# SHA-1 of keycloak-quarkus-dist-26.4.7.tar.gz as Maven Central lists it; another KC_VERSION is
# checked against the .sha1 file Maven Central serves beside it.
KC_SHA1_26_4_7=29ec58859b8d0873e8978ae3eca02dc19e5b48de
MAVEN=https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist
REDIRECT_URI=https://rp.example.com/callback
DB_NAME=idp_bench_compare
KC_DB=keycloak

say() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------
OHA=${OHA:-$(command -v oha || true)}
[[ -z $OHA && -x $HOME/.cargo/bin/oha ]] && OHA=$HOME/.cargo/bin/oha
GHZ=${GHZ:-$(command -v ghz || true)}
[[ -z $GHZ && -x ${GOBIN:-$HOME/go/bin}/ghz ]] && GHZ=${GOBIN:-$HOME/go/bin}/ghz
[[ -n $OHA ]] || die "oha is missing (cargo install oha)"
[[ -n $GHZ ]] || die "ghz is missing (go install github.com/bojand/ghz/cmd/ghz@v0.93.0)"
GO=${GO:-$(command -v go || true)}
[[ -z $GO && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
for tool in wrk psql curl tar sha1sum; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y wrk postgresql-client curl)"
done
[[ -x $PY && -x $GRANIAN ]] || die "no $REPO/.venv with granian (pip install -r requirements.txt)"

java_major() { "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
JDK=
if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java && $(java_major "$JAVA_HOME") -ge 21 ]]; then
    JDK=$JAVA_HOME
else
    for d in $(printf '%s\n' /usr/lib/jvm/*/ | sort -V -r); do
        d=${d%/}
        if [[ -x $d/bin/java && ! -L $d ]] && (($(java_major "$d") >= 21)); then JDK=$d; break; fi
    done
fi
[[ -n $JDK ]] || die "Keycloak $KC_VERSION needs Java 21+: none under /usr/lib/jvm (apt-get install openjdk-21-jdk-headless? or set JAVA_HOME)"

WORK=$(mktemp -d /tmp/idp-compare.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT" "$WORK/tokens/project" "$WORK/tokens/keycloak"
TOK=$WORK/tokens
: >"$OUT/commands.txt"
STARTED_SERVICES=0
WEB_PID=
GRPC_PID=
FLOOR_PIDS=()
KC_PID=
ADMIN_URL=
T_START=$SECONDS

stop_pid() {  # TERM, wait up to $2 s (10), KILL; only our own children
    local pid=$1 grace=${2:-10}
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq $((grace * 5))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_keycloak() {
    [[ -n $KC_PID ]] || return 0
    local java
    java=$(cat "/proc/$KC_PID/task/$KC_PID/children" 2>/dev/null || true)
    stop_pid "$KC_PID" 30  # kc.sh passes TERM on to its java process
    for pid in $java; do stop_pid "$pid" 5; done
    say "stopped Keycloak ($KC_PID${java:+, java $java})"
    KC_PID=
}

cleanup() {
    local rc=$?
    set +e
    stop_keycloak
    [[ -n $GRPC_PID ]] && { stop_pid "$GRPC_PID"; say "stopped the gRPC server ($GRPC_PID)"; }
    [[ -n $WEB_PID ]] && { stop_pid "$WEB_PID"; say "stopped granian ($WEB_PID)"; }
    for pid in "${FLOOR_PIDS[@]}"; do stop_pid "$pid" 5; done
    if [[ -n $ADMIN_URL ]]; then
        psql "$ADMIN_URL" -qAt -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" \
            -c "DROP DATABASE IF EXISTS $KC_DB WITH (FORCE)" >/dev/null 2>&1 \
            && say "dropped databases $DB_NAME and $KC_DB"
    fi
    if [[ $STARTED_SERVICES == 1 ]]; then
        say "stopping the private services this run started"
        "$REPO/scripts/services" stop >/dev/null 2>&1  # IDP_SERVICES_DIR is our private dir
    fi
    for f in "$WORK"/grpc.log "$WORK"/web.log "$WORK"/keycloak.log "$WORK"/kcadm.log "$WORK"/kc-build.log; do
        [[ -f $f ]] && tail -c 60000 "$f" >"$OUT/$(basename "$f")"
    done
    find "$WORK" -mindepth 1 -maxdepth 1 ! -path "$OUT" -exec rm -rf {} + 2>/dev/null
    rmdir "$WORK" 2>/dev/null
    say "results kept in $OUT ($(((SECONDS - T_START) / 60)) min $(((SECONDS - T_START) % 60)) s)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR

# record CMD...: append the command, with this run's secrets replaced by names, to commands.txt.
record() {
    local line name
    line=$(printf '%q ' "$@")
    for name in CC_SECRET APP_SECRET KC_CC_SECRET KC_APP_SECRET CC_B64 APP_B64 KC_CC_B64 KC_APP_B64 PASSWORD KC_ADMIN_PW; do
        [[ -n ${!name:-} ]] && line=${line//${!name}/\$$name}
    done
    line=${line//$WORK/\$WORK}
    line=${line//$KC_HOME/\$KC_HOME}
    echo "$line" >>"$OUT/commands.txt"
}

# --- 1. Keycloak distribution ------------------------------------------------------------------
KC_DIR=$CACHE_ROOT/keycloak/$KC_VERSION
KC_HOME=$KC_DIR/keycloak-$KC_VERSION
mkdir -p "$KC_DIR"
exec 8>"$KC_DIR/.lock"
flock -w 900 8 || die "another run holds $KC_DIR/.lock"
if [[ ! -x $KC_HOME/bin/kc.sh ]]; then
    tarball=$KC_DIR/keycloak-quarkus-dist-$KC_VERSION.tar.gz
    if [[ ! -s $tarball ]]; then
        say "fetching keycloak-quarkus-dist $KC_VERSION from Maven Central into $KC_DIR"
        curl -fsSL --retry 3 -o "$tarball.part" "$MAVEN/$KC_VERSION/keycloak-quarkus-dist-$KC_VERSION.tar.gz"
        want=$KC_SHA1_26_4_7
        [[ $KC_VERSION == 26.4.7 ]] || want=$(curl -fsSL "$MAVEN/$KC_VERSION/keycloak-quarkus-dist-$KC_VERSION.tar.gz.sha1" | cut -c1-40)
        got=$(sha1sum "$tarball.part" | cut -c1-40)
        [[ $got == "$want" ]] || { rm -f "$tarball.part"; die "SHA-1 mismatch for the Keycloak tarball: $got, want $want"; }
        mv "$tarball.part" "$tarball"
    fi
    rm -rf "$KC_DIR/unpack"
    mkdir -p "$KC_DIR/unpack"
    tar xzf "$tarball" -C "$KC_DIR/unpack"
    mv "$KC_DIR/unpack/keycloak-$KC_VERSION" "$KC_HOME"
    rmdir "$KC_DIR/unpack"
fi
export JAVA_HOME=$JDK
BUILD_ARGS=(build --db=postgres)
if [[ $(cat "$KC_HOME/.bench-build" 2>/dev/null) != "${BUILD_ARGS[*]} $JDK" ]]; then
    say "kc.sh ${BUILD_ARGS[*]} (JDK $JDK; once per build options)"
    "$KC_HOME/bin/kc.sh" "${BUILD_ARGS[@]}" >"$WORK/kc-build.log" 2>&1 || die "kc.sh build failed: $(tail -20 "$WORK/kc-build.log")"
    echo "${BUILD_ARGS[*]} $JDK" >"$KC_HOME/.bench-build"
fi
record "$KC_HOME/bin/kc.sh" "${BUILD_ARGS[@]}"

# --- 2. services and databases -------------------------------------------------------------------
STATE=${IDP_SERVICES_DIR:-$REPO/.services}
if [[ $SERVICES == shared ]] && "$REPO/scripts/services" status >/dev/null 2>&1; then
    say "reusing the running services (their whole PostgreSQL counts as 'postgresql' CPU)"
else
    export IDP_SERVICES_DIR=$WORK/services
    STATE=$IDP_SERVICES_DIR
    STARTED_SERVICES=1
    say "starting a private PostgreSQL and Redis in $IDP_SERVICES_DIR (and halting its Kafka: unused)"
    "$REPO/scripts/services" start >/dev/null 2>"$WORK/services-start.log" \
        || die "scripts/services start failed: $(tail -5 "$WORK/services-start.log")"
    "$REPO/scripts/services" stop kafka >/dev/null 2>&1 || say "could not halt the private Kafka"
fi
eval "$("$REPO/scripts/services" env)"
unset KAFKA_BOOTSTRAP_SERVERS CELERY_BROKER_URL
REDIS_URL=$("$PY" -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p._replace(path="/12").geturl())' "$REDIS_URL")
PG_PID=$(head -1 "$(cat "$STATE/pg/base")/data/postmaster.pid" 2>/dev/null || true)
# (status exits 1 here when Kafka is halted: only its redis line is read)
REDIS_PID=$( ("$REPO/scripts/services" status 2>/dev/null || true) | awk '$1=="redis"{for(i=1;i<NF;i++) if($i=="pid") print $(i+1)}')
[[ -n $PG_PID ]] || say "WARNING: no PostgreSQL postmaster pid: its CPU will count as 'other'"

ADMIN_URL=$DATABASE_URL
read -r _ PGPORT PGUSER PGPASS < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(p.hostname, p.port, p.username, u.unquote(p.password or ""))' "$DATABASE_URL")
psql "$ADMIN_URL" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS $KC_DB WITH (FORCE)" -c "CREATE DATABASE $DB_NAME" -c "CREATE DATABASE $KC_DB" \
    >/dev/null || die "cannot create the databases"
PG_VERSION=$(psql "$ADMIN_URL" -qAt -c 'show server_version')
REDIS_VERSION=$(redis-cli -u "$REDIS_URL" info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
say "PostgreSQL $PG_VERSION (pid $PG_PID), Redis $REDIS_VERSION; databases $DB_NAME and $KC_DB"

read -r WPORT GPORT KPORT FWPORT FDPORT FGPORT FGOPORT FCPORT FNPORT < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(9)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
WURL=http://127.0.0.1:$WPORT
GTARGET=127.0.0.1:$GPORT
KURL=http://127.0.0.1:$KPORT
KREALM=$KURL/realms/bench

# --- 3. Keycloak: start it first (its first start creates its schema, a minute or so) -------------
KC_ADMIN_PW=$("$PY" -c 'import secrets; print("a" + secrets.token_urlsafe(18))')
KC_START=(start --optimized "--db-url=jdbc:postgresql://127.0.0.1:$PGPORT/$KC_DB" "--db-username=$PGUSER"
    --http-enabled=true --http-host=127.0.0.1 "--http-port=$KPORT" "--hostname=$KURL" "--cache=$KC_CACHE")
say "Keycloak $KC_VERSION: kc.sh ${KC_START[*]} (JAVA_OPTS_KC_HEAP=$KC_HEAP)"
# JDK 24+: jboss-threads resets thread locals through java.lang internals (it says so on stop).
KC_JAVA_APPEND=
(($(java_major "$JDK") >= 24)) && KC_JAVA_APPEND="--add-opens=java.base/java.lang=ALL-UNNAMED"
record env "JAVA_HOME=$JDK" "JAVA_OPTS_KC_HEAP=$KC_HEAP" "JAVA_OPTS_APPEND=$KC_JAVA_APPEND" KC_DB_PASSWORD=... KC_BOOTSTRAP_ADMIN_USERNAME=admin \
    KC_BOOTSTRAP_ADMIN_PASSWORD=... "$KC_HOME/bin/kc.sh" "${KC_START[@]}"
JAVA_OPTS_KC_HEAP=$KC_HEAP JAVA_OPTS_APPEND=$KC_JAVA_APPEND KC_DB_PASSWORD=$PGPASS KC_BOOTSTRAP_ADMIN_USERNAME=admin \
    KC_BOOTSTRAP_ADMIN_PASSWORD=$KC_ADMIN_PW "$KC_HOME/bin/kc.sh" "${KC_START[@]}" >"$WORK/keycloak.log" 2>&1 &
KC_PID=$!
T_KC=$SECONDS

# --- 4. the project ------------------------------------------------------------------------------
export DJANGO_SETTINGS_MODULE=idp.settings
export DEBUG=0
SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(60))')
IDP_KEY_ENCRYPTION_KEY=$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
export SECRET_KEY IDP_KEY_ENCRYPTION_KEY
export ALLOWED_HOSTS=127.0.0.1,localhost
export IDP_SSL_REDIRECT=0
export IDP_ISSUER=$WURL
export IDP_DATA_DIR=$WORK/data IDP_STATIC_ROOT=$WORK/static
export DATABASE_URL
DATABASE_URL=$("$PY" -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$ADMIN_URL" "$DB_NAME")
export REDIS_URL
# Tokens live an hour (Keycloak's realm gets the same), so none of the pools expires mid-run.
export IDP_ACCESS_TOKEN_TTL=3600
# The login rate limits (30/min per IP, 10/min per account) would cap the code flow from one
# address at 30 flows a minute: raised, still counted (the same Redis work per login).
export IDP_RL_LOGIN_PER_IP=10000000 IDP_RL_LOGIN_PER_ACCOUNT=10000000
# The token limits (60,000/min per client and per address, 1,000/s) would cap client_credentials
# from one client on one address: raised, still counted (one Redis round trip per request).
export IDP_RL_TOKEN_PER_CLIENT=10000000 IDP_RL_TOKEN_PER_IP=10000000
mkdir -p "$IDP_DATA_DIR" "$IDP_STATIC_ROOT"
PASSWORD=$("$PY" -c 'import secrets; print("Bench-" + secrets.token_urlsafe(15))')

(cd "$REPO" && "$PY" manage.py migrate --noinput -v0)
(cd "$REPO" && "$PY" manage.py collectstatic --noinput -v0) >/dev/null
(cd "$REPO" && "$PY" "$HERE/setup_project.py" --out "$TOK/project" --users "$USERS" "--password=$PASSWORD" \
    --pool "$POOL" --chains "$CHAINS" --cc-alg "$CC_ALG") | tee "$OUT/setup-project.txt" >&2
# shellcheck disable=SC1091
source "$TOK/project/clients.env"
CC_B64=$(printf '%s:%s' "$CC_ID" "$CC_SECRET" | base64 -w0)
APP_B64=$(printf '%s:%s' "$APP_ID" "$APP_SECRET" | base64 -w0)

# The Dockerfile's CMD; its ENV (workers, threads, their idle timeout, host, port) as arguments here.
WEB_ARGS=(--interface wsgi --respawn-failed-workers --host 127.0.0.1 --port "$WPORT"
    --workers "$WORKERS" --blocking-threads "$THREADS" --blocking-threads-idle-timeout "$IDLE_TIMEOUT" idp.wsgi:application)
record "$GRANIAN" "${WEB_ARGS[@]}"
(cd "$REPO" && exec "$GRANIAN" "${WEB_ARGS[@]}") >"$WORK/access.log" 2>"$WORK/web.log" &
WEB_PID=$!
GRPC_ARGS=(manage.py grpcserver --bind "$GTARGET" --processes "$GRPC_PROCS" --workers "$GRPC_THREADS")
record "$PY" "${GRPC_ARGS[@]}"
(cd "$REPO" && exec "$PY" "${GRPC_ARGS[@]}") >"$WORK/grpc.log" 2>&1 &
GRPC_PID=$!
for _ in $(seq 150); do
    up=$(grep -c listening "$WORK/grpc.log" 2>/dev/null || true)
    if [[ $up == "$GRPC_PROCS" ]] && curl -fsS -o /dev/null "$WURL/healthz" 2>/dev/null; then break; fi
    for pid in "$GRPC_PID" "$WEB_PID"; do
        kill -0 "$pid" 2>/dev/null || die "a server exited: $(tail -5 "$WORK/grpc.log" "$WORK/web.log" 2>/dev/null)"
    done
    sleep 0.2
done
say "project: granian ${WEB_ARGS[*]} (pid $WEB_PID); gRPC on $GTARGET (pid $GRPC_PID)"

declare -A FLOOR_PID=()
if [[ $FLOOR == 1 ]]; then
    for app in bare:$FWPORT django_app:$FDPORT; do
        args=(--interface wsgi --host 127.0.0.1 --port "${app#*:}" --workers "$WORKERS" --blocking-threads "$THREADS" --blocking-threads-idle-timeout "$IDLE_TIMEOUT"
            "floor:${app%%:*}")
        record "$GRANIAN" "${args[@]}"
        (cd "$HERE" && exec "$GRANIAN" "${args[@]}") >>"$WORK/floor.log" 2>&1 &
        FLOOR_PIDS+=($!)
    done
    FLOOR_PID[barewsgi]=${FLOOR_PIDS[0]} FLOOR_PID[baredjango]=${FLOOR_PIDS[1]}
    args=(grpc --bind "127.0.0.1:$FGPORT" --processes "$GRPC_PROCS" --workers "$GRPC_THREADS")
    record "$PY" "$HERE/floor.py" "${args[@]}"
    "$PY" "$HERE/floor.py" "${args[@]}" >>"$WORK/floor.log" 2>&1 &
    FLOOR_PIDS+=($!)
    FLOOR_PID[baregrpc]=$!
    for _ in $(seq 100); do
        if [[ $(grep -c listening "$WORK/floor.log") == "$GRPC_PROCS" ]] \
            && curl -fsS -o /dev/null -d token=x "http://127.0.0.1:$FWPORT/" \
            && curl -fsS -o /dev/null -d token=x "http://127.0.0.1:$FDPORT/"; then break; fi
        sleep 0.2
    done 2>/dev/null
    curl -fsS -d token=x "http://127.0.0.1:$FDPORT/" | grep -q active || die "the floors did not start: $(tail -5 "$WORK/floor.log")"
    say "floors: bare WSGI on $FWPORT, Django on $FDPORT, bare gRPC on $FGPORT"
    # The same bare answer from a gRPC server in Go (gofloor/): what a server in another language
    # gives on this machine, for the gRPC lines. Skipped, with a word, where Go is not installed.
    if [[ -n $GO ]] && (cd "$HERE/gofloor" && "$GO" build -o "$WORK/gofloor" .) >>"$WORK/floor.log" 2>&1; then
        answer=$("$PY" "$HERE/floor.py" answer-hex)  # the bare grpcio floor's very answer
        record "$WORK/gofloor" --bind "127.0.0.1:$FGOPORT" --answer "$answer"
        "$WORK/gofloor" --bind "127.0.0.1:$FGOPORT" --answer "$answer" >>"$WORK/floor.log" 2>&1 &
        FLOOR_PIDS+=($!)
        FLOOR_PID[gogrpc]=$!
        say "floors: bare gRPC in Go on $FGOPORT"
    else
        say "floors: no Go toolchain (or its build failed: $WORK/floor.log), so no Go gRPC floor"
    fi
    # client_credentials with only the work the issue keeps (ccfloor.py): sign, and the project's
    # one statement for the token's row, audit record and event; and the same without the row.
    if [[ " $PATHS " == *" cc "* ]]; then
        for floor in ccfloor:$FCPORT:1 ccfloornorow:$FNPORT:0; do
            IFS=: read -r name port row <<<"$floor"
            args=(--interface wsgi --host 127.0.0.1 --port "$port" --workers "$WORKERS" --blocking-threads "$THREADS" --blocking-threads-idle-timeout "$IDLE_TIMEOUT" ccfloor:app)
            record env FLOOR_CC_ROW="$row" FLOOR_CC_CLIENT="\$CC_ID:\$CC_SECRET" "$GRANIAN" "${args[@]}"
            (cd "$HERE" && FLOOR_CC_ROW=$row FLOOR_CC_CLIENT="$CC_ID:$CC_SECRET" exec "$GRANIAN" "${args[@]}") \
                >>"$WORK/floor.log" 2>&1 &
            FLOOR_PIDS+=($!)
            FLOOR_PID[$name]=$!
            for _ in $(seq 100); do
                curl -fsS -o /dev/null -H "Authorization: Basic $CC_B64" -d grant_type=client_credentials \
                    "http://127.0.0.1:$port/" 2>/dev/null && break
                sleep 0.2
            done
            curl -fsS -H "Authorization: Basic $CC_B64" -d grant_type=client_credentials "http://127.0.0.1:$port/" \
                | grep -q '"access_token"' || die "the $name floor did not start: $(tail -5 "$WORK/floor.log")"
        done
        say "floors: client_credentials (sign and the token's statement) on $FCPORT, without the token's row on $FNPORT"
    fi
fi

# --- 5. Keycloak: wait, then the realm, clients and users by kcadm.sh -----------------------------
for _ in $(seq 600); do
    curl -fsS -o /dev/null "$KURL/realms/master/.well-known/openid-configuration" 2>/dev/null && break
    kill -0 "$KC_PID" 2>/dev/null || die "Keycloak exited: $(tail -30 "$WORK/keycloak.log")"
    sleep 0.5
done
curl -fsS -o /dev/null "$KURL/realms/master/.well-known/openid-configuration" || die "Keycloak did not come up in 300 s"
say "Keycloak answers after $((SECONDS - T_KC)) s (pid $KC_PID)"

KC_CC_SECRET=$("$PY" -c 'import secrets; print("s" + secrets.token_urlsafe(32))')
KC_APP_SECRET=$("$PY" -c 'import secrets; print("s" + secrets.token_urlsafe(32))')
kcadm() {
    record "$KC_HOME/bin/kcadm.sh" "$@"
    "$KC_HOME/bin/kcadm.sh" "$@" --config "$WORK/kcadm.config" >>"$WORK/kcadm.log" 2>&1 \
        || die "kcadm.sh $1 $2 failed: $(tail -5 "$WORK/kcadm.log")"
}
kcadm config credentials --server "$KURL" --realm master --user admin --password "$KC_ADMIN_PW"
# Refresh tokens single use (revokeRefreshToken, no reuse), as the project's are; access tokens and
# sessions outlive the run (an expired pool token would be refused cheaply).
kcadm create realms -s realm=bench -s enabled=true -s accessTokenLifespan=3600 -s ssoSessionIdleTimeout=7200 \
    -s ssoSessionMaxLifespan=36000 -s revokeRefreshToken=true -s refreshTokenMaxReuse=0
kcadm create clients -r bench -s clientId=bench-cc -s enabled=true -s publicClient=false \
    -s clientAuthenticatorType=client-secret -s "secret=$KC_CC_SECRET" -s serviceAccountsEnabled=true \
    -s standardFlowEnabled=false -s directAccessGrantsEnabled=false
kcadm create clients -r bench -s clientId=bench-app -s enabled=true -s publicClient=false \
    -s clientAuthenticatorType=client-secret -s "secret=$KC_APP_SECRET" -s standardFlowEnabled=true \
    -s directAccessGrantsEnabled=true -s "redirectUris=[\"$REDIRECT_URI\"]" \
    -s 'attributes."pkce.code.challenge.method"=S256'
for i in $(seq 0 $((USERS - 1))); do
    kcadm create users -r bench -s "username=bench-user-$i" -s enabled=true -s "email=bench-user-$i@example.com" \
        -s emailVerified=true -s firstName=Bench -s "lastName=User$i" \
        -s "credentials=[{\"type\":\"password\",\"value\":\"$PASSWORD\",\"temporary\":false}]"
done
KC_CC_B64=$(printf '%s:%s' bench-cc "$KC_CC_SECRET" | base64 -w0)
KC_APP_B64=$(printf '%s:%s' bench-app "$KC_APP_SECRET" | base64 -w0)
cp "$TOK/project/users.txt" "$TOK/keycloak/users.txt"
"$PY" "$HERE/mint_keycloak.py" --realm-url "$KREALM" --users "$TOK/keycloak/users.txt" --app-id bench-app \
    "--app-secret=$KC_APP_SECRET" --cc-id bench-cc "--cc-secret=$KC_CC_SECRET" --pool "$POOL" \
    --logins "$KC_LOGINS" --chains "$CHAINS" --out "$TOK/keycloak" | tee "$OUT/setup-keycloak.txt" >&2
for sys in project keycloak; do sed 's/^/token=/' "$TOK/$sys/pool.txt" >"$TOK/$sys/introspect.bodies"; done

# --- per-system endpoints ----------------------------------------------------------------------
declare -A TOKEN_URL=([project]=$WURL/o/token/ [keycloak]=$KREALM/protocol/openid-connect/token)
declare -A INTROSPECT_URL=([project]=$WURL/o/introspect/ [keycloak]=$KREALM/protocol/openid-connect/token/introspect)
declare -A USERINFO_URL=([project]=$WURL/o/userinfo/ [keycloak]=$KREALM/protocol/openid-connect/userinfo)
declare -A BASE=([project]=$WURL [keycloak]=$KREALM)
declare -A CC_AUTH=([project]="Basic $CC_B64" [keycloak]="Basic $KC_CC_B64")
declare -A APP_AUTH=([project]="Basic $APP_B64" [keycloak]="Basic $KC_APP_B64")
declare -A APP_CRED=([project]="$APP_ID $APP_SECRET" [keycloak]="bench-app $KC_APP_SECRET")
declare -A SERVER=([project]=$WEB_PID [keycloak]=$KC_PID)

# Smoke: every path answers on both before anything is measured.
for sys in project keycloak; do
    tok=$(head -1 "$TOK/$sys/pool.txt")
    curl -fsS -H "Authorization: ${CC_AUTH[$sys]}" -d grant_type=client_credentials "${TOKEN_URL[$sys]}" | grep -q '"access_token"' \
        || die "$sys: client_credentials failed"
    curl -fsS -H "Authorization: ${CC_AUTH[$sys]}" --data-urlencode "token=$tok" "${INTROSPECT_URL[$sys]}" \
        | grep -Eq '"active": ?true' || die "$sys: introspection of a pool token is not active"
    curl -fsS -H "Authorization: Bearer $tok" "${USERINFO_URL[$sys]}" | grep -q '"sub"' || die "$sys: userinfo failed"
    read -r cid csec <<<"${APP_CRED[$sys]}"
    "$PY" "$HERE/codeflow.py" --system "$sys" --base "${BASE[$sys]}" --client-id "$cid" "--client-secret=$csec" \
        --users "$TOK/$sys/users.txt" --concurrency 1 --duration 0.1 | tee -a "$OUT/smoke.txt" >&2
    grep -q "1 flows ok, 0 failed" <(tail -1 "$OUT/smoke.txt") || die "$sys: the code flow failed"
done
say "smoke: client_credentials, introspection, userinfo and the code flow answer on both"

# --- measurement helpers -----------------------------------------------------------------------
# gen PATH SYS DUR OUTBASE [RATE]: the load generator for one path (closed loop without RATE).
gen() {
    local path=$1 sys=$2 dur=$3 outbase=$4 rate=${5:-} cid csec
    read -r cid csec <<<"${APP_CRED[$sys]}"
    local wrk=(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${dur}s" -s "$HERE/bench.lua")
    local oha=("$OHA" --no-tui -z "${dur}s" -q "$rate" --latency-correction -c "$OHA_C" --output-format json)
    case $path:${rate:+open} in
        cc:)
            record env BENCH_AUTH="${CC_AUTH[$sys]}" "${wrk[@]}" "${TOKEN_URL[$sys]}" -- fixed grant_type=client_credentials
            BENCH_AUTH=${CC_AUTH[$sys]} "${wrk[@]}" "${TOKEN_URL[$sys]}" -- fixed grant_type=client_credentials >"$outbase.wrk.txt" ;;
        introspect:)
            record env BENCH_AUTH="${CC_AUTH[$sys]}" "${wrk[@]}" "${INTROSPECT_URL[$sys]}" -- pool "$TOK/$sys/pool.txt" token=
            BENCH_AUTH=${CC_AUTH[$sys]} "${wrk[@]}" "${INTROSPECT_URL[$sys]}" -- pool "$TOK/$sys/pool.txt" token= >"$outbase.wrk.txt" ;;
        userinfo:)
            record "${wrk[@]}" "${USERINFO_URL[$sys]}" -- bearer "$TOK/$sys/pool.txt"
            "${wrk[@]}" "${USERINFO_URL[$sys]}" -- bearer "$TOK/$sys/pool.txt" >"$outbase.wrk.txt" ;;
        refresh:)
            record env BENCH_AUTH="${APP_AUTH[$sys]}" BENCH_WANT_RESPONSE=1 BENCH_THREADS="$WRK_THREADS" \
                BENCH_REFRESH_OUT="$TOK/$sys/refresh.next" "${wrk[@]}" "${TOKEN_URL[$sys]}" -- refresh "$TOK/$sys/refresh.txt"
            BENCH_AUTH=${APP_AUTH[$sys]} BENCH_WANT_RESPONSE=1 BENCH_THREADS=$WRK_THREADS \
                BENCH_REFRESH_OUT=$TOK/$sys/refresh.next "${wrk[@]}" "${TOKEN_URL[$sys]}" -- refresh "$TOK/$sys/refresh.txt" \
                >"$outbase.wrk.txt"
            mv "$TOK/$sys/refresh.next" "$TOK/$sys/refresh.txt"
            echo "chains left: $(wc -l <"$TOK/$sys/refresh.txt")" >>"$outbase.wrk.txt" ;;
        codeflow:*)
            local mode=(--concurrency "$FLOW_C")
            [[ -n $rate ]] && mode=(--rate "$rate")
            record "$PY" "$HERE/codeflow.py" --system "$sys" --base "${BASE[$sys]}" --client-id "$cid" \
                "--client-secret=$csec" --users "$TOK/$sys/users.txt" "${mode[@]}" --duration "$dur" --json "$outbase.flow.json"
            "$PY" "$HERE/codeflow.py" --system "$sys" --base "${BASE[$sys]}" --client-id "$cid" "--client-secret=$csec" \
                --users "$TOK/$sys/users.txt" "${mode[@]}" --duration "$dur" --json "$outbase.flow.json" >"$outbase.flow.txt" ;;
        cc:open)
            record "${oha[@]}" -m POST -H "Authorization: ${CC_AUTH[$sys]}" -T application/x-www-form-urlencoded \
                -d grant_type=client_credentials "${TOKEN_URL[$sys]}"
            "${oha[@]}" -m POST -H "Authorization: ${CC_AUTH[$sys]}" -T application/x-www-form-urlencoded \
                -d grant_type=client_credentials "${TOKEN_URL[$sys]}" >"$outbase.oha.json" ;;
        introspect:open)
            record "${oha[@]}" -m POST -H "Authorization: ${CC_AUTH[$sys]}" -T application/x-www-form-urlencoded \
                -Z "$TOK/$sys/introspect.bodies" "${INTROSPECT_URL[$sys]}"
            "${oha[@]}" -m POST -H "Authorization: ${CC_AUTH[$sys]}" -T application/x-www-form-urlencoded \
                -Z "$TOK/$sys/introspect.bodies" "${INTROSPECT_URL[$sys]}" >"$outbase.oha.json" ;;
        userinfo:open)
            # oha sends one header set: one token of the pool, every time (both servers alike).
            record "${oha[@]}" -H "Authorization: Bearer \$(head -1 $TOK/$sys/pool.txt)" "${USERINFO_URL[$sys]}"
            "${oha[@]}" -H "Authorization: Bearer $(head -1 "$TOK/$sys/pool.txt")" "${USERINFO_URL[$sys]}" \
                >"$outbase.oha.json" ;;
        refresh:open)
            record "$PY" "$HERE/chainloop.py" --url "${TOKEN_URL[$sys]}" --auth "${APP_AUTH[$sys]}" \
                --chains "$TOK/$sys/refresh.txt" --chains-out "$TOK/$sys/refresh.next" --rate "$rate" \
                --duration "$dur" --json "$outbase.chain.json"
            "$PY" "$HERE/chainloop.py" --url "${TOKEN_URL[$sys]}" --auth "${APP_AUTH[$sys]}" \
                --chains "$TOK/$sys/refresh.txt" --chains-out "$TOK/$sys/refresh.next" --rate "$rate" \
                --duration "$dur" --json "$outbase.chain.json" >"$outbase.chain.txt"
            mv "$TOK/$sys/refresh.next" "$TOK/$sys/refresh.txt" ;;
        grpc:* | baregrpc:* | gogrpc:*)
            local g=("$GHZ" --insecure --proto "$REPO/proto/auth.proto" --call AuthService.TokenValidate
                --data-file "$TOK/project/pool.json" --connections "$GHZ_CONNS" -z "${dur}s" -O json)
            if [[ -n $rate ]]; then g+=(--async --rps "$rate" -c "$GHZ_CONNS"); else g+=(-c "$GHZ_C"); fi
            local target=$GTARGET
            [[ $path == baregrpc ]] && target=127.0.0.1:$FGPORT
            [[ $path == gogrpc ]] && target=127.0.0.1:$FGOPORT
            record "${g[@]}" "$target"
            "${g[@]}" "$target" >"$outbase.ghz.json" 2>"$outbase.ghz.err"
            # ghz's JSON lists every call and repeats the token pool (megabytes): keep the summary.
            "$PY" "$HERE/summarize.py" --trim-ghz "$outbase.ghz.json" ;;
        ccfloor: | ccfloornorow:)
            local port=$FCPORT
            [[ $path == ccfloornorow ]] && port=$FNPORT
            record env BENCH_AUTH="${CC_AUTH[project]}" "${wrk[@]}" "http://127.0.0.1:$port/o/token/" -- fixed grant_type=client_credentials
            BENCH_AUTH=${CC_AUTH[project]} "${wrk[@]}" "http://127.0.0.1:$port/o/token/" -- fixed grant_type=client_credentials \
                >"$outbase.wrk.txt" ;;
        barewsgi: | baredjango:)
            local port=$FWPORT
            [[ $path == baredjango ]] && port=$FDPORT
            record env BENCH_AUTH="${CC_AUTH[project]}" "${wrk[@]}" "http://127.0.0.1:$port/o/introspect/" -- pool "$TOK/project/pool.txt" token=
            BENCH_AUTH=${CC_AUTH[project]} "${wrk[@]}" "http://127.0.0.1:$port/o/introspect/" -- pool "$TOK/project/pool.txt" token= \
                >"$outbase.wrk.txt" ;;
        restvalidate:)
            local v=(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${dur}s" -s "$REPO/bench/token_validate/validate.lua"
                "$WURL/api/v1/auth/validate" -- "$TOK/project/pool.txt")
            record "${v[@]}"
            "${v[@]}" >"$outbase.wrk.txt" ;;
        restvalidate:open)
            record "${oha[@]}" -m POST -T application/json -Z "$TOK/project/pool.bodies" "$WURL/api/v1/auth/validate"
            "${oha[@]}" -m POST -T application/json -Z "$TOK/project/pool.bodies" "$WURL/api/v1/auth/validate" \
                >"$outbase.oha.json" ;;
        *) die "unknown path $path" ;;
    esac
}

# measure KEY PATH SYS DUR [RATE]: one run with the CPU split over its middle and the server's
# memory after it.
measure() {
    local key=$1 path=$2 sys=$3 dur=$4 rate=${5:-} server window
    server=${SERVER[$sys]}
    [[ $path == grpc ]] && server=$GRPC_PID
    [[ -n ${FLOOR_PID[$path]:-} ]] && server=${FLOOR_PID[$path]}
    window=$(awk -v d="$dur" 'BEGIN { w = (d > 8 ? d - 4 : d - 1); print (w > 1 ? w : 1) }')
    gen "$path" "$sys" "$dur" "$OUT/$key" "$rate" &
    local genpid=$!
    # The project's gRPC server is a group of its own in the other paths' runs: a revocation (each
    # refresh revokes the access token it replaces) reaches its processes by Redis pub/sub.
    local grpc=()
    [[ $path != grpc ]] && grpc=(--group "grpc=$GRPC_PID")
    "$PY" "$CPUSPLIT" --delay "$(awk -v d="$dur" 'BEGIN { print (d > 8 ? 2 : 0.5) }')" --window "$window" \
        --group "server=$server" --split server ${PG_PID:+--group "postgresql=$PG_PID"} ${REDIS_PID:+--group "redis=$REDIS_PID"} \
        "${grpc[@]}" --group "generator=$genpid" --json "$OUT/cpu-$key.json" >"$OUT/cpu-$key.txt" &
    local c=$!
    wait "$genpid" || say "$key: the load generator exited non-zero"
    wait "$c" || true
    "$PY" "$HERE/procmem.py" "$server" --json "$OUT/mem-$key.json" >/dev/null || true
    [[ -n $rate ]] && echo "$rate" >"$OUT/$key.rate"
    say "$key${rate:+ at $rate/s}: $("$PY" "$HERE/summarize.py" "$OUT" --one "$key")"
    sleep 1
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
    echo "project: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) ($(git -C "$REPO" log -1 --format=%cd --date=short 2>/dev/null)); $("$PY" --version); granian $("$GRANIAN" --version 2>&1 | grep -o "[0-9][0-9.]*" | head -1); WSGI, $WORKERS workers x $THREADS threads (kept ${IDLE_TIMEOUT}s idle), DEBUG=0; gRPC $GRPC_PROCS x $GRPC_THREADS"
    echo "keycloak: $(cat "$KC_HOME/version.txt") (keycloak-quarkus-dist from Maven Central), $("$JDK/bin/java" -version 2>&1 | head -1), JAVA_OPTS_KC_HEAP=$KC_HEAP, build --db=postgres, start --cache=$KC_CACHE"
    echo "services: PostgreSQL $PG_VERSION, Redis $REDIS_VERSION ($([[ $STARTED_SERVICES == 1 ]] && echo private || echo shared), scripts/services)"
    echo "tools: $( (wrk -v 2>&1 || true) | head -1 | awk '{print $1, $2}'), $("$OHA" --version), ghz $("$GHZ" --version 2>&1 | head -1)"
    echo "knobs: CC_ALG=$CC_ALG DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP HALF_DURATION=$HALF_DURATION CONNS=$CONNS WRK_THREADS=$WRK_THREADS FLOW_C=$FLOW_C OHA_C=$OHA_C GHZ_C=$GHZ_C GHZ_CONNS=$GHZ_CONNS POOL=$POOL CHAINS=$CHAINS USERS=$USERS"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2

# --- 6. warm-up, rounds, open loop -------------------------------------------------------------
say "warm-up: ${WARMUP}s per path and system"
for path in $PATHS; do
    for sys in project keycloak; do gen "$path" "$sys" "$WARMUP" "$OUT/warmup-$path-$sys"; done
done
if [[ $VALIDATE == 1 ]]; then
    gen grpc project "$WARMUP" "$OUT/warmup-grpc-project"
    gen restvalidate project "$WARMUP" "$OUT/warmup-restvalidate-project"
fi
FLOORS=()
[[ $FLOOR == 1 ]] && FLOORS=(barewsgi baredjango baregrpc)
[[ -n ${FLOOR_PID[gogrpc]:-} ]] && FLOORS+=(gogrpc)
[[ -n ${FLOOR_PID[ccfloor]:-} ]] && FLOORS+=(ccfloor ccfloornorow)
for path in "${FLOORS[@]}"; do gen "$path" project "$WARMUP" "$OUT/warmup-$path-project"; done

# The bcrypt floor (hashfloor.py) into $1: after each code-flow round of the project and once at
# the end. The machine's speed drifts by a few per cent within a run; a round is set against the
# check measured beside it.
hashfloor() {
    record "$PY" "$HERE/hashfloor.py" --username bench-user-0 "--password=$PASSWORD" --seconds "$HASHFLOOR_S"
    (cd "$REPO" && "$PY" "$HERE/hashfloor.py" --username bench-user-0 "--password=$PASSWORD" \
        --seconds "$HASHFLOOR_S" --json "$1")
}

for r in $(seq "$ROUNDS"); do
    say "round $r of $ROUNDS"
    for path in $PATHS; do
        for sys in project keycloak; do
            measure "r$r-$path-$sys" "$path" "$sys" "$DURATION"
            if [[ $path == codeflow && $sys == project && $HASHFLOOR_S != 0 ]]; then
                say "r$r: $(hashfloor "$OUT/hashfloor-r$r.json")"
            fi
        done
    done
    if [[ $VALIDATE == 1 ]]; then
        measure "r$r-grpc-project" grpc project "$DURATION"
        measure "r$r-restvalidate-project" restvalidate project "$DURATION"
    fi
    for path in "${FLOORS[@]}"; do measure "r$r-$path-project" "$path" project "$DURATION"; done
done

if [[ $HALF == 1 ]]; then
    say "open loop at half of each system's own peak"
    all=()
    for path in $PATHS; do all+=("$path:project" "$path:keycloak"); done
    [[ $VALIDATE == 1 ]] && all+=(grpc:project restvalidate:project)
    # The gRPC floors at half of their own peaks: what the gRPC latency line asks of a server.
    for path in "${FLOORS[@]}"; do [[ $path == *grpc ]] && all+=("$path:project"); done
    for ps in "${all[@]}"; do
        path=${ps%%:*} sys=${ps#*:}
        rate=$("$PY" "$HERE/summarize.py" "$OUT" --half "$path-$sys")
        if [[ $rate == 0 ]]; then say "half-$path-$sys: no peak measured, skipped"; continue; fi
        measure "half-$path-$sys" "$path" "$sys" "$HALF_DURATION" "$rate"
    done
fi

# --- 7. the password hash floor, summary -------------------------------------------------------
if [[ " $PATHS " == *" codeflow "* && $HASHFLOOR_S != 0 ]]; then
    hashfloor "$OUT/hashfloor.json" | tee "$OUT/hashfloor.txt" >&2
fi
for sys in project keycloak; do
    "$PY" "$HERE/procmem.py" "${SERVER[$sys]}" --json "$OUT/mem-end-$sys.json" >/dev/null || true
done
"$PY" "$HERE/procmem.py" "$GRPC_PID" --json "$OUT/mem-end-grpc.json" >/dev/null || true
"$PY" "$HERE/summarize.py" "$OUT" | tee "$OUT/summary.md"
