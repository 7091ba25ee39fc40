#!/bin/sh
# test.sh -- runs hello.so through redworkd --call, as the daemon would run
# it, and checks the replies: no Redis, no daemon left running.
set -eu
cd "$(dirname "$0")"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/handlers"
cp hello.so "$dir/handlers/"
chmod 755 "$dir/handlers"
cat > "$dir/test.ini" <<INI
[worker]
handlers_dir = $dir/handlers
[handler.hello]
greeting = Hello
INI

fail() { echo "test.sh: FAIL: $*" >&2; exit 1; }

out=$(redworkd -c "$dir/test.ini" --call hello '{"name":"Bob"}') || fail "exit $? for a good request"
case $out in
    *'"ok":true,"result":"Hello, Bob!"'*) ;;
    *) fail "unexpected reply: $out" ;;
esac

status=0
out=$(redworkd -c "$dir/test.ini" --call hello '{}') || status=$?
[ "$status" -eq 1 ] || fail "exit $status for a request without a name (want 1)"
case $out in
    *'"code":"bad_request"'*) ;;
    *) fail "unexpected reply: $out" ;;
esac
echo "test.sh: hello passed"
