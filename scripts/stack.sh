#!/usr/bin/env bash
# Run the production topology natively on this machine: Airflow on CeleryExecutor with a fresh
# PostgreSQL database as metadata DB and Celery result backend, Redis as broker, one process each
# for api-server, scheduler, dag-processor, triggerer and a celery worker, plus the local Ground
# Truth emulator standing in for AWS with S3 on SeaweedFS and, if asked for, Label Studio as the
# workforce. Same topology as docker-compose.yaml (`local` profile), without containers.
#
#   scripts/stack.sh up                  start everything, wait until healthy, print the endpoints
#   scripts/stack.sh down                stop everything, drop the database, flush the redis db
#                                        (S3, GT and Label Studio data and the logs stay until the next up)
#   scripts/stack.sh status              one line per component (pid, alive or dead)
#   scripts/stack.sh restart COMPONENT   stop (if alive) and start one component again
#   scripts/stack.sh kill COMPONENT [SIG]  send SIG (default KILL) to a component's process group
#                                        (and to its server's: seaweedfs, labelstudio)
#   scripts/stack.sh env                 print the environment file (source it to use the stack)
#
# Components: seaweedfs labelstudio emulator api-server scheduler dag-processor triggerer worker.
# Each runs in its own process group; stop sends SIGTERM and SIGKILLs what is left after a grace
# period (45 s for seaweedfs, whose weed may take ~30 s to stop; 30 s for the others). seaweedfs and
# labelstudio are Python supervisors (python -m smgt.local.seaweedfs / smgt.local.labelstudio.server
# serve) whose server runs in a process group of its own: its pid is read from the ready line
# (run/NAME.child) and stop/kill signal both groups.
#
# State dir layout: s3/ (SeaweedFS data), gt/ (the emulator's jobs and teams), labelstudio/ (Label
# Studio's database), airflow/ (AIRFLOW_HOME), logs/, run/ (pid files), stack.env, and secrets.env
# (S3 keys, Label Studio admin password and token, the secret the work teams' Label Studio passwords
# are derived from; made once, kept across ups) and labelstudio-logins.tsv (team, e-mail, password).
#
# Settings (environment, all optional):
#   SMGT_STACK_DIR        state dir: AIRFLOW_HOME, logs, pid files, stack.env (default .smgt/stack)
#   SMGT_STACK_PGHOST / SMGT_STACK_PGPORT / SMGT_STACK_PGUSER   Postgres (127.0.0.1 / 5432 / postgres)
#   SMGT_STACK_REDIS_HOST / SMGT_STACK_REDIS_PORT  Redis (127.0.0.1 / 6379)
#   SMGT_STACK_REDIS_DB   redis db number for the broker (default: first empty one of 10..15)
#   SMGT_STACK_API_PORT / SMGT_STACK_EMULATOR_PORT / SMGT_STACK_S3_PORT / SMGT_STACK_LABELSTUDIO_PORT
#                         (default: free ports; all listen on 127.0.0.1)
#   SMGT_STACK_DAGS_FOLDER  dags folder (default: this repo's dags/)
#   SMGT_STACK_EMULATOR   1 to run SeaweedFS + the emulator as AWS (default), 0 to use AIRFLOW_CONN_AWS_DEFAULT as given
#   SMGT_STACK_TASK_SECONDS  emulator: seconds a GT job takes (passed as --task-seconds if set)
#   SMGT_STACK_WORKFORCE  simulated (default) or labelstudio: people label in Label Studio, which is then
#                         started too (~40 s, ~350 MB); its admin is SMGT_LABELSTUDIO_ADMIN_EMAIL
#                         (default admin@smgt.local)
#   SMGT_STACK_LABELSTUDIO_POLL_SECONDS  how often the emulator polls Label Studio (default 5)
#   SMGT_STACK_WORKER_CONCURRENCY  celery worker slots (default 8)
#   SMGT_STACK_UP_TIMEOUT seconds `up` waits for health (default 240)
#   SMGT_* settings (plugins/smgt/settings.py) are passed through to every process.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SMGT_STACK_DIR:-$REPO/.smgt/stack}
VENV=${SMGT_STACK_VENV:-$REPO/.venv}
PY="$VENV/bin/python"
AIRFLOW="$VENV/bin/airflow"
PGHOST=${SMGT_STACK_PGHOST:-127.0.0.1}
PGPORT=${SMGT_STACK_PGPORT:-5432}
PGUSER=${SMGT_STACK_PGUSER:-postgres}
REDIS_HOST=${SMGT_STACK_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${SMGT_STACK_REDIS_PORT:-6379}
UP_TIMEOUT=${SMGT_STACK_UP_TIMEOUT:-240}
COMPONENTS=(seaweedfs labelstudio emulator api-server scheduler dag-processor triggerer worker)
ENV_FILE="$STATE/stack.env"
SECRETS_FILE="$STATE/secrets.env"
# Seconds between SIGTERM and SIGKILL. seaweedfs' supervisor itself gives weed 30 s (--stop-grace):
# it flushes its volumes on SIGTERM, measured up to ~30 s (/work/shared/notes/seaweedfs.md).
SEAWEEDFS_STOP_GRACE=30
stop_grace() { case "$1" in seaweedfs) echo $((SEAWEEDFS_STOP_GRACE + 15)) ;; *) echo 30 ;; esac; }

log() { printf '[stack %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

psql_q() { psql -X -q -t -A -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" "$@"; }

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A free port below Linux's ephemeral range (32768-60999), so no outgoing connection takes it while
# its server restarts (as smgt.local.seaweedfs picks weed's other ports).
free_low_port() {
    "$PY" -c '
import random, socket
while True:
    port = random.randint(10000, 14999)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break'
}

random_hex() { "$PY" -c 'import secrets; print(secrets.token_hex(24))'; }

pick_redis_db() {  # first empty db of 10..15, claimed at once with a marker key (down flushes it)
    local n
    for n in 10 11 12 13 14 15; do
        if [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$n" dbsize)" = "0" ] &&
            [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$n" set smgt-stack-owner "$STATE" nx)" = "OK" ]; then
            echo "$n"
            return 0
        fi
    done
    die "no empty redis db in 10..15; set SMGT_STACK_REDIS_DB"
}

pid_of() { cat "$STATE/run/$1.pid" 2>/dev/null || true; }

child_of() { cat "$STATE/run/$1.child" 2>/dev/null || true; }

# What the server a supervisor started runs as (its command line contains this), so a recorded pid
# that the kernel has since given to another process is never taken for it.
child_marker() { case "$1" in seaweedfs) echo "/weed " ;; labelstudio) echo "label-studio start" ;; esac; }

child_alive() {  # the server started by component $1's supervisor still runs (not a zombie)
    local pid line
    pid=$(child_of "$1")
    [ -n "$pid" ] || return 1
    line=$(ps -o stat=,args= -p "$pid" 2>/dev/null) || return 1
    [[ "$line" != Z* && "$line" == *"$(child_marker "$1")"* ]]
}

is_alive() {  # the component's leader exists and is not a zombie; for a supervisor, its server too
    local pid st
    pid=$(pid_of "$1")
    [ -n "$pid" ] || return 1
    st=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    [[ "$st" != Z* ]] || return 1
    [ -z "$(child_of "$1")" ] || child_alive "$1"
}

ready_line() {  # ready_line NAME: the supervisor's ready line since its last start (fails if none yet)
    local pattern
    case "$1" in
        seaweedfs) pattern='^SeaweedFS S3 ready on ' ;;
        labelstudio) pattern='^labelstudio ready ' ;;
    esac
    awk -v p="$pattern" '/^=== start /{line = ""} $0 ~ p {line = $0} END {if (line == "") exit 1; print line}' \
        "$STATE/logs/$1.log"
}

record_child() {  # record_child NAME: the server's pid (= its process group) from the ready line
    # "SeaweedFS S3 ready on URL (pid N, data D)" / "labelstudio ready url=URL pid=N data_dir=D"
    ready_line "$1" | grep -oE 'pid[ =][0-9]+' | grep -oE '[0-9]+' >"$STATE/run/$1.child"
}

group_alive() {  # any live (non-zombie) process left in process group $1
    ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

load_env() {
    [ -f "$ENV_FILE" ] || die "no stack at $STATE (run: scripts/stack.sh up)"
    set -a
    # shellcheck disable=SC1090
    source "$ENV_FILE"
    set +a
}

# Start one component in its own session (process group = its pid), so stop/kill reach its
# children too (celery's pool, the task supervisors, the api-server's uvicorn workers).
start() {
    local name=$1 cmd shown secret
    case "$name" in
        seaweedfs)
            # Keys come from SMGT_LOCAL_S3_* (stack.env is exported), not the command line (ps).
            cmd=("$PY" -m smgt.local.seaweedfs serve --data-dir "$STATE/s3" --s3-port "$SMGT_STACK_S3_PORT"
                 --log-file "$STATE/logs/weed.log" --stop-grace "$SEAWEEDFS_STOP_GRACE")
            ;;
        labelstudio)
            # Admin e-mail, password and token come from SMGT_LABELSTUDIO_* (stack.env is exported).
            cmd=("$PY" -m smgt.local.labelstudio.server serve --data-dir "$STATE/labelstudio"
                 --port "$SMGT_STACK_LABELSTUDIO_PORT" --log-file "$STATE/logs/labelstudio-server.log")
            ;;
        emulator)
            # Jobs and teams in gt/, S3 on SeaweedFS (keys SMGT_LOCAL_S3_* from stack.env), the
            # workforce's Label Studio from SMGT_LABELSTUDIO_* in stack.env.
            cmd=("$PY" -m smgt.local serve --host 127.0.0.1 --port "$SMGT_STACK_EMULATOR_PORT"
                 --state-dir "$STATE/gt" --s3-endpoint-url "$SMGT_STACK_S3_URL" --workforce "$SMGT_STACK_WORKFORCE")
            # The demo data once per stack: a restart must not re-upload it (and so hide a lost object).
            [ -f "$STATE/gt/demo-uploaded" ] || cmd+=(--demo-data)
            if [ -n "${SMGT_STACK_TASK_SECONDS:-}" ]; then
                cmd+=(--task-seconds "$SMGT_STACK_TASK_SECONDS")
            fi
            ;;
        api-server) cmd=("$AIRFLOW" api-server --host 127.0.0.1 --port "$SMGT_STACK_API_PORT" --workers 1) ;;
        scheduler) cmd=("$AIRFLOW" scheduler) ;;
        dag-processor) cmd=("$AIRFLOW" dag-processor) ;;
        triggerer) cmd=("$AIRFLOW" triggerer) ;;
        worker)
            cmd=("$AIRFLOW" celery worker --celery-hostname "$SMGT_STACK_WORKER_NAME"
                 --concurrency "$SMGT_STACK_WORKER_CONCURRENCY" --without-gossip --without-mingle)
            ;;
        *) die "unknown component '$name' (one of: ${COMPONENTS[*]})" ;;
    esac
    if is_alive "$name"; then
        die "$name is already running (pid $(pid_of "$name"))"
    fi
    shown=("${cmd[@]}")
    for secret in "${SMGT_LOCAL_S3_SECRET_KEY:-}" "${SMGT_LABELSTUDIO_ADMIN_PASSWORD:-}" "${SMGT_LABELSTUDIO_TOKEN:-}"; do
        [ -z "$secret" ] || shown=("${shown[@]//"$secret"/***}")  # keep secrets out of the log
    done
    echo "=== start $(date -u +%FT%TZ): ${shown[*]}" >>"$STATE/logs/$name.log"
    rm -f "$STATE/run/$name.child"
    (cd "$STATE" && exec setsid "${cmd[@]}" >>"$STATE/logs/$name.log" 2>&1 </dev/null) &
    echo $! >"$STATE/run/$name.pid"
    log "started $name (pid $!)"
}

# TERM the components' process groups (all at once; a supervisor's and its server's), wait up to
# each one's grace period, then KILL what is left.
stop() {
    local name pid child t0 groups deadline entry
    local -a entries=()
    t0=$(date +%s)
    for name in "$@"; do
        pid=$(pid_of "$name")
        [ -n "$pid" ] || continue
        child=""
        ! child_alive "$name" || child=$(child_of "$name")
        entries+=("$name:$pid${child:+:$child}")
        if is_alive "$name" || [ -n "$child" ]; then
            kill -TERM -- "-$pid" 2>/dev/null || true
            [ -z "$child" ] || kill -TERM -- "-$child" 2>/dev/null || true
            log "stopping $name (pid $pid${child:+, server $child})"
        fi
        rm -f "$STATE/run/$name.pid" "$STATE/run/$name.child"
    done
    for entry in "${entries[@]}"; do
        IFS=: read -r name groups <<<"$entry"
        deadline=$((t0 + $(stop_grace "$name")))
        for pid in ${groups//:/ }; do
            while group_alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do
                sleep 0.5
            done
            if group_alive "$pid"; then
                log "$name (group $pid) still running after $(stop_grace "$name")s: SIGKILL"
            fi
            # Also reaches children that outlived a SIGKILLed leader.
            kill -KILL -- "-$pid" 2>/dev/null || true
        done
    done
}

wait_for() {  # wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds or the deadline passes
    local what=$1
    shift
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$DEADLINE" ]; then
            log "timed out waiting for $what"
            return 1
        fi
        for c in "${COMPONENTS[@]}"; do
            if [ -f "$STATE/run/$c.pid" ] && ! is_alive "$c"; then
                log "$c died while waiting for $what; last lines of its log:"
                tail -n 40 "$STATE/logs/$c.log" >&2 || true
                return 1
            fi
        done
        sleep 1
    done
    log "ready: $what"
}

api_answers() { curl -fsS "http://127.0.0.1:$SMGT_STACK_API_PORT/api/v2/version"; }

heartbeat_ok() {  # heartbeat_ok JOB_TYPE [AFTER_ID]: a running job (newer than AFTER_ID) beat in the last 30 s
    local n
    n=$(psql_q -d "$SMGT_STACK_DB" -c "select count(*) from job where job_type = '$1' and state = 'running'
        and id > ${2:-0} and latest_heartbeat > now() - interval '30 seconds'" 2>/dev/null) || return 1
    [ "${n:-0}" -ge 1 ]
}

last_job_id() { psql_q -d "$SMGT_STACK_DB" -c "select coalesce(max(id), 0) from job where job_type = '$1'"; }

worker_ready() { grep -q "$SMGT_STACK_WORKER_NAME ready" "$STATE/logs/worker.log"; }

emulator_answers() { curl -fsS "http://127.0.0.1:$SMGT_STACK_EMULATOR_PORT/_smgt/health"; }

emulator_ready() {  # answers, and has printed its environment since its last start (after
    # bootstrap, the demo data and resuming its jobs)
    emulator_answers &&
        awk '/^=== start /{r = 0} /^# status queue:/{r = 1} END {exit !r}' "$STATE/logs/emulator.log"
}

seaweedfs_ready() {  # the supervisor saw S3 answer signed requests on every port; /healthz answers
    ready_line seaweedfs && curl -fsS "$SMGT_STACK_S3_URL/healthz"
}

labelstudio_ready() {  # the supervisor saw /health UP and the admin token accepted
    ready_line labelstudio && curl -fsS "$SMGT_LABELSTUDIO_URL/health"
}

# The work teams' members (smgt.local.bootstrap.USERS) as Label Studio users who can log in, with
# passwords derived from the stack's secret as the native deployment derives them; their logins go
# to labelstudio-logins.tsv (mode 0600). Idempotent (LabelStudioServer.ensure_users).
ensure_labelstudio_users() {
    "$PY" - "$STATE/labelstudio" "$STATE/labelstudio-logins.tsv" <<'EOF'
import os
import sys

from smgt.deployment import worker_password
from smgt.local.bootstrap import USERS, worker_email
from smgt.local.labelstudio.server import LabelStudioServer

data_dir, logins = sys.argv[1:3]
env = os.environ
server = LabelStudioServer(data_dir, port=int(env["SMGT_STACK_LABELSTUDIO_PORT"]),
                           admin_email=env["SMGT_LABELSTUDIO_ADMIN_EMAIL"],
                           admin_password=env["SMGT_LABELSTUDIO_ADMIN_PASSWORD"], api_token=env["SMGT_LABELSTUDIO_TOKEN"])
members = [(team, user, worker_email(user), worker_password(env["SMGT_STACK_WORKER_SECRET"], user))
           for team, users in USERS.items() for user in users]
made = server.ensure_users([(email, password, user) for _, user, email, password in members])
fd = os.open(logins, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as out:
    out.writelines(f"{team}\t{email}\t{password}\n" for team, _, email, password in members)
for change in made.changes:
    print(f"label studio: {change}", file=sys.stderr)
print(f"label studio: {len(made)} members can log in (logins in {logins})", file=sys.stderr)
EOF
}

# secrets.env: made once per state dir (mode 0600), reused by every later up.
load_secrets() {
    if [ ! -s "$SECRETS_FILE" ]; then
        (umask 077 && "$PY" -c '
import secrets
print(f"SMGT_STACK_S3_ACCESS_KEY=smgt{secrets.token_hex(8)}")
print(f"SMGT_STACK_S3_SECRET_KEY={secrets.token_urlsafe(30)}")
print(f"SMGT_STACK_LABELSTUDIO_ADMIN_PASSWORD={secrets.token_urlsafe(12)}")
print(f"SMGT_STACK_LABELSTUDIO_TOKEN={secrets.token_hex(20)}")
print(f"SMGT_STACK_WORKER_SECRET={secrets.token_hex(16)}")' >"$SECRETS_FILE.tmp") &&
            mv -f "$SECRETS_FILE.tmp" "$SECRETS_FILE"
    fi
    # shellcheck disable=SC1090
    source "$SECRETS_FILE"
}

write_env() {  # write_env NAME=VALUE...: the environment every component (and a client) sources
    local kv
    (umask 077 && for kv in "$@"; do
        printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
    done >"$ENV_FILE")
}

cmd_up() {
    if [ -f "$ENV_FILE" ]; then
        for c in "${COMPONENTS[@]}"; do
            is_alive "$c" && die "a stack is already up at $STATE ($c alive); run: scripts/stack.sh down"
        done
        log "stale state at $STATE (nothing alive): cleaning it"
        cmd_down
    fi
    local t0 db redis_db api_port emu_port pg_url home workforce=${SMGT_STACK_WORKFORCE:-simulated}
    case "$workforce" in
        simulated | labelstudio) ;;
        *) die "SMGT_STACK_WORKFORCE: '$workforce' is not one of simulated, labelstudio" ;;
    esac
    t0=$(date +%s)
    DEADLINE=$((t0 + UP_TIMEOUT))
    # A new stack: a new database below, so no S3 objects, GT jobs or Label Studio projects of an old one.
    rm -rf "$STATE/airflow" "$STATE/logs" "$STATE/run" "$STATE/s3" "$STATE/gt" "$STATE/labelstudio" \
        "$STATE/labelstudio-logins.tsv"
    mkdir -p "$STATE/airflow" "$STATE/logs" "$STATE/run"
    home="$STATE/airflow"

    db="smgt_stack_$(date +%Y%m%d%H%M%S)_$$"
    psql_q -d postgres -c "create database $db" >/dev/null
    log "created database $db on $PGHOST:$PGPORT"
    redis_db=${SMGT_STACK_REDIS_DB:-$(pick_redis_db)}
    api_port=${SMGT_STACK_API_PORT:-$(free_port)}
    emu_port=${SMGT_STACK_EMULATOR_PORT:-$(free_port)}
    pg_url="postgresql+psycopg2://$PGUSER@$PGHOST:$PGPORT/$db"
    echo '{"admin": "admin", "viewer": "viewer"}' >"$STATE/passwords.json"

    local env=(
        "SMGT_STACK_DB=$db"
        "SMGT_STACK_REDIS_DB=$redis_db"
        "SMGT_STACK_API_PORT=$api_port"
        "SMGT_STACK_API_URL=http://127.0.0.1:$api_port"
        "SMGT_STACK_WORKER_NAME=smgt-worker-$db@$(hostname)"
        "SMGT_STACK_WORKER_CONCURRENCY=${SMGT_STACK_WORKER_CONCURRENCY:-8}"
        "SMGT_STACK_DIR=$STATE"
        "AIRFLOW_HOME=$home"
        "PYTHONPATH=$REPO/plugins${PYTHONPATH:+:$PYTHONPATH}"
        "AIRFLOW__CORE__EXECUTOR=CeleryExecutor"
        "AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin,viewer:viewer"
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$STATE/passwords.json"
        "AIRFLOW__CORE__DAGS_FOLDER=${SMGT_STACK_DAGS_FOLDER:-$REPO/dags}"
        "AIRFLOW__CORE__PLUGINS_FOLDER=$REPO/plugins"
        "AIRFLOW__CORE__LOAD_EXAMPLES=False"
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False"
        # There is a triggerer: sensors wait there, not in worker slots.
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=True"
        "AIRFLOW__CORE__FERNET_KEY=$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$api_port/execution/"
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$pg_url"
        "AIRFLOW__CELERY__BROKER_URL=redis://$REDIS_HOST:$REDIS_PORT/$redis_db"
        "AIRFLOW__CELERY__RESULT_BACKEND=db+$pg_url"
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT=21600"
        "AIRFLOW__API__HOST=127.0.0.1"
        "AIRFLOW__API__PORT=$api_port"
        "AIRFLOW__API__BASE_URL=http://127.0.0.1:$api_port"
        "AIRFLOW__API__SECRET_KEY=$(random_hex)"
        "AIRFLOW__API_AUTH__JWT_SECRET=$(random_hex)"
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$(free_port)"
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$(free_port)"
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=True"
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=$(free_port)"
        # Detect a dead worker's tasks in under a minute instead of 5 (the fault test relies on it).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=${SMGT_STACK_TI_HEARTBEAT_TIMEOUT:-30}"
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=5"
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=${SMGT_STACK_TASK_QUEUED_TIMEOUT:-60}"
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL=15"
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5"
        # Airflow's default: a re-parse costs ~1 s of CPU per file (10 s took 6 % of the load test's CPU).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=30"
        # AWS clients share one botocore loader per process, and the Celery worker loads it and the
        # tasks' imports once before forking its pool (smgt.gt.session, smgt.celery_config).
        "AIRFLOW__AWS__SESSION_FACTORY=smgt.gt.session.SharedLoaderSessionFactory"
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=smgt.celery_config.CELERY_CONFIG"
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=1"
    )
    # Settings and credentials from the caller's environment pass through.
    local v
    for v in $(compgen -e); do
        case "$v" in
            SMGT_STACK_*) ;;
            SMGT_* | AWS_* | AIRFLOW_CONN_* | AIRFLOW__*) env+=("$v=${!v}") ;;
        esac
    done
    if [ "${SMGT_STACK_EMULATOR:-1}" = "1" ]; then
        load_secrets
        local s3_port ls_port
        s3_port=${SMGT_STACK_S3_PORT:-$(free_low_port)}
        # After the caller's SMGT_* above: these must match what this stack's servers were given.
        env+=("SMGT_STACK_EMULATOR_PORT=$emu_port" "SMGT_STACK_EMULATOR_URL=http://127.0.0.1:$emu_port"
              "SMGT_STACK_WORKFORCE=$workforce"
              "SMGT_STACK_S3_PORT=$s3_port" "SMGT_STACK_S3_URL=http://127.0.0.1:$s3_port"
              "SMGT_LOCAL_S3_ACCESS_KEY=$SMGT_STACK_S3_ACCESS_KEY" "SMGT_LOCAL_S3_SECRET_KEY=$SMGT_STACK_S3_SECRET_KEY")
        if [ "$workforce" = labelstudio ]; then
            ls_port=${SMGT_STACK_LABELSTUDIO_PORT:-$(free_low_port)}
            env+=("SMGT_STACK_LABELSTUDIO_PORT=$ls_port" "SMGT_LABELSTUDIO_URL=http://127.0.0.1:$ls_port"
                  "SMGT_LABELSTUDIO_ADMIN_EMAIL=${SMGT_LABELSTUDIO_ADMIN_EMAIL:-admin@smgt.local}"
                  "SMGT_LABELSTUDIO_ADMIN_PASSWORD=$SMGT_STACK_LABELSTUDIO_ADMIN_PASSWORD"
                  "SMGT_LABELSTUDIO_TOKEN=$SMGT_STACK_LABELSTUDIO_TOKEN"
                  "SMGT_LABELSTUDIO_POLL_SECONDS=${SMGT_STACK_LABELSTUDIO_POLL_SECONDS:-5}")
        fi
        write_env "${env[@]}"
        load_env
        start seaweedfs
        wait_for "seaweedfs S3 on :$s3_port" seaweedfs_ready || die "seaweedfs did not start (log: $STATE/logs/seaweedfs.log)"
        record_child seaweedfs
        if [ "$workforce" = labelstudio ]; then
            start labelstudio
            wait_for "label studio on :$ls_port" labelstudio_ready ||
                die "label studio did not start (log: $STATE/logs/labelstudio.log)"
            record_child labelstudio
            SMGT_STACK_WORKER_SECRET=$SMGT_STACK_WORKER_SECRET ensure_labelstudio_users ||
                die "could not make the work teams' Label Studio users"
        fi
        start emulator
        wait_for "emulator on :$emu_port" emulator_ready || die "emulator did not start (log: $STATE/logs/emulator.log)"
        touch "$STATE/gt/demo-uploaded"
        # `serve` prints the environment for Airflow (smgt.local.emulator.aws_env): the aws_default
        # connection at its endpoint with S3 at SeaweedFS, the keys, AWS_ENDPOINT_URL(_S3),
        # SMGT_REGION (lines `export KEY='VALUE'`).
        local line key value
        while IFS= read -r line; do
            line=${line#export }
            key=${line%%=*}
            value=${line#*=}
            value=${value#\'}
            env+=("$key=${value%\'}")
        done < <(grep -E "^export [A-Z][A-Z0-9_]*='" "$STATE/logs/emulator.log")
    fi
    write_env "${env[@]}"
    load_env

    log "airflow db migrate"
    "$AIRFLOW" db migrate >>"$STATE/logs/migrate.log" 2>&1 || {
        tail -n 40 "$STATE/logs/migrate.log" >&2
        die "airflow db migrate failed"
    }
    for c in api-server scheduler dag-processor triggerer worker; do
        start "$c"
    done
    wait_for "api-server on :$api_port" api_answers &&
        wait_for "scheduler heartbeat" heartbeat_ok SchedulerJob &&
        wait_for "triggerer heartbeat" heartbeat_ok TriggererJob &&
        wait_for "dag-processor heartbeat" heartbeat_ok DagProcessorJob &&
        wait_for "celery worker" worker_ready ||
        die "stack did not come up within ${UP_TIMEOUT}s (logs: $STATE/logs); run: scripts/stack.sh down"
    log "stack up in $(($(date +%s) - t0))s: api $SMGT_STACK_API_URL (admin:admin), db $db, redis db $redis_db"
    log "env: source $ENV_FILE"
}

cmd_down() {
    [ -f "$ENV_FILE" ] || { log "no stack at $STATE"; return 0; }
    load_env
    stop worker triggerer dag-processor scheduler api-server
    stop emulator
    stop labelstudio seaweedfs
    if [ -n "${SMGT_STACK_DB:-}" ]; then
        psql_q -d postgres -c "drop database if exists $SMGT_STACK_DB with (force)" >/dev/null &&
            log "dropped database $SMGT_STACK_DB"
    fi
    if [ -n "${SMGT_STACK_REDIS_DB:-}" ]; then
        redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$SMGT_STACK_REDIS_DB" flushdb >/dev/null &&
            log "flushed redis db $SMGT_STACK_REDIS_DB"
    fi
    rm -f "$ENV_FILE"
    log "down (logs kept in $STATE/logs)"
}

cmd_status() {
    load_env
    local c pid state rc=0
    for c in "${COMPONENTS[@]}"; do
        pid=$(pid_of "$c")
        if [ -z "$pid" ]; then
            state="not started"
        elif is_alive "$c"; then
            state="alive"
        else
            state="DEAD"
            rc=1
        fi
        printf '%-14s %-8s %s\n' "$c" "${pid:--}" "$state"
    done
    printf 'api %s  db %s  redis db %s  state %s\n' "$SMGT_STACK_API_URL" "$SMGT_STACK_DB" \
        "$SMGT_STACK_REDIS_DB" "$STATE"
    if [ -n "${SMGT_STACK_S3_URL:-}" ]; then
        printf 's3 %s  emulator %s  workforce %s%s\n' "$SMGT_STACK_S3_URL" "$SMGT_STACK_EMULATOR_URL" \
            "$SMGT_STACK_WORKFORCE" "${SMGT_LABELSTUDIO_URL:+ $SMGT_LABELSTUDIO_URL}"
    fi
    return $rc
}

cmd_restart() {
    local name=${1:?usage: stack.sh restart COMPONENT} job_type="" after=0
    load_env
    case "$name" in
        scheduler) job_type=SchedulerJob ;;
        triggerer) job_type=TriggererJob ;;
        dag-processor) job_type=DagProcessorJob ;;
    esac
    # A killed component's job row still looks alive for a while: wait for the new one's heartbeat.
    [ -z "$job_type" ] || after=$(last_job_id "$job_type")
    stop "$name"
    start "$name"
    DEADLINE=$(($(date +%s) + UP_TIMEOUT))
    case "$name" in
        api-server) wait_for "api-server" api_answers ;;
        scheduler | triggerer | dag-processor) wait_for "$name heartbeat" heartbeat_ok "$job_type" "$after" ;;
        worker) wait_for "celery worker" worker_ready_since_restart ;;
        emulator) wait_for "emulator" emulator_ready ;;
        seaweedfs) wait_for "seaweedfs" seaweedfs_ready && record_child seaweedfs ;;
        labelstudio) wait_for "label studio" labelstudio_ready && record_child labelstudio ;;
    esac
}

worker_ready_since_restart() {  # the last start marker is followed by a "ready" line
    awk -v n="$SMGT_STACK_WORKER_NAME ready" '/^=== start /{r=0} index($0, n){r=1} END{exit !r}' \
        "$STATE/logs/worker.log"
}

cmd_kill() {
    local name=${1:?usage: stack.sh kill COMPONENT [SIGNAL]} sig=${2:-KILL} pid child=""
    load_env
    pid=$(pid_of "$name")
    [ -n "$pid" ] || die "$name has no pid file"
    # A supervised server gets the signal too: a crash of SeaweedFS or Label Studio, not of its supervisor.
    ! child_alive "$name" || child=$(child_of "$name")
    kill -"$sig" -- "-$pid"
    [ -z "$child" ] || kill -"$sig" -- "-$child"
    log "sent SIG$sig to $name (process group $pid${child:+ and server group $child})"
}

main() {
    case "${1:-}" in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        restart) shift; cmd_restart "$@" ;;
        kill) shift; cmd_kill "$@" ;;
        env) load_env; cat "$ENV_FILE" ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

# The whole file is parsed before main runs, so editing it under a running `up` is harmless.
main "$@"
exit
