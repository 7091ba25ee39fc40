#!/bin/bash
# deb-test.sh -- test the Debian packages as an operator would use them.
#
#   scripts/deb-test.sh [DIR]     (as root; DIR holds the .debs, default:
#                                  the folder above this checkout, where
#                                  dpkg-buildpackage writes them)
#
# It installs redwork, libredwork0 and libredwork-dev with dpkg (their
# dependencies must already be installed: nothing is fetched), runs the
# packaged daemon as the packaged user against a throwaway redis-server,
# calls shipped handlers with the packaged command, builds the README's
# tutorial handler and a small client program against libredwork-dev, then
# purges the packages and checks that none of their files is left.
# One line per step; exit 0 only if every step passed. On failure the
# daemon's log is shown and the packages are purged anyway (KEEP=1 keeps
# them installed, to look around).
set -euo pipefail
set -E

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(dirname "$HERE")
DEB_DIR=${1:-$(dirname "$TOP")}
README=$TOP/README.md
PACKAGES=(redwork libredwork0 libredwork-dev)
INI=/etc/redwork/redwork.ini
WANTS_LINK=/etc/systemd/system/multi-user.target.wants/redworkd.service
CALL_TIMEOUT_MS=5000

TMP=$(mktemp -d /tmp/redwork-deb-test.XXXXXX)
REDIS_PID=
DAEMON_PID=
INSTALLED=0
HELLO_SO=
STEP="setup"

ok() { echo "ok   $STEP${1:+: $1}"; }
fail() {
    echo "FAIL $STEP: $*" >&2
    exit 1
}
trap 'fail "command failed (line $LINENO): $BASH_COMMAND"' ERR

# Is PID a live process (not gone, not a zombie waiting to be reaped)?
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# until_ok SECONDS WHAT COMMAND...: run COMMAND every 0.1 s until it
# succeeds; fail naming WHAT after SECONDS.
until_ok() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${secs} s"
        sleep 0.1
    done
}

# stop PID SECONDS: SIGTERM, wait up to SECONDS for it to exit, then
# SIGKILL. Sets STOPPED to its exit status (it is this shell's child).
STOPPED=
stop() {
    local pid=$1 secs=$2 deadline
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + secs))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    STOPPED=0
    wait "$pid" 2>/dev/null || STOPPED=$?
}

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if [ -n "$DAEMON_PID" ]; then
        stop "$DAEMON_PID" 20
    fi
    if [ "$rc" -ne 0 ] && [ -s "$TMP/redworkd.log" ]; then
        echo "--- the daemon's log (last 30 lines)" >&2
        tail -n 30 "$TMP/redworkd.log" >&2
    fi
    if [ -n "$REDIS_PID" ]; then
        stop "$REDIS_PID" 10
    fi
    [ -z "$HELLO_SO" ] || rm -f "$HELLO_SO"
    if [ "$INSTALLED" = 1 ] && [ "${KEEP:-0}" != 1 ]; then
        dpkg --purge "${PACKAGES[@]}" >"$TMP/purge-on-exit.log" 2>&1 ||
            { echo "cleanup: dpkg --purge failed:" >&2; cat "$TMP/purge-on-exit.log" >&2; }
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT

# What this script needs, and where it stands.
[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i, and the daemon runs as the redwork user)"
for tool in dpkg dpkg-query redis-server redis-cli python3 cc pkg-config setpriv readelf; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done
[ -r "$README" ] || fail "$README not found: the tutorial handler comes from it"
for p in "${PACKAGES[@]}"; do
    if dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
        fail "$p is already installed: purge it first (dpkg --purge ${PACKAGES[*]})"
    fi
done
[ ! -e /etc/redwork ] || fail "/etc/redwork exists and no package owns it (an earlier make install?)"

# ---------------------------------------------------------------------------
STEP="1/7 install"
arch=$(dpkg --print-architecture)
debs=()
for p in "${PACKAGES[@]}"; do
    shopt -s nullglob
    found=("$DEB_DIR/${p}_"*"_${arch}.deb")
    shopt -u nullglob
    [ "${#found[@]}" -eq 1 ] ||
        fail "want one ${p}_*_${arch}.deb in $DEB_DIR, found ${#found[@]}"
    debs+=("${found[0]}")
done
INSTALLED=1
if ! DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[@]}" >"$TMP/dpkg.log" 2>&1; then
    cat "$TMP/dpkg.log" >&2
    fail "dpkg -i failed (dependencies are not fetched: install them first)"
fi
for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$p")" = installed ] || fail "$p is not installed"
done
getent passwd redwork >/dev/null || fail "no redwork user"
getent group redwork >/dev/null || fail "no redwork group"
[ "$(getent passwd redwork | cut -d: -f6)" = /nonexistent ] || fail "redwork's home is not /nonexistent"
grep -qx "$INI" /var/lib/dpkg/info/redwork.conffiles || fail "$INI is not a conffile"
[ -L "$WANTS_LINK" ] || fail "redworkd.service is not enabled ($WANTS_LINK missing)"
ok "$(cd "$DEB_DIR" && echo "${debs[@]##*/}"); user redwork, $INI a conffile, redworkd.service enabled"

# ---------------------------------------------------------------------------
STEP="2/7 redis-server"
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = PONG ]; }
redis_up_or_dead() { redis_up || ! alive "$REDIS_PID"; }
for _ in 1 2 3 4 5; do
    # A port the kernel has just handed out and taken back: free unless
    # someone takes it in between, in which case redis-server exits and
    # the next try takes another.
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    until_ok 10 "redis-server on port $PORT answering PING" redis_up_or_dead
    if redis_up; then break; fi
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
done
[ -n "$REDIS_PID" ] || fail "no redis-server started in 5 tries: $(tail -n 3 "$TMP/redis.log")"
ok "pid $REDIS_PID on 127.0.0.1:$PORT"

# ---------------------------------------------------------------------------
STEP="3/7 redworkd as user redwork"
# As an operator would: point [redis] port at this server.
sed -i -E '/^\[redis\]/,/^\[/ s/^port[[:space:]]*=.*/port = '"$PORT"'/' "$INI"
[ "$(sed -n '/^\[redis\]/,/^\[/ s/^port[[:space:]]*=[[:space:]]*//p' "$INI")" = "$PORT" ] ||
    fail "could not set port = $PORT in [redis] of $INI"
setpriv --reuid=redwork --regid=redwork --init-groups -- /usr/sbin/redworkd -t -c "$INI" \
    >"$TMP/check.log" 2>&1 || fail "redworkd -t -c $INI: $(cat "$TMP/check.log")"
# exec all the way down: $! is redworkd itself. No inherited NOTIFY_SOCKET
# (a CI runner under systemd) and no TMPDIR the user cannot write.
(cd / && exec env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID -u TMPDIR \
    setpriv --reuid=redwork --regid=redwork --init-groups -- \
    /usr/sbin/redworkd -c "$INI") >"$TMP/redworkd.log" 2>&1 &
DAEMON_PID=$!
daemon_ready() {
    alive "$DAEMON_PID" || fail "redworkd exited: $(tail -n 5 "$TMP/redworkd.log")"
    grep -q ' ready: ' "$TMP/redworkd.log"
}
until_ok 20 "redworkd logging ready" daemon_ready
user=$(stat -c %U "/proc/$DAEMON_PID")
[ "$user" = redwork ] || fail "redworkd runs as '$user', not redwork"
[ "$(readlink "/proc/$DAEMON_PID/exe")" = /usr/sbin/redworkd ] ||
    fail "pid $DAEMON_PID is $(readlink "/proc/$DAEMON_PID/exe"), not /usr/sbin/redworkd"
ok "pid $DAEMON_PID, user $user: $(grep -o 'ready: .*' "$TMP/redworkd.log" | head -n 1)"

# ---------------------------------------------------------------------------
STEP="4/7 shipped handlers"
# call HANDLER JSON: the packaged command's reply, in $TMP/reply.json;
# returns its exit status.
call() {
    timeout 30 /usr/bin/redwork -c "$INI" --timeout "$CALL_TIMEOUT_MS" call "$1" "$2" \
        >"$TMP/reply.json" 2>"$TMP/call.err"
}
# reply_is PYTHON_EXPR: the reply envelope, as r, passes the check.
reply_is() {
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ('"$1"') else 1)' \
        "$TMP/reply.json" 2>/dev/null
}
call echo '{"x":1}' || fail "redwork call echo: exit $?: $(cat "$TMP/call.err")"
reply_is 'r["ok"] is True and r["handler"] == "echo" and r["result"]["x"] == 1' ||
    fail "echo's reply: $(cat "$TMP/reply.json")"
call greet '{"user_id":"Alice"}' || fail "redwork call greet: exit $?: $(cat "$TMP/call.err")"
reply_is 'r["ok"] is True and r["result"] == "Hello, Alice!"' ||
    fail "greet's reply: $(cat "$TMP/reply.json")"
ok 'echo {"x":1} -> {"x":1,...}; greet -> "Hello, Alice!"'

# ---------------------------------------------------------------------------
STEP="5/7 README tutorial handler"
# The exact code the README's "Write a handler in 5 minutes" shows in step 2
# (not examples/handler/hello.c, which reads a greeting from its section).
awk '/^\*\*2\. Write `handlers\/hello\.c`:\*\*$/ { f = 1; next }
     f == 1 && /^```c$/ { f = 2; next }
     f == 2 && /^```$/ { exit }
     f == 2 { print }' "$README" >"$TMP/hello.c"
grep -q 'REDWORK_HANDLER' "$TMP/hello.c" ||
    fail "no handler code found under '**2. Write \`handlers/hello.c\`:**' in $README"
# The README's own command, against the installed SDK.
# shellcheck disable=SC2046 # pkg-config prints several words
(cd "$TMP" && cc -shared -fPIC -o hello.so hello.c $(pkg-config --cflags --libs redwork-handler)) \
    >"$TMP/cc.log" 2>&1 || fail "cc hello.c: $(cat "$TMP/cc.log")"
handlersdir=$(pkg-config --variable=handlersdir redwork-handler)
ini_dir=$(sed -n 's/^handlers_dir[[:space:]]*=[[:space:]]*//p' "$INI")
[ "$handlersdir" = "$ini_dir" ] ||
    fail "pkg-config's handlersdir $handlersdir is not the ini's handlers_dir $ini_dir"
HELLO_SO=$handlersdir/hello.so
install -m 755 "$TMP/hello.so" "$HELLO_SO"
kill -HUP "$DAEMON_PID"
hello_answers() {
    alive "$DAEMON_PID" || fail "redworkd exited after SIGHUP"
    call hello '{"name":"Bob"}' && reply_is 'r["ok"] is True and r["result"] == "Hi, Bob!"'
}
until_ok 20 "hello answering after SIGHUP" hello_answers
status=0
call hello '{}' || status=$?
[ "$status" = 1 ] && reply_is 'r["ok"] is False and r["error"]["code"] == "bad_request"' ||
    fail "hello without a name: exit $status, $(cat "$TMP/reply.json")"
ok "built with pkg-config redwork-handler into $handlersdir, SIGHUP: hello -> \"Hi, Bob!\", no name -> bad_request"

# ---------------------------------------------------------------------------
STEP="6/7 client program"
cat >"$TMP/client.c" <<'EOF'
/* One call through libredwork, configured from the daemons' ini. */
#include <stdio.h>

#include <redwork/client.h>

int main(int argc, char **argv) {
    if (argc != 2)
        return 64;
    redwork_client_options opt;
    redwork_client_options_init(&opt);
    char err[256];
    if (redwork_client_options_load(&opt, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 78;
    }
    redwork_client *c = redwork_client_open(&opt, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        return 69;
    }
    redwork_result res;
    redwork_status st = redwork_call(c, "greet", "{\"user_id\":\"Carol\"}", 5000, &res);
    if (st == REDWORK_OK)
        printf("%s\n", res.result);
    else
        fprintf(stderr, "%s: %s\n", res.error_code ? res.error_code : "?",
                res.error_message ? res.error_message : "");
    redwork_result_free(&res);
    redwork_client_close(c);
    return st == REDWORK_OK ? 0 : 1;
}
EOF
# shellcheck disable=SC2046
(cd "$TMP" && cc -o client client.c $(pkg-config --cflags --libs redwork-client)) \
    >"$TMP/cc.log" 2>&1 || fail "cc client.c: $(cat "$TMP/cc.log")"
readelf -d "$TMP/client" | grep -q 'NEEDED.*\[libredwork\.so\.0\]' ||
    fail "client is not linked to libredwork.so.0: $(readelf -d "$TMP/client" | grep NEEDED)"
libpath=$(ldd "$TMP/client" | awk '$1 == "libredwork.so.0" { print $3 }')
# (by real path: with merged /usr, ld.so finds it under /lib)
dpkg -L libredwork0 | xargs -r readlink -f | grep -qxF "$(readlink -f "$libpath")" ||
    fail "libredwork.so.0 resolves to $libpath, not libredwork0's"
out=$(timeout 30 "$TMP/client" "$INI" 2>"$TMP/client.err") ||
    fail "client: exit $?: $(cat "$TMP/client.err")"
[ "$out" = '"Hello, Carol!"' ] || fail "client printed $out"
ok "NEEDED libredwork.so.0 ($libpath), greet -> \"Hello, Carol!\""

# ---------------------------------------------------------------------------
STEP="7/7 stop and purge"
stop "$DAEMON_PID" 20
DAEMON_PID=
[ "$STOPPED" = 0 ] || fail "redworkd exited $STOPPED on SIGTERM: $(tail -n 5 "$TMP/redworkd.log")"
for p in "${PACKAGES[@]}"; do dpkg -L "$p"; done | sort -u >"$TMP/files.list"
# hello.so is the operator's, not the package's: theirs to remove.
rm -f "$HELLO_SO"
HELLO_SO=
dpkg --purge "${PACKAGES[@]}" >"$TMP/purge.log" 2>&1 ||
    fail "dpkg --purge: $(cat "$TMP/purge.log")"
INSTALLED=0
grep -i 'warning' "$TMP/purge.log" >&2 && fail "dpkg --purge warned (above)"
for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || echo not-installed)" = not-installed ] ||
        fail "$p is still known to dpkg after the purge"
done
left=()
while IFS= read -r f; do
    [ "$f" != /. ] || continue
    if [ -d "$f" ]; then         # (or a link to one: /lib with merged /usr)
        dpkg-query -S "$f" >/dev/null 2>&1 ||
            left+=("$f/")        # a folder no other package has
    elif [ -e "$f" ] || [ -L "$f" ]; then
        left+=("$f")             # a file or link of the packages
    fi
done <"$TMP/files.list"
[ "${#left[@]}" -eq 0 ] || fail "left after the purge: ${left[*]}"
[ ! -e /etc/redwork ] || fail "/etc/redwork is still there: $(ls -A /etc/redwork)"
[ ! -e "$WANTS_LINK" ] && [ ! -L "$WANTS_LINK" ] || fail "$WANTS_LINK is still there"
# The redwork user and group stay: Debian does not remove system users on
# purge (files they own elsewhere must not pass to a later user of the uid).
ok "redworkd exited 0 on SIGTERM; $(wc -l <"$TMP/files.list") paths of the 3 packages: none left, /etc/redwork gone, unit no longer enabled"
