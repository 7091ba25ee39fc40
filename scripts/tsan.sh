#!/usr/bin/env bash
# scripts/tsan.sh -- `make tsan`: the concurrency tests with the daemon and
# the redwork command (so libredwork too) built with ThreadSanitizer.
#
# Criterion cannot start under TSan, so the test programs stay plain: they
# drive a TSan-built bin/redworkd and bin/redwork, which exit 66 at the
# first data race (halt_on_error), failing the test that saw it. Abandoned
# handler threads after a shutdown timeout are by design, so thread leaks
# are not reported. The plain binaries are rebuilt at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

restore() { rm -f bin/redworkd bin/redwork lib/libredwork.a lib/libredwork.so; make -s all; }
trap restore EXIT

tests=${TSAN_TESTS:-daemon scale stream cli sdk}
make -s all test-plugins $(for t in $tests; do echo build/tests/integration/test_$t; done)
rm -f bin/redworkd bin/redwork lib/libredwork.a
make -s SANITIZE=thread B=build/tsan bin/redworkd bin/redwork
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 report_thread_leaks=0 second_deadlock_stack=1"
make -s test-integration INTEGRATION_TESTS="$tests"
echo "tsan.sh: no data race reported"
