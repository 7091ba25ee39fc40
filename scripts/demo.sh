#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and stop run from a trap
# scripts/demo.sh -- the `make demo` job: the seed's requests, end to end.
#
# Uses the Redis server named in etc/redwork.ini if it answers PING, else
# starts a throwaway redis-server (no persistence) in a temporary folder.
# Starts bin/redworkd -c etc/redwork.ini, waits until its heartbeat key
# redwork:worker:<id> shows its pid, sends three requests with
# examples/python/redwork_client.py and checks each reply. On exit it stops
# what it started (SIGTERM, bounded wait) and removes the temporary folder.
# Exit status: 0 when every reply is right and redworkd exited 0, else 1.
set -u

cd "$(dirname "$0")/.." || exit 1

INI=etc/redwork.ini
PY=${PYTHON:-/usr/bin/python3}
CLIENT=examples/python/redwork_client.py

TMP=$(mktemp -d "${TMPDIR:-/tmp}/redwork-demo.XXXXXX") || exit 1
REDIS_PID=
DAEMON_PID=
FAILED=0

say() { printf '%s\n' "$*"; }
fail() { say "demo: FAIL: $*" >&2; FAILED=1; }

# ini_get SECTION KEY DEFAULT: the value of KEY in [SECTION] of $INI.
ini_get() {
    local v
    v=$(awk -v s="$1" -v k="$2" '
        /^[ \t]*[;#]/ { next }
        /^[ \t]*\[/ { sec = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", sec); next }
        sec == s && index($0, "=") {
            i = index($0, "=")
            key = substr($0, 1, i - 1); val = substr($0, i + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", key); gsub(/^[ \t]+|[ \t]+$/, "", val)
            if (key == k) { print val; exit }
        }' "$INI")
    printf '%s\n' "${v:-$3}"
}

# alive PID: true while PID runs (a zombie counts as gone).
alive() {
    [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop PID NAME SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL.
# Returns the process's exit status.
stop() {
    local pid=$1 name=$2 n=$(($3 * 10))
    kill -TERM "$pid" 2>/dev/null
    while alive "$pid" && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    if alive "$pid"; then
        say "demo: $name did not stop in $3 s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
}

cleanup() {
    local rc=$? st
    trap - EXIT INT TERM
    if [ -n "$DAEMON_PID" ]; then
        say "== stopping redworkd (pid $DAEMON_PID) with SIGTERM"
        stop "$DAEMON_PID" redworkd 15
        st=$?
        if [ "$st" -ne 0 ]; then
            say "demo: FAIL: redworkd exited $st after SIGTERM (expected 0)" >&2
            rc=1
        else
            say "   redworkd exited 0"
        fi
        if [ "$rc" -ne 0 ] && [ -s "$TMP/redworkd.log" ]; then
            say "-- redworkd log --------------------------------------------"
            cat "$TMP/redworkd.log"
            say "------------------------------------------------------------"
        fi
    fi
    if [ -n "$REDIS_PID" ]; then
        say "== stopping the throwaway redis-server (pid $REDIS_PID)"
        stop "$REDIS_PID" redis-server 5 || true
    fi
    rm -rf "$TMP"
    if [ "$rc" -eq 0 ]; then say "demo: all replies correct"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

HOST=$(ini_get redis host 127.0.0.1)
PORT=$(ini_get redis port 6379)
DB=$(ini_get redis db 0)
CLI=(redis-cli -h "$HOST" -p "$PORT")

for f in bin/redworkd "$CLIENT" "$INI"; do
    [ -e "$f" ] || { say "demo: $f is missing (run 'make demo', not this script alone)" >&2; exit 1; }
done
command -v redis-cli >/dev/null || { say "demo: redis-cli not found (run 'make deps')" >&2; exit 1; }
"$PY" -c 'import redis' 2>/dev/null || { say "demo: $PY cannot import redis (run 'make deps')" >&2; exit 1; }

# ---- Redis -------------------------------------------------------------
if [ "$("${CLI[@]}" ping 2>/dev/null)" = PONG ]; then
    say "== using the Redis server at $HOST:$PORT"
else
    case "$HOST" in
        127.0.0.1|localhost|::1) ;;
        *) say "demo: no Redis answers at $HOST:$PORT, and it is not local" >&2; exit 1 ;;
    esac
    say "== starting a throwaway redis-server on 127.0.0.1:$PORT (in $TMP)"
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    n=50
    until [ "$("${CLI[@]}" ping 2>/dev/null)" = PONG ]; do
        if ! alive "$REDIS_PID" || [ "$n" -le 0 ]; then
            say "demo: redis-server did not come up on port $PORT:" >&2
            tail -n 20 "$TMP/redis.log" >&2
            exit 1
        fi
        sleep 0.1; n=$((n - 1))
    done
fi

# ---- the daemon ----------------------------------------------------------
say "== starting bin/redworkd -c $INI"
bin/redworkd -c "$INI" >"$TMP/redworkd.log" 2>&1 &
DAEMON_PID=$!

# Ready when a heartbeat key redwork:worker:* carries our daemon's pid: the
# daemon writes it once it is subscribed.
ready=
n=100
while [ "$n" -gt 0 ]; do
    if ! alive "$DAEMON_PID"; then
        wait "$DAEMON_PID"; st=$?
        DAEMON_PID=
        say "demo: redworkd exited $st at start:" >&2
        cat "$TMP/redworkd.log" >&2
        exit 1
    fi
    for key in $("${CLI[@]}" -n "$DB" --scan --pattern 'redwork:worker:*' 2>/dev/null); do
        if [ "$("${CLI[@]}" -n "$DB" hget "$key" pid 2>/dev/null)" = "$DAEMON_PID" ]; then
            ready=$key
            break 2
        fi
    done
    sleep 0.1; n=$((n - 1))
done
if [ -z "$ready" ]; then
    say "demo: redworkd (pid $DAEMON_PID) wrote no heartbeat key within 10 s" >&2
    exit 1
fi
say "   ready: heartbeat key $ready (pid $DAEMON_PID)"

# ---- the requests ----------------------------------------------------------
# send N TITLE CHANNEL JSON CHECK WHAT: sends JSON on CHANNEL, prints the
# reply, and checks it with the Python expression CHECK (on the reply r).
send() {
    local reply
    say ""
    say "[$1] $2"
    say "    PUBLISH $3 $4"
    reply=$("$PY" "$CLIENT" --host "$HOST" --port "$PORT" --timeout 5 "$3" "$4" 2>&1)
    say "    reply:  $reply"
    if "$PY" -c 'import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if isinstance(r, dict) and eval(sys.argv[2]) else 1)' "$reply" "$5" 2>/dev/null
    then
        say "    ok: $6"
    else
        fail "request $1: expected $6"
    fi
}

stamp=$(date +%s%3N)

send 1 "the seed's request on 'request', routed to greet by default_handler" \
    request "{\"user_id\":\"Alice\",\"req_id\":$stamp}" \
    "r['ok'] is True and r['req_id'] == $stamp and r['result'] == 'Hello, Alice!'" \
    'result "Hello, Alice!"'

send 2 "a request on 'news_sports': pattern news_*, routed to echo by [routes]" \
    news_sports "{\"req_id\":\"demo-$stamp-news\",\"headline\":\"Redwork 1-0 Seed\"}" \
    "r['ok'] is True and r['handler'] == 'echo' and r['result'] == {'headline': 'Redwork 1-0 Seed'}" \
    'the request echoed back without its req_id'

send 3 "a typo in the handler name" \
    request "{\"req_id\":\"demo-$stamp-typo\",\"handler\":\"gret\",\"user_id\":\"Alice\"}" \
    "r['ok'] is False and r['error']['code'] == 'unknown_handler'" \
    'error unknown_handler'

say ""
exit "$FAILED"
