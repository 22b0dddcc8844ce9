#!/usr/bin/env bash
# Runs every test, then prints the plain closing line "N passed, N failed, N skipped" counted
# from the JUnit report, each skipped test named with its reason on a line above; exits
# non-zero when a test failed or when nothing ran. The README's test command; with file
# arguments it runs only those files.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh   # Deno and the Debian packages the tests use, when missing
report="$(mktemp -t pctcp-junit.XXXXXX.xml)"
# Tests that skip themselves append "FILE<TAB>REASON" lines here (skipUnless in tests/_assert.ts).
PCTCP_SKIP_LOG="$(mktemp -t pctcp-skips.XXXXXX)"
export PCTCP_SKIP_LOG
t0=$(date +%s)
if [ "$#" -gt 0 ]; then # only the named test files (same flags as the task)
  deno test -A --trace-leaks --junit-path="$report" "$@"
else
  deno task test --junit-path="$report"
fi
rc=$?
secs=$(($(date +%s) - t0))
# Deno 2.9's JUnit report has one <testcase> per test and per step; a failed one holds
# <failure>, an ignored one <skipped/>. Count test cases: the tests= attributes count ignored
# tests too.
summary="$(awk -v skips="$PCTCP_SKIP_LOG" '
  function unxml(s) {
    gsub(/&quot;/, "\"", s); gsub(/&apos;/, "\047", s); gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&amp;/, "\\&", s)
    return s
  }
  function attr(line, key) {
    if (!match(line, key "=\"[^\"]*\"")) return ""
    return substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 3)
  }
  function endcase(  file, why) {
    if (!open) return
    open = 0
    if (state == "failed") { f++; return }
    if (state != "skipped") { p++; return }
    s++
    file = cls; sub(/^\.\//, "", file); why = reason[file]
    printf "skipped: %s (%s): %s\n", name, file, why == "" ? "ignored, no reason recorded" : why
  }
  BEGIN {
    while ((getline l < skips) > 0) {
      split(l, a, "\t"); k = a[1]; sub(/^.*\/tests\//, "tests/", k)
      if (!(k in reason)) reason[k] = a[2]
      else if (index(reason[k], a[2]) == 0) reason[k] = reason[k] "; " a[2]
    }
  }
  /<testcase / { endcase(); open = 1; state = "passed"; name = unxml(attr($0, "name")); cls = attr($0, "classname") }
  /<failure|<error/ { if (open) state = "failed" }
  /<skipped/ { if (open) state = "skipped" }
  END { endcase(); printf "%d passed, %d failed, %d skipped\n", p, f, s }
' "$report" 2>/dev/null)"
rm -f "$report" "$PCTCP_SKIP_LOG"
[ -n "$summary" ] || summary="0 passed, 0 failed, 0 skipped"
echo "$summary" | sed '$d'
echo "tests took ${secs} s" >&2
closing="$(echo "$summary" | tail -n1)"
echo "$closing"
read -r passed _ failed _ _ _ <<<"$closing"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
