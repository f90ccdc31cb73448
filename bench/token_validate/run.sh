#!/usr/bin/env bash
# bench/token_validate/run.sh - TokenValidate calls/s and latency (gRPC, and REST beside it).
#
#   bench/token_validate/run.sh              # the whole benchmark, about 3.5 minutes
#   PROFILE=1 bench/token_validate/run.sh    # plus py-spy on a gRPC server process and the
#                                            # in-process cProfile (about 4.5 minutes)
#   WHATIF=1 bench/token_validate/run.sh     # instead of the standard runs: the "Where to gain"
#                                            # variants (whatif_server.py), about 4 minutes
#
# 1. reuses the running scripts/services (PostgreSQL, Redis), or starts a private set (and then
#    stops it); SERVICES=private always uses a private set;
# 2. creates a throw-away database `idp_bench_validate`, migrates it, creates 10 users and the
#    tokens (mint.py): a pool of 1,000 issued by the login code path (round-robin: the signature
#    LRU hits, as when services re-validate the same users' tokens) and 24,000 distinct ones
#    (cycled: more than the 4096-entry LRU of every server process, so every call verifies RSA);
# 3. starts `manage.py grpcserver --processes GRPC_PROCS`: that many processes with GRPC_THREADS threads each on ONE
#    port (the server sets SO_REUSEPORT; the kernel spreads connections over the processes),
#    and gunicorn as the Dockerfile runs it (WEB_WORKERS sync workers, access log on);
# 4. smoke-checks both doors (gRPC Login, REST login, validation of samples, a tampered token),
#    warms up, then measures, each for DURATION s, with the CPU split from cpusplit.py:
#      gRPC max    ghz closed loop, GHZ_C workers on GHZ_CONNS connections, pool, then distinct;
#      gRPC rate   ghz --async --rps RATE (open loop: a call is sent on its tick whether or not
#                  earlier calls have answered, so no coordinated omission), pool, then distinct;
#      REST max    wrk closed loop, WRK_C connections, pool, then distinct;
#      REST rate   oha -q RATE --latency-correction (latency from each request's due time), pool;
#                  if that did not hold (under 97% of RATE answered, or p99 >= 100 ms), once
#                  more at 70% of the REST closed-loop maximum: what it sustains;
#    then re-checks that the tokens are still valid (a refused token is cheap and would flatter);
# 5. prints a summary (OUT/summary.txt) and removes what it made: servers, the database, the temp
#    dir (OUT is kept), and the services if it started them.
#
# Knobs (environment): GRPC_PROCS (2), GRPC_THREADS (8), WEB_WORKERS (4), DURATION (15),
# WARMUP (5), RATE (1000), GHZ_C (32), GHZ_CONNS (8), WRK_C (16), OHA_C (64), POOL (1000),
# DISTINCT (24000), REDIS_DB (11), SERVICES (shared|private), PROFILE (0), WHATIF (0),
# WHATIF_DURATION (10), PYSPY (py-spy path), OUT (results dir, default a kept temp dir).
# Needs: the project's .venv, psql, curl, wrk (apt-get install -y wrk), oha (cargo install oha),
# ghz (installed here with `go install github.com/bojand/ghz/cmd/ghz@v0.93.0` if missing and Go
# is present). Loopback only: every server binds 127.0.0.1 on a free port.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
PY=$REPO/.venv/bin/python
GUNICORN=$REPO/.venv/bin/gunicorn

GRPC_PROCS=${GRPC_PROCS:-2}
GRPC_THREADS=${GRPC_THREADS:-8}
WEB_WORKERS=${WEB_WORKERS:-4}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-5}
RATE=${RATE:-1000}
GHZ_C=${GHZ_C:-32}
GHZ_CONNS=${GHZ_CONNS:-8}
WRK_C=${WRK_C:-16}
OHA_C=${OHA_C:-64}
POOL=${POOL:-1000}
DISTINCT=${DISTINCT:-$([[ ${WHATIF:-0} == 1 ]] && echo 200 || echo 24000)}
PROFILE=${PROFILE:-0}
WHATIF=${WHATIF:-0}
PYSPY=${PYSPY:-$(command -v py-spy || true)}
DB_NAME=idp_bench_validate

say() { printf '[validate-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# --- tools ----------------------------------------------------------------------------------
GHZ=${GHZ:-$(command -v ghz || true)}
[[ -z $GHZ && -x ${GOBIN:-$HOME/go/bin}/ghz ]] && GHZ=${GOBIN:-$HOME/go/bin}/ghz
if [[ -z $GHZ ]]; then
    command -v go >/dev/null || die "ghz is missing and there is no Go to build it"
    say "installing ghz v0.93.0 with go install"
    go install github.com/bojand/ghz/cmd/ghz@v0.93.0
    GHZ=$(go env GOPATH)/bin/ghz
fi
OHA=${OHA:-$(command -v oha || true)}
[[ -z $OHA && -x $HOME/.cargo/bin/oha ]] && OHA=$HOME/.cargo/bin/oha
[[ -n $OHA ]] || die "oha is missing (cargo install oha)"
for tool in wrk psql curl; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y wrk postgresql-client curl)"
done
[[ -x $PY && -x $GUNICORN ]] || die "no $REPO/.venv with gunicorn (pip install -r requirements.txt)"

WORK=$(mktemp -d /tmp/idp-validate-bench.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT" "$WORK/tokens"
STARTED_SERVICES=0
SERVER_PIDS=()
GUNICORN_PID=
ADMIN_URL=

stop_pid() {  # TERM, wait up to 10 s, KILL; only our own children
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
    [[ ${#SERVER_PIDS[@]} -gt 0 ]] && say "stopped the gRPC servers (${SERVER_PIDS[*]})"
    if [[ -n $GUNICORN_PID ]]; then stop_pid "$GUNICORN_PID"; say "stopped gunicorn ($GUNICORN_PID)"; fi
    if [[ -n ${REDIS_URL:-} && -n $ADMIN_URL ]]; then
        "$PY" -c 'import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()' "$REDIS_URL" >/dev/null 2>&1 \
            && say "emptied the bench's Redis database ${REDIS_DB:-11}"
    fi
    if [[ -n $ADMIN_URL ]]; then
        psql "$ADMIN_URL" -qAt -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 \
            && say "dropped database $DB_NAME"
    fi
    if [[ $STARTED_SERVICES == 1 ]]; then
        say "stopping the private services this run started"
        "$REPO/scripts/services" stop >/dev/null 2>&1  # IDP_SERVICES_DIR is our private dir
    fi
    for f in "$WORK"/grpc-*.log "$WORK"/gunicorn.log; do [[ -f $f ]] && cp "$f" "$OUT/" 2>/dev/null; done
    find "$WORK" -mindepth 1 -maxdepth 1 ! -path "$OUT" -exec rm -rf {} + 2>/dev/null
    rmdir "$WORK" 2>/dev/null  # empty when OUT was given elsewhere
    say "results kept in $OUT"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. services -----------------------------------------------------------------------------
# SERVICES=shared (default): reuse the checkout's running scripts/services; if they are not all
# up, start a private set (state dir in $WORK) rather than the shared one, so that nobody else
# comes to rely on services this run will stop. SERVICES=private: always a private set (for a
# machine where other people's test runs stop and restart the shared services mid-benchmark).
SVC=("$REPO/scripts/services")
if [[ ${SERVICES:-shared} == shared ]] && "$REPO/scripts/services" status >/dev/null 2>&1; then
    say "reusing the running services"
else
    export IDP_SERVICES_DIR=$WORK/services
    STARTED_SERVICES=1
    say "starting a private PostgreSQL, Redis (and Kafka, unused here) in $IDP_SERVICES_DIR"
    "$REPO/scripts/services" start >/dev/null 2>"$WORK/services-start.log" \
        || die "scripts/services start failed: $(tail -5 "$WORK/services-start.log")"
fi
eval "$("${SVC[@]}" env)"
unset KAFKA_BOOTSTRAP_SERVERS CELERY_BROKER_URL
# A Redis database of our own (REDIS_DB, default 11): the test suite's FLUSHDB of the shared Redis
# must not empty the blacklist marker mid-run (is_revoked would then rebuild from PostgreSQL).
REDIS_URL=$("$PY" -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$REDIS_URL" "${REDIS_DB:-11}")
REDIS_PID=$("${SVC[@]}" status 2>/dev/null | awk '$1=="redis"{for(i=1;i<NF;i++) if($i=="pid") print $(i+1)}')

# --- 2. database, settings, users and tokens -------------------------------------------------
ADMIN_URL=$DATABASE_URL
BENCH_DB_URL=$("$PY" -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$DATABASE_URL" "$DB_NAME")
psql "$ADMIN_URL" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" \
    -c "CREATE DATABASE $DB_NAME" >/dev/null 2>&1 || die "cannot create database $DB_NAME"
say "created database $DB_NAME"

export DJANGO_SETTINGS_MODULE=idp.settings
export DEBUG=0
SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(60))')
IDP_KEY_ENCRYPTION_KEY=$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
export SECRET_KEY IDP_KEY_ENCRYPTION_KEY
export ALLOWED_HOSTS=127.0.0.1,localhost
export IDP_SSL_REDIRECT=0
export IDP_DATA_DIR=$WORK/data IDP_STATIC_ROOT=$WORK/static
export DATABASE_URL=$BENCH_DB_URL
export REDIS_URL
# Tokens live an hour instead of 5 minutes so none expires during a run with longer knobs
# (an expired token is refused before the Redis lookup: cheaper, it would flatter the figures).
export IDP_ACCESS_TOKEN_TTL=3600
mkdir -p "$IDP_DATA_DIR" "$IDP_STATIC_ROOT"

(cd "$REPO" && "$PY" manage.py migrate --noinput -v0)
say "migrated; minting tokens"
(cd "$REPO" && "$PY" "$HERE/mint.py" --out "$WORK/tokens" --pool "$POOL" --distinct "$DISTINCT") \
    | tee "$OUT/mint.txt" >&2
TOK=$WORK/tokens

# --- 3. servers ------------------------------------------------------------------------------
read -r GPORT WPORT < <("$PY" -c '
import socket
s1, s2 = socket.socket(), socket.socket()
s1.bind(("127.0.0.1", 0)); s2.bind(("127.0.0.1", 0))
print(s1.getsockname()[1], s2.getsockname()[1])')
GTARGET=127.0.0.1:$GPORT
WURL=http://127.0.0.1:$WPORT

(cd "$REPO" && exec "$PY" manage.py grpcserver --bind "$GTARGET" --processes "$GRPC_PROCS" \
    --workers "$GRPC_THREADS") >"$WORK/grpc.log" 2>&1 &
SERVER_PIDS+=($!)
GUNICORN_ARGS=(idp.wsgi --bind "127.0.0.1:$WPORT" --workers "$WEB_WORKERS"
    --access-logfile "$WORK/access.log" --error-logfile "$WORK/gunicorn.log")
(cd "$REPO" && exec "$GUNICORN" "${GUNICORN_ARGS[@]}") &
GUNICORN_PID=$!
for _ in $(seq 150); do
    up=$(grep -c listening "$WORK/grpc.log" 2>/dev/null || true)
    if [[ $up == "$GRPC_PROCS" ]] && curl -fsS -o /dev/null "$WURL/healthz" 2>/dev/null; then break; fi
    for pid in "${SERVER_PIDS[@]}" "$GUNICORN_PID"; do
        kill -0 "$pid" 2>/dev/null || die "a server exited: $(tail -5 "$WORK/grpc.log" "$WORK/gunicorn.log" 2>/dev/null)"
    done
    sleep 0.2
done
# With --processes 1 the command serves itself; otherwise its children do.
read -ra GRPC_CHILDREN < "/proc/${SERVER_PIDS[0]}/task/${SERVER_PIDS[0]}/children" || true  # no final newline
[[ ${#GRPC_CHILDREN[@]} -gt 0 ]] || GRPC_CHILDREN=("${SERVER_PIDS[0]}")
say "gRPC: manage.py grpcserver --bind $GTARGET --processes $GRPC_PROCS --workers $GRPC_THREADS (pid ${SERVER_PIDS[0]}, processes ${GRPC_CHILDREN[*]})"
say "REST: gunicorn ${GUNICORN_ARGS[*]}"
(cd "$REPO" && "$PY" "$HERE/smoke.py" --grpc "$GTARGET" --rest "$WURL" --tokens "$TOK" --login) \
    | tee "$OUT/smoke-before.txt" >&2

# --- 4. measurements -------------------------------------------------------------------------
GHZ_BASE=(--insecure --proto "$REPO/proto/auth.proto" --call AuthService.TokenValidate)
WINDOW=$((DURATION > 8 ? DURATION - 4 : DURATION - 1))

# measure KEY SERVER_PIDS(comma list) OUTFILE -- command...: run the generator in the
# background, sample the CPU split over the middle of the run, wait for both.
measure() {
    local key=$1 servers=$2 outfile=$3
    shift 4
    "$@" >"$outfile" 2>"$OUT/$key.stderr" &
    local gen=$!
    "$PY" "$HERE/cpusplit.py" --delay 2 --window "$WINDOW" --group "server=$servers" --group "generator=$gen" \
        ${REDIS_PID:+--group "redis=$REDIS_PID"} --json "$OUT/cpu-$key.json" >"$OUT/cpu-$key.txt" &
    local cpu=$!
    wait "$gen" || say "$key: the load generator exited non-zero (see $OUT/$key.stderr)"
    wait "$cpu" || true
    say "$key done: $(cat "$OUT/cpu-$key.txt")"
}
GSERVERS=$(IFS=,; echo "${SERVER_PIDS[*]}")

say "gRPC warm-up ${WARMUP}s"
"$GHZ" "${GHZ_BASE[@]}" --data-file "$TOK/pool.json" -c "$GHZ_C" --connections "$GHZ_CONNS" -z "${WARMUP}s" \
    -O json "$GTARGET" >"$OUT/grpc-warmup.ghz.json" 2>/dev/null

if [[ $WHATIF == 1 ]]; then
    # The "Where to gain" comparison: the same closed-loop run (pool, WHATIF_DURATION s) against
    # the running servers (A) and against whatif_server.py variants (B-F, monkeypatched at run
    # time, application code unchanged), then A, B, D at the fixed RATE; GRPC_PROCS processes each.
    WD=${WHATIF_DURATION:-10}
    WINDOW=$((WD > 6 ? WD - 3 : WD - 1))
    variant() {  # variant KEY [whatif_server.py args...]; KEY "A" = the running grpcserver processes
        local key=$1 port target pids=() rate=${VRATE:-}
        shift
        if [[ $key == A* ]]; then
            target=$GTARGET; pids=("${SERVER_PIDS[@]}")
        else
            port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            target=127.0.0.1:$port
            for i in $(seq "$GRPC_PROCS"); do
                (cd "$REPO" && exec "$PY" "$HERE/whatif_server.py" --bind "$target" "$@") >"$WORK/whatif-$i.log" 2>&1 &
                pids+=($!)
            done
            for _ in $(seq 100); do
                [[ $(cat "$WORK"/whatif-*.log 2>/dev/null | grep -c listening) -ge $GRPC_PROCS ]] && break
                sleep 0.2
            done
            "$GHZ" "${GHZ_BASE[@]}" --data-file "$TOK/pool.json" -c "$GHZ_C" --connections "$GHZ_CONNS" \
                -z "${WARMUP}s" "$target" >/dev/null 2>&1
        fi
        local name=whatif-$key${rate:+-rate$rate}
        if [[ -n $rate ]]; then
            measure "$name" "$(IFS=,; echo "${pids[*]}")" "$OUT/$name.ghz.json" -- "$GHZ" "${GHZ_BASE[@]}" \
                --data-file "$TOK/pool.json" --async --rps "$rate" -c "$GHZ_CONNS" --connections "$GHZ_CONNS" \
                -z "${WD}s" -O json "$target"
        else
            measure "$name" "$(IFS=,; echo "${pids[*]}")" "$OUT/$name.ghz.json" -- "$GHZ" "${GHZ_BASE[@]}" \
                --data-file "$TOK/pool.json" -c "$GHZ_C" --connections "$GHZ_CONNS" -z "${WD}s" -O json "$target"
        fi
        if [[ $key != A* ]]; then
            for pid in "${pids[@]}"; do stop_pid "$pid"; done
            rm -f "$WORK"/whatif-*.log
        fi
    }
    T=(--threads "$GRPC_THREADS")
    variant A
    variant B "${T[@]}" --redis-once
    variant C "${T[@]}" --redis-once --lean-interceptor
    variant D "${T[@]}" --redis-once --lean-interceptor --local-revocation
    variant E "${T[@]}" --redis-once --lean-interceptor --local-revocation --gc-freeze
    variant F --aio --redis-once --local-revocation --gc-freeze
    VRATE=$RATE variant A
    VRATE=$RATE variant B "${T[@]}" --redis-once
    VRATE=$RATE variant D "${T[@]}" --redis-once --lean-interceptor --local-revocation
    {
        echo "== TokenValidate what-if ($(date -u +%Y-%m-%dT%H:%MZ)): $GRPC_PROCS processes each, ghz -c $GHZ_C --connections $GHZ_CONNS (closed) or --async --rps $RATE, ${WD}s, 1,000 tokens"
        echo "A = manage.py grpcserver --workers $GRPC_THREADS (as deployed); B = A + one Redis client per process;"
        echo "C = B + TokenValidate bypasses DjangoInterceptor; D = C + revocation answered in process (upper bound);"
        echo "E = D + gc.freeze/thresholds; F = grpc.aio server + B + D + E"
        (cd "$REPO" && "$PY" "$HERE/summarize.py" "$OUT" --prefix whatif-)
    } | tee "$OUT/summary.txt"
    exit 0
fi

if [[ $PROFILE == 1 ]]; then
    if [[ -n $PYSPY ]]; then
        say "py-spy (--gil --native) on gRPC server process ${GRPC_CHILDREN[0]} under a ${DURATION}s closed-loop run"
        "$PYSPY" record -p "${GRPC_CHILDREN[0]}" --gil --native -r 100 -d "$WINDOW" -f raw -o "$OUT/pyspy-grpc.txt" \
            >"$OUT/pyspy-grpc.log" 2>&1 &
        spy=$!
        "$GHZ" "${GHZ_BASE[@]}" --data-file "$TOK/pool.json" -c "$GHZ_C" --connections "$GHZ_CONNS" \
            -z "${DURATION}s" -O json "$GTARGET" >"$OUT/grpc-profile.ghz.json" 2>/dev/null
        wait "$spy" || say "py-spy failed (see $OUT/pyspy-grpc.log)"
    else
        say "PROFILE=1 but no py-spy (PYSPY=...); skipping the live profile"
    fi
    (cd "$REPO" && "$PY" "$HERE/profile_validate.py" --tokens "$TOK" --calls 5000) >"$OUT/profile-inprocess.txt" 2>&1 \
        || say "in-process profile failed (see $OUT/profile-inprocess.txt)"
fi

for set in pool distinct; do
    key=grpc-max-$([[ $set == pool ]] && echo cached || echo uncached)
    say "$key: ghz -c $GHZ_C --connections $GHZ_CONNS -z ${DURATION}s ($set)"
    measure "$key" "$GSERVERS" "$OUT/$key.ghz.json" -- "$GHZ" "${GHZ_BASE[@]}" --data-file "$TOK/$set.json" \
        -c "$GHZ_C" --connections "$GHZ_CONNS" -z "${DURATION}s" -O json "$GTARGET"
    sleep 1
done
for set in pool distinct; do
    key=grpc-rate-$([[ $set == pool ]] && echo cached || echo uncached)
    say "$key: ghz --async --rps $RATE --connections $GHZ_CONNS -z ${DURATION}s ($set)"
    echo "$RATE" >"$OUT/$key.rate"
    measure "$key" "$GSERVERS" "$OUT/$key.ghz.json" -- "$GHZ" "${GHZ_BASE[@]}" --data-file "$TOK/$set.json" \
        --async --rps "$RATE" -c "$GHZ_CONNS" --connections "$GHZ_CONNS" -z "${DURATION}s" -O json "$GTARGET"
    sleep 1
done

say "REST warm-up ${WARMUP}s"
wrk -t1 -c"$WRK_C" -d"${WARMUP}s" -s "$HERE/validate.lua" "$WURL/api/v1/auth/validate" -- "$TOK/pool.txt" \
    >"$OUT/rest-warmup.wrk.txt"
for set in pool distinct; do
    key=rest-max-$([[ $set == pool ]] && echo cached || echo uncached)
    say "$key: wrk -t1 -c$WRK_C -d${DURATION}s ($set)"
    measure "$key" "$GUNICORN_PID" "$OUT/$key.wrk.txt" -- wrk -t1 -c"$WRK_C" -d"${DURATION}s" --latency \
        -s "$HERE/validate.lua" "$WURL/api/v1/auth/validate" -- "$TOK/$set.txt"
    sleep 1
done
echo "$RATE" >"$OUT/rest-rate-cached.rate"
say "rest-rate-cached: oha -q $RATE --latency-correction -c $OHA_C -z ${DURATION}s (pool)"
measure rest-rate-cached "$GUNICORN_PID" "$OUT/rest-rate-cached.oha.json" -- "$OHA" --no-tui -z "${DURATION}s" \
    -q "$RATE" --latency-correction -c "$OHA_C" -m POST -T application/json -Z "$TOK/pool.bodies" \
    --output-format json "$WURL/api/v1/auth/validate"
# Did REST hold RATE (97% answered, p99 under 100 ms)? If not, what does it sustain: one more
# fixed-rate run at 70% of its closed-loop maximum.
SUSTAIN=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1])); rate = int(sys.argv[3])
ok = (d.get("statusCodeDistribution") or {}).get("200", 0) / d["summary"]["total"]
line = next(x for x in open(sys.argv[2]) if x.startswith("JSON "))
m = json.loads(line[5:]); top = (m["requests"] - m["non2xx"]) / (m["duration_us"] / 1e6)
held = ok >= 0.97 * rate and d["latencyPercentiles"]["p99"] < 0.1
print(0 if held else max(50, int(top * 0.7) // 50 * 50))' \
    "$OUT/rest-rate-cached.oha.json" "$OUT/rest-max-cached.wrk.txt" "$RATE" 2>/dev/null || echo 0)
if [[ $SUSTAIN != 0 ]]; then
    say "REST did not hold $RATE/s; rest-rate-sustain: oha -q $SUSTAIN (70% of its closed-loop max)"
    echo "$SUSTAIN" >"$OUT/rest-rate-sustain.rate"
    sleep 2
    measure rest-rate-sustain "$GUNICORN_PID" "$OUT/rest-rate-sustain.oha.json" -- "$OHA" --no-tui \
        -z "${DURATION}s" -q "$SUSTAIN" --latency-correction -c "$OHA_C" -m POST -T application/json \
        -Z "$TOK/pool.bodies" --output-format json "$WURL/api/v1/auth/validate"
fi

(cd "$REPO" && "$PY" "$HERE/smoke.py" --grpc "$GTARGET" --rest "$WURL" --tokens "$TOK") | tee "$OUT/smoke-after.txt" >&2

# --- 5. summary ------------------------------------------------------------------------------
{
    echo "== TokenValidate benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
    echo "gRPC: $GRPC_PROCS processes x $GRPC_THREADS threads on one port (SO_REUSEPORT): manage.py grpcserver --bind $GTARGET --processes $GRPC_PROCS --workers $GRPC_THREADS"
    echo "REST: gunicorn ${GUNICORN_ARGS[*]}"
    echo "tokens: $(cat "$OUT/mint.txt")"
    echo "each run ${DURATION}s after a ${WARMUP}s warm-up; CPU over the middle ${WINDOW}s; ok/s = successful answers / wall time"
    (cd "$REPO" && "$PY" "$HERE/summarize.py" "$OUT")
    echo "(2-core cap: what 2 dedicated cores would serve at this run's CPU cost per call; an estimate)"
    if [[ -s $OUT/pyspy-grpc.txt ]]; then
        (cd "$REPO" && "$PY" "$HERE/pyspy_summary.py" "$OUT/pyspy-grpc.txt") || true
        echo "py-spy raw stacks: $OUT/pyspy-grpc.txt"
    fi
    if [[ -s $OUT/profile-inprocess.txt ]]; then
        sed -n '1,/uncached run LRU/p' "$OUT/profile-inprocess.txt"
        echo "in-process profile (with cProfile tables): $OUT/profile-inprocess.txt"
    fi
} | tee "$OUT/summary.txt"
