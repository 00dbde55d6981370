#!/usr/bin/env bash
# --json output: restic-style keys, exact values, nothing else on stdout.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LONGBOX_REPO=$T/repo
SRC=$T/src
init_repo "$LONGBOX_REPO"
mkdir -p "$SRC"
head -c 100 /dev/zero | tr '\0' a >"$SRC/a"
gen_text 41 5000 >"$SRC/b"
: >"$SRC/c"
size1=5100

# check_json FILE PYTHON: run PYTHON with d = the JSON document in FILE
# (which must hold exactly one document and nothing else but progress
# lines, each a JSON object with "message_type":"status").
check_json() {
        python3 - "$1" "$2" <<'EOF'
import json, re, sys
from datetime import datetime, timezone
lines = open(sys.argv[1]).read().splitlines(keepends=True)
status = [l for l in lines if l.startswith('{"message_type":"status"')]
for l in status:
    if json.loads(l).get("message_type") != "status":
        sys.exit(f"a bad progress line: {l!r}")
text = "".join(l for l in lines if l not in status)
try:
    d = json.loads(text)
except ValueError as e:
    sys.exit(f"not a single JSON document ({e}): {text[:300]!r}")
try:
    exec(sys.argv[2])
except AssertionError as e:
    sys.exit(f"assertion failed: {e}\n  document: {json.dumps(d)[:1000]}")
EOF
}

# --- backup --json -----------------------------------------------------------------
expect_exit 0 lb backup --json --tag daily --tag db --host testhost --time "2024-01-02 03:04:05" "$SRC"
check_json "$LB_OUT" "
assert isinstance(d, dict), 'not an object'
for k in ('snapshot_id', 'files_new', 'files_changed', 'files_unmodified', 'data_added', 'total_bytes_processed'):
    assert k in d, 'missing key ' + k
assert re.fullmatch('[0-9a-f]{64}', d['snapshot_id']), 'snapshot_id is not 64 hex digits'
assert (d['files_new'], d['files_changed'], d['files_unmodified']) == (3, 0, 0), 'first backup: expected 3 new files'
assert d['total_bytes_processed'] == $size1, 'total_bytes_processed != $size1'
assert d['data_added'] > 0, 'data_added == 0'
" || fail "backup --json (first backup)"
ID1=$(json 'd["snapshot_id"]' <"$LB_OUT")
ok "backup --json: one object with the summary of a first backup"

gen_text 42 7000 >"$SRC/b"
echo "new file" >"$SRC/d"
size2=$((100 + 7000 + 9))
expect_exit 0 lb backup --json --tag daily --tag db --host testhost --time "2024-01-03 03:04:05" "$SRC"
check_json "$LB_OUT" "
assert (d['files_new'], d['files_changed'], d['files_unmodified']) == (1, 1, 2), \
    'second backup: expected 1 new, 1 changed, 2 unmodified'
assert d['total_bytes_processed'] == $size2, 'total_bytes_processed != $size2'
" || fail "backup --json (second backup)"
ID2=$(json 'd["snapshot_id"]' <"$LB_OUT")
ok "backup --json: new, changed and unmodified files counted against the parent"

# --- snapshots --json ------------------------------------------------------------------
expect_exit 0 lb snapshots --json
check_json "$LB_OUT" "
assert isinstance(d, list) and len(d) == 2, 'expected an array of 2 snapshots'
by_id = {s['id']: s for s in d}
assert set(by_id) == {'$ID1', '$ID2'}, 'ids differ from the ones backup printed'
want_time = {'$ID1': datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
             '$ID2': datetime(2024, 1, 3, 3, 4, 5, tzinfo=timezone.utc)}
for sid, s in by_id.items():
    for k in ('id', 'short_id', 'time', 'hostname', 'tags', 'paths'):
        assert k in s, 'missing key ' + k
    assert s['short_id'] == sid[:8], 'short_id is not the first 8 hex digits of id'
    assert s['hostname'] == 'testhost', 'hostname'
    assert sorted(s['tags']) == ['daily', 'db'], 'tags'
    assert s['paths'] == ['$SRC'], 'paths'
    t = datetime.fromisoformat(s['time'])
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)  # TZ=UTC
    assert t.replace(microsecond=0) == want_time[sid], 'time ' + s['time'] + ' is not the --time given'
" || fail "snapshots --json"
ok "snapshots --json: id, short_id, time, hostname, tags, paths"

expect_exit 0 lb --json snapshots
check_json "$LB_OUT" "assert isinstance(d, list) and len(d) == 2" || fail "--json before the subcommand"
ok "--json works before the subcommand too"

# --- stats --json ----------------------------------------------------------------------
expect_exit 0 lb stats --json
check_json "$LB_OUT" "
for k in ('total_size', 'total_stored_size', 'dedup_ratio', 'chunk_count', 'snapshots_count'):
    assert k in d, 'missing key ' + k
    assert isinstance(d[k], (int, float)) and not isinstance(d[k], bool), k + ' is not a number'
assert d['snapshots_count'] == 2, 'snapshots_count'
assert d['total_size'] == $size1 + $size2, 'total_size is not the sum of both snapshots'
assert 0 < d['total_stored_size'], 'total_stored_size'
assert d['chunk_count'] >= 3, 'chunk_count'
assert d['dedup_ratio'] > 0, 'dedup_ratio'
" || fail "stats --json"
ok "stats --json: all keys, numeric, exact total_size"

# --- key list --json ---------------------------------------------------------------------
expect_exit 0 lb key list --json
check_json "$LB_OUT" "
assert isinstance(d, list) and len(d) == 1, 'expected one key'
k = d[0]
for f in ('id', 'created', 'label', 'current'):
    assert f in k, 'missing key ' + f
assert k['current'] is True, 'the only key is not current'
" || fail "key list --json (one key)"
LONGBOX_NEW_PASSWORD=other-pass expect_exit 0 lb key add --label extra --insecure-fast-kdf
expect_exit 0 lb key list --json
check_json "$LB_OUT" "
assert len(d) == 2, 'expected two keys'
assert sum(1 for k in d if k['current']) == 1, 'exactly one key must be current'
assert sorted(k['label'] for k in d if not k['current']) == ['extra'], 'label of the added key'
assert len({k['id'] for k in d}) == 2, 'key ids are not distinct'
" || fail "key list --json (two keys)"
ok "key list --json: id, created, label, current"
