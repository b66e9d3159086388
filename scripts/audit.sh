#!/usr/bin/env bash
# The no-panic audit of the library (SECURITY.md, "Arithmetic and indexing reviewed"), as a
# check that cannot go stale. scripts/test.sh runs it.
#
#   scripts/audit.sh            check
#   scripts/audit.sh --update   record the current sites as reviewed (scripts/audit-sites.txt)
#
# 1. No `unwrap`, `expect`, `panic!`, `unreachable!`, `todo!` or `unimplemented!` in library
#    code: clippy's restriction lints deny them (a reviewed exception carries
#    `#[allow(clippy::..., reason = "...")]` at its site).
# 2. Indexing, slicing and arithmetic that could panic or overflow are counted per file
#    (clippy::indexing_slicing, arithmetic_side_effects, string_slice) and compared with
#    scripts/audit-sites.txt. A file with more sites than recorded fails the check: read the new
#    sites (each must be guarded by a check just before it, or index the broker's own tables),
#    then run `scripts/audit.sh --update` and commit the new counts with the change.
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE=scripts/audit-sites.txt
DENY=(-D clippy::unwrap_used -D clippy::expect_used -D clippy::panic -D clippy::unreachable
  -D clippy::todo -D clippy::unimplemented)
COUNT=(-W clippy::indexing_slicing -W clippy::arithmetic_side_effects -W clippy::string_slice)

# A target directory of its own: the restriction lints would otherwise invalidate the cached
# results of the ordinary clippy run (and the other way round) every time.
out=$(cargo clippy --lib --target-dir target/audit --message-format=short -- \
  "${DENY[@]}" "${COUNT[@]}" 2>&1) || {
  echo "$out" | grep -E '^(src/|error)' >&2 || echo "$out" >&2
  echo "audit: library code must not unwrap, expect or panic (see SECURITY.md)" >&2
  exit 1
}
now=$(echo "$out" | grep -E '^src/[^:]+:[0-9]+:[0-9]+: warning: ' | cut -d: -f1 | sort | uniq -c |
  awk '{print $2, $1}')

if [ "${1:-}" = --update ]; then
  {
    echo "# Reviewed indexing, slicing and arithmetic sites per file: scripts/audit.sh --update"
    echo "$now"
  } >"$BASELINE"
  echo "audit: $(echo "$now" | awk '{n += $2} END {print n}') sites recorded in $BASELINE"
  exit 0
fi

status=0
while read -r file n; do
  [ -n "$file" ] || continue
  was=$(awk -v f="$file" '$1 == f {print $2}' "$BASELINE")
  was=${was:-0}
  if [ "$n" -gt "$was" ]; then
    echo "audit: $file has $n indexing/slicing/arithmetic sites, $was reviewed:" >&2
    echo "$out" | grep -E "^$file:[0-9]+:[0-9]+: warning: " >&2
    status=1
  fi
done <<<"$now"
if [ $status -ne 0 ]; then
  echo "audit: read the new sites (SECURITY.md), then run scripts/audit.sh --update" >&2
  exit 1
fi
echo "audit: no unwrap/expect/panic in the library; $(echo "$now" | awk '{n += $2} END {print n}') indexing/arithmetic sites, none unreviewed"
