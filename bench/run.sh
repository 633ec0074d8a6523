#!/usr/bin/env bash
# Benchmark broker-lite against Mosquitto with mqbench and write BENCHMARKS.md.
#
#   bench/run.sh            5 rounds of every scenario (about 10 minutes on 2 cores)
#   bench/run.sh --quick    1 round
#   bench/run.sh --reps N   N rounds
#   bench/run.sh --out F    write the report to F instead of BENCHMARKS.md
#   bench/run.sh --low-load the loads a Pi sees (paced publishers, 1,000 to 10,000
#                           msg/s, a fresh broker for every run): print a table of
#                           broker CPU per message and latency, write nothing
#
# Both brokers listen on loopback only. Throughput and latency scenarios use one
# long-running instance of each broker; the idle and retained scenarios start a
# fresh instance for every run. Runs alternate broker-lite, mosquitto, ...
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COMMAND="bench/run.sh $*"
REPS=5
OUT="$ROOT/BENCHMARKS.md"
LOW_LOAD=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) REPS=1 ;;
        --reps) REPS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --low-load) LOW_LOAD=1 ;;
        *) echo "usage: bench/run.sh [--quick] [--reps N] [--out FILE] [--low-load]" >&2; exit 2 ;;
    esac
    shift
done

# Four free loopback ports (other brokers may be running on this machine).
read -r BL_PORT MQ_PORT BL_FRESH_PORT MQ_FRESH_PORT < <(python3 -c '
import random, socket
ports = []
while len(ports) < 4:
    p = random.randint(20000, 30000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        if p not in ports:
            ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(*ports)
')
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
RUN_TIMEOUT=120

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ $(ulimit -n) -lt 10500 ]]; then
    echo "run.sh: open-file limit $(ulimit -n) is too low for 10,000 connections" >&2
    exit 1
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
(cd "$ROOT" && cargo build --release -p broker-lite -p mqbench)
# The broker-lite source the binary was built from (the tree is shared and keeps changing).
BL_COMMIT="$(git -C "$ROOT" log -1 --format='%h (%ci)' -- broker-lite)$(git -C "$ROOT" diff --quiet HEAD -- broker-lite || echo ' plus uncommitted changes')"
BROKER_LITE="$CARGO_TARGET_DIR/release/broker-lite"
MQBENCH="$CARGO_TARGET_DIR/release/mqbench"

WORK=$(mktemp -d /tmp/mqbench.XXXXXX)
# Mosquitto started as root drops to the mosquitto user and must still write its log.
chmod 777 "$WORK"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
echo "run.sh: working directory $WORK"

declare -A PID=()

write_configs() {
    local port=$1 name=$2
    cat > "$WORK/$name.yaml" <<EOF
limits:
  max_connections: 20000
  # Every benchmark client comes from 127.0.0.1.
  max_connections_per_ip: 0
  max_queued_messages: 65535
  max_inflight: 1000
sys_interval_secs: 10
EOF
    cat > "$WORK/$name.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
max_inflight_messages 0
max_queued_messages 0
persistence false
set_tcp_nodelay true
log_dest file $WORK/$name.log
EOF
}

wait_for_port() {
    local port=$1 pid=$2
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start KEY KIND PORT: start broker KIND (broker-lite|mosquitto) and remember its pid under KEY.
start() {
    local key=$1 kind=$2 port=$3
    write_configs "$port" "$key"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "run.sh: port $port is already taken by another program" >&2
        exit 1
    fi
    if [[ $kind == broker-lite ]]; then
        "$BROKER_LITE" --listen "127.0.0.1:$port" --config "$WORK/$key.yaml" \
            >> "$WORK/$key.log" 2>&1 &
    else
        "$MOSQUITTO" -c "$WORK/$key.conf" >> "$WORK/$key.out" 2>&1 &
    fi
    PID[$key]=$!
    if ! wait_for_port "$port" "${PID[$key]}"; then
        echo "run.sh: $kind did not start on port $port; see $WORK/$key.*" >&2
        exit 1
    fi
}

stop() {
    local key=$1
    if [[ -n ${PID[$key]:-} ]]; then
        kill "${PID[$key]}" 2>/dev/null || true
        wait "${PID[$key]}" 2>/dev/null || true
        unset "PID[$key]"
    fi
}

cleanup() {
    for key in "${!PID[@]}"; do
        stop "$key"
    done
}
trap cleanup EXIT

# record KIND KEY PORT SCENARIO ARGS...: one mqbench run; its JSON line goes to $RESULTS.
# A run that prints no result line, or after which the broker is gone, is recorded as failed.
record() {
    local kind=$1 key=$2 port=$3 scenario=$4
    shift 4
    local pid=${PID[$key]} line err rc=0
    err="$WORK/mqbench.err"
    line=$(timeout $((RUN_TIMEOUT + 30)) "$MQBENCH" --port "$port" --pid "$pid" \
        --label "$kind" --timeout "$RUN_TIMEOUT" "$scenario" "$@" 2> "$err") || rc=$?
    if [[ -z $line ]]; then
        line=$(python3 -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "broker": sys.argv[2], "ok": False, "error": "mqbench exited with status " + sys.argv[3] + ": " + sys.argv[4]}))' \
            "$scenario" "$kind" "$rc" "$(tail -c 300 "$err")")
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        line=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["ok"]=False; d["error"]=(d.get("error") or "") + " [broker process exited during the run]"; print(json.dumps(d))' "$line")
        echo "run.sh: $kind exited during $scenario $*; restarting it" >&2
        tail -5 "$WORK/$key.log" >&2 || true
        start "$key" "$kind" "$port"
    fi
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["args"]=sys.argv[2]; d["load1"]=float(open("/proc/loadavg").read().split()[0]); print(json.dumps(d))' \
        "$line" "$scenario $*" >> "$RESULTS"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); keys=["throughput","p99_us","bytes_per_connection","delivery_s","lost","error"]; print("  %-11s %-8s %s" % (d["broker"], d["scenario"], " ".join("%s=%s" % (k, d[k]) for k in keys if d.get(k) is not None)))' "$line"
}

# Scenarios on the long-running brokers: name | mqbench arguments.
STEADY=(
    "fanin --pubs 4 --qos 0 --messages 1000000"
    "fanin --pubs 4 --qos 1 --messages 500000"
    "fanin --pubs 4 --qos 2 --messages 50000"
    "fanout --subs 8 --qos 0 --messages 200000"
    "fanout --subs 8 --qos 1 --messages 100000"
    "latency --rate 10000 --qos 1 --seconds 6 --warmup 1"
)
# Scenarios that get a fresh broker for every run.
FRESH=(
    "idle --connections 10000"
    "retained --count 10000"
)

# --low-load: QoS 1, 64-byte payloads, publishers paced against the clock, one
# QoS 1 subscriber, each run on a freshly started broker (10 s, the first second
# left out of the percentiles).
if [[ $LOW_LOAD == 1 ]]; then
    STEADY=()
    FRESH=(
        "latency --publishers 4 --rate 1000 --qos 1 --seconds 10 --warmup 1"
        "latency --publishers 1 --rate 2000 --qos 1 --seconds 10 --warmup 1"
        "latency --publishers 4 --rate 10000 --qos 1 --seconds 10 --warmup 1"
    )
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
SECONDS=0
start bl broker-lite "$BL_PORT"
start mq mosquitto "$MQ_PORT"
for rep in $(seq "$REPS"); do
    echo "run.sh: round $rep of $REPS"
    for spec in "${STEADY[@]}"; do
        # shellcheck disable=SC2086
        record broker-lite bl "$BL_PORT" $spec
        # shellcheck disable=SC2086
        record mosquitto mq "$MQ_PORT" $spec
    done
    for spec in "${FRESH[@]}"; do
        start blf broker-lite "$BL_FRESH_PORT"
        # shellcheck disable=SC2086
        record broker-lite blf "$BL_FRESH_PORT" $spec
        stop blf
        start mqf mosquitto "$MQ_FRESH_PORT"
        # shellcheck disable=SC2086
        record mosquitto mqf "$MQ_FRESH_PORT" $spec
        stop mqf
    done
done
stop bl
stop mq
DURATION=$SECONDS
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

if [[ $LOW_LOAD == 1 ]]; then
    echo "command: $COMMAND; $STARTED; $REPS rounds; $(nproc) cores; load $LOAD_BEFORE -> $LOAD_AFTER"
    echo "broker-lite $BL_COMMIT; $("$MOSQUITTO" -h 2>&1 | head -1)"
    python3 "$ROOT/bench/low_load.py" "$RESULTS"
    echo "run.sh: raw results in $RESULTS"
    exit 0
fi

if [ -f "$OUT" ]; then cp "$OUT" "$OUT.keep"; fi
python3 "$ROOT/bench/report.py" \
    --results "$RESULTS" \
    --out "$OUT" \
    --command "$COMMAND" \
    --reps "$REPS" \
    --started "$STARTED" \
    --duration "$DURATION" \
    --load-before "$LOAD_BEFORE" \
    --load-after "$LOAD_AFTER" \
    --mosquitto-version "$("$MOSQUITTO" -h 2>&1 | head -1)" \
    --commit "$BL_COMMIT" \
    --rustc "$(rustc --version)" \
    --bl-config "$WORK/bl.yaml" \
    --mq-config "$WORK/mq.conf"

# The report replaces the broker-lite part of the file only: the gateway's sections
# ("# mqgate: ..."), written from their own benchmark programs, are kept.
if [ -f "$OUT.keep" ]; then
    python3 - "$OUT" "$OUT.keep" <<'PY'
import sys
out, kept = sys.argv[1], sys.argv[2]
new = open(out).read().rstrip("\n")
old = open(kept).read()
at = old.find("\n# mqgate:")
rest = old[at:] if at >= 0 else ""
open(out, "w").write(new + "\n" + rest)
PY
    rm -f "$OUT.keep"
fi
echo "run.sh: wrote $OUT (raw results in $RESULTS)"
