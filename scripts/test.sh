#!/usr/bin/env bash
# Runs every test, then prints the plain closing line "N passed, N failed" counted from
# the JUnit report; exits non-zero when a test failed. The README's test command.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh   # Deno and the Debian packages the tests use, when missing
report="$(mktemp -t pctcp-junit.XXXXXX.xml)"
deno task test --junit-path="$report" "$@"
rc=$?
# Deno's JUnit report: one <testsuites tests="N" failures="F" errors="E"> element.
head="$(grep -m1 -o '<testsuites[^>]*>' "$report" 2>/dev/null || true)"
attr() { echo "$head" | grep -o "$1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
total=$(attr tests); failures=$(attr failures); errors=$(attr errors)
failed=$((failures + errors))
passed=$((total - failed))
rm -f "$report"
echo "$passed passed, $failed failed"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$total" -eq 0 ]; then exit 1; fi
