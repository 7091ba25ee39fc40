#!/usr/bin/env bash
# scripts/valgrind.sh -- `make valgrind`: memcheck of redworkd serving
# 10,000 requests (and some bad input) against a throwaway redis-server,
# then shutting down on SIGTERM. Passes only with 0 errors and 0 bytes
# definitely lost. Every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d /tmp/redwork-valgrind.XXXXXX)
redis_pid= daemon_pid=
cleanup() {
    [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

# redis_says REPLY ARGS...: 1 if `redis-cli ARGS` answers REPLY.
redis_says() {
    local want=$1; shift
    [ "$(redis-cli -p "$port" "$@" 2>/dev/null)" = "$want" ]
}

# wait_for SECONDS COMMAND...: runs COMMAND until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || { echo "valgrind.sh: timed out waiting for: $*" >&2; return 1; }
        sleep 0.1
    done
}

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" &
redis_pid=$!
wait_for 10 redis_says PONG ping

cat > "$tmp/vg.ini" <<INI
[redis]
port = $port
[worker]
id = valgrind
channels = request, news_*
default_handler = greet
threads = 2
claim = on
reply_store = list
shutdown_timeout_ms = 8000
handlers_dir = $PWD/handlers
[routes]
news_* = echo
INI

TMPDIR=$tmp valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --log-file="$tmp/memcheck.log" bin/redworkd -c "$tmp/vg.ini" 2> "$tmp/daemon.log" &
daemon_pid=$!
wait_for 60 redis_says 1 exists redwork:worker:valgrind

echo "== valgrind: 10000 echo requests through a daemon under memcheck"
bin/redwork --port "$port" --timeout 60000 bench --requests 10000 --concurrency 16 --json
# Every kind of bad input once, and the other paths: routing, errors.
for body in 'not json' '[1,2]' '{"no":"id"}' '{"req_id":"a b"}' '{"req_id":"b1","handler":5}' \
            '{"req_id":"b2","handler":"gret"}' '{"req_id":"b3","handler":"fail"}' \
            '{"req_id":"b4","user_id":"Alice"}' '{"req_id":"b5","timeout_ms":0,"handler":"sleep","ms":1}'; do
    redis-cli -p "$port" publish request "$body" >/dev/null
done
redis-cli -p "$port" publish news_sports '{"req_id":"b6","x":1}' >/dev/null
wait_for 60 redis_says 1 exists callback:b6
# Deferred replies: finished, timed out (its late finish dropped at the
# handler's fini), and one still open when the drain begins.
for body in '{"req_id":"d1","handler":"delay","ms":10}' \
            '{"req_id":"d2","handler":"delay","ms":4000,"timeout_ms":50}' \
            '{"req_id":"d3","handler":"delay","ms":1500}'; do
    redis-cli -p "$port" publish request "$body" >/dev/null
done
wait_for 60 redis_says 1 exists callback:d2
kill -HUP "$daemon_pid" # a reload too
sleep 1

kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=
grep -E "ERROR SUMMARY|definitely lost|All heap blocks" "$tmp/memcheck.log" || true
if [ "$status" -ne 0 ]; then
    echo "valgrind.sh: redworkd under memcheck exited $status" >&2
    sed -n '/Invalid\|uninitialised\|definitely lost in/,+15p' "$tmp/memcheck.log" | head -80 >&2
    exit 1
fi
grep -q "ERROR SUMMARY: 0 errors" "$tmp/memcheck.log"
redis_says 1 exists callback:d3 || { echo "valgrind.sh: the drain did not wait for d3" >&2; exit 1; }

echo "== valgrind: redworkd --call, a deferred reply and its timeout"
for req in '{"ms":10}' '{"ms":4000,"timeout_ms":50}'; do
    status=0
    TMPDIR=$tmp valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
        --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        --log-file="$tmp/memcheck-call.log" bin/redworkd -c "$tmp/vg.ini" --call delay "$req" \
        2> "$tmp/call.log" || status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then # 1: an error reply, the timeout
        echo "valgrind.sh: redworkd --call delay '$req' under memcheck exited $status" >&2
        sed -n '/Invalid\|uninitialised\|definitely lost in/,+15p' "$tmp/memcheck-call.log" | head -80 >&2
        exit 1
    fi
done
echo "valgrind.sh: 0 errors, 0 bytes definitely lost"
