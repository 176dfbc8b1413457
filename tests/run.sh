#!/usr/bin/env bash
# Runs every test: checks, unit tests, a short fuzz run, then the integration tests against the real
# Janus and Chromium on the deno UDP backend, then again on the ffi backend. Provisions what they need.
# Prints each runner's output, then (when something failed) each failed test's name and the start of its
# error again, so the end of the output says what failed; and ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
DENO=./node_modules/.bin/deno
[ -x "$DENO" ] || { echo "tests: $DENO is missing: run 'npm ci' first" >&2; exit 1; }

bash tests/provision.sh || exit 1

# The TCP tests hold 1,000 idle connections (both ends in the test process): raise a 1,024 soft limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || echo "tests: warning: only $(ulimit -n) file descriptors; the 1,000-connection test needs about 2,100" >&2

# Each run gets its own TMPDIR: Chromium profiles and Janus configs never outlive it.
export TMPDIR="$(mktemp -d /tmp/xrtc-tests.XXXXXX)"
trap 'rm -rf "$TMPDIR"' EXIT
export XRTC_LOG="${XRTC_LOG:-warn}"
# Screenshots and media-gap timelines the tests leave for a person to look at.
export XRTC_ARTIFACTS="$PWD/tests/artifacts"
rm -rf "$XRTC_ARTIFACTS"

passed=0
failed=0
failures=$(mktemp)
run_suite() {
  local label="$1"; shift
  echo "=== $label"
  local out
  out=$(mktemp)
  "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  # deno test's summary: "ok | 12 passed (3 steps) | 0 failed" or "FAILED | 3 passed | 1 failed"
  local summary
  summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1)
  if [ -z "$summary" ]; then
    echo "tests: $label printed no summary (exit $rc)"
    failed=$((failed + 1))
  else
    passed=$((passed + $(echo "$summary" | sed -E 's/.*\| ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$summary" | sed -E 's/.*\| ([0-9]+) failed.*/\1/')))
    [ "$rc" -eq 0 ] || [ "$(echo "$summary" | sed -E 's/.*\| ([0-9]+) failed.*/\1/')" -gt 0 ] || failed=$((failed + 1))
  fi
  # deno test repeats each failure's error under " ERRORS " and lists the names under " FAILURES ".
  if [ "$rc" -ne 0 ]; then
    {
      echo "--- $label (exit $rc)"
      sed 's/\x1b\[[0-9;]*m//g' "$out" | awk '/^ FAILURES *$/ { f = 1; next } f && / => / { print "failed: " $0 }'
      sed 's/\x1b\[[0-9;]*m//g' "$out" | awk '/^ ERRORS *$/ { e = 1; next } /^ FAILURES *$/ { e = 0 } e' | head -60
      [ -n "$summary" ] || tail -20 "$out"
    } >>"$failures"
  fi
  rm -f "$out"
}

run_suite "check: fmt, lint, types" bash -c "$DENO fmt --check >/dev/null && $DENO lint >/dev/null && $DENO check main.ts src/ tests/ bench/ && echo 'ok | 1 passed | 0 failed'"
run_suite "unit tests (src/, bench/)" "$DENO" test -A src/ bench/
run_suite "fuzz, short run (20,000 inputs per target)" bash -c "$DENO run -A tests/fuzz/run.ts --count 20000 && echo 'ok | 1 passed | 0 failed'"
run_suite "integration tests, deno UDP backend" env XRTC_TEST_IO=deno "$DENO" test -A --ignore=tests/workers_test.ts tests/
# workers_test.ts needs SO_REUSEPORT, so FFI only; hardening_test.ts's flood needs the batched backend's rate.
# WHIP, the cluster, crashes and upgrades, and what operators see run here too: ffi is what io_backend auto
# gives on Linux, with the media on a worker thread.
run_suite "integration tests, ffi UDP backend" env XRTC_TEST_IO=ffi "$DENO" test -A tests/half_proxy_test.ts tests/tcp_port_test.ts tests/full_proxy_test.ts tests/workers_test.ts tests/hardening_test.ts tests/whip_test.ts tests/cluster_test.ts tests/lifecycle_test.ts tests/observability_test.ts

echo
if [ -s "$failures" ]; then
  echo "=== what failed"
  cat "$failures"
  echo
fi
rm -f "$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
