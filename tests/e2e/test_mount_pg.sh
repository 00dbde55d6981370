#!/usr/bin/env bash
# longbox mount of a PostgreSQL snapshot (real FUSE, real PostgreSQL):
# <db>/restore.sql is byte for byte what `restore SNAP --sql` writes
# (whole-file cmp and random-range reads); `psql -f` of it straight from
# the mount gives a database equal to the source (pg_lib.sh's comparison);
# tables/<db>/<schema>.<table>/ holds one version per snapshot, each equal
# to `dump` of that table's data file.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -e /dev/fuse ]] || ! command -v fusermount3 >/dev/null; then
        [[ ${CI:-} == true ]] && fail "FUSE is not available (/dev/fuse, fusermount3); CI must have it"
        skip "FUSE is not available here (/dev/fuse or fusermount3 missing)"
        exit 77
fi
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

SRC=lbt_mnt_src
pg_load_testdb "$SRC" 20000
ok "test database $SRC loaded"

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"
expect_exit 0 lb backup --db "$(pg_conninfo "$SRC")" --json
SNAP1=$(json 'd["snapshot_id"]' <"$LB_OUT")
psql_db "$SRC" -c "UPDATE bulk.ledger SET memo = 'night two' WHERE id % 50 = 0" >/dev/null
expect_exit 0 lb backup --db "$(pg_conninfo "$SRC")" --json
SNAP2=$(json 'd["snapshot_id"]' <"$LB_OUT")
ok "two backups of $SRC"

M=$T/mnt
mkdir "$M"
register_mount "$M"
"$LONGBOX" mount "$M" >"$T/mount.out" 2>"$T/mount.err" &
PID=$!
register_pid "$PID"
wait_for 10 is_mounted "$M" || { cat "$T/mount.err"; fail "the mount did not appear"; }
wait_for 10 test -d "$M/snapshots" || fail "no snapshots/ in the mount"

N2=$(ls "$M/snapshots" | grep "_${SNAP2:0:8}$") || fail "snapshot ${SNAP2:0:8} not in snapshots/"
N1=$(ls "$M/snapshots" | grep "_${SNAP1:0:8}$") || fail "snapshot ${SNAP1:0:8} not in snapshots/"
R=$M/snapshots/$N2/$SRC/restore.sql
[[ -f $R ]] || fail "no $SRC/restore.sql in the snapshot (ls: $(ls "$M/snapshots/$N2/$SRC"))"
ls "$M/snapshots/$N2/$SRC" | grep -qx restore.sql || fail "restore.sql is not listed in the database directory"
[[ ! -e $M/snapshots/$N2/config/restore.sql ]] || fail "restore.sql shows up outside the database directory"

lb restore "$SNAP2" --sql >"$T/restore.sql" 2>"$T/restore-sql.err" || { cat "$T/restore-sql.err"; fail "restore --sql failed"; }
[[ $(stat -c %s "$R") == $(stat -c %s "$T/restore.sql") ]] ||
        fail "restore.sql has $(stat -c %s "$R") bytes, restore --sql wrote $(stat -c %s "$T/restore.sql")"
cmp "$R" "$T/restore.sql" || fail "restore.sql in the mount differs from restore --sql"
ok "restore.sql ($(stat -c %s "$R") bytes) is byte for byte restore --sql's output"

python3 - "$R" "$T/restore.sql" <<'PY' || fail "random reads of restore.sql differ from restore --sql"
import os, random, sys
fa, fb = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
size = os.fstat(fb).st_size
r = random.Random(5)
for i in range(500):
    off, ln = r.randrange(0, size + 100), r.choice((1, 100, 5000, 70000, 1 << 20))
    if os.pread(fa, ln, off) != os.pread(fb, ln, off):
        sys.exit("read of %d at %d differs" % (ln, off))
PY
ok "500 random-range reads of restore.sql equal restore --sql"

DST=lbt_mnt_dst
pg_fresh_db "$DST"
psql_db "$DST" -f "$R" >"$T/psql.out" 2>&1 ||
        { tail -n 20 "$T/psql.out" | sed 's/^/#   /'; fail "psql -f restore.sql from the mount failed"; }
ok "psql -f loads restore.sql straight from the mount"
PG_LABEL="psql -f <mount>/restore.sql" pg_compare_dbs "$SRC" "$DST"

# tables/: one table's history.
V=$M/tables/$SRC/bulk.ledger
[[ -d $V ]] || fail "no tables/$SRC/bulk.ledger (tables/: $(ls -R "$M/tables" | head))"
[[ $(ls "$V" | paste -sd ' ') == "$(printf '%s\n' "$N1" "$N2" | sort | paste -sd ' ')" ]] || fail "tables/$SRC/bulk.ledger lists $(ls "$V" | paste -sd ' ')"
cmp "$V/$N1" <(lb dump "$SNAP1" "/$SRC/data/bulk.ledger") || fail "tables/.../$N1 differs from dump"
cmp "$V/$N2" <(lb dump "$SNAP2" "/$SRC/data/bulk.ledger") || fail "tables/.../$N2 differs from dump"
! cmp -s "$V/$N1" "$V/$N2" || fail "the two versions of bulk.ledger are the same: the update is missing"
[[ -d "$M/tables/$SRC/shop.customers" ]] || fail "tables/$SRC/shop.customers is missing"
ok "tables/$SRC/bulk.ledger/ holds both versions, each equal to dump"

kill -TERM "$PID"
wait_for 10 bash -c "! kill -0 $PID 2>/dev/null || grep -q '^State:.*Z' /proc/$PID/status" ||
        fail "longbox mount did not exit within 10 s of SIGTERM"
rc=0
wait "$PID" || rc=$?
[[ $rc == 0 ]] || fail "longbox mount exited $rc on SIGTERM"
! is_mounted "$M" || fail "SIGTERM left $M mounted"
ok "SIGTERM unmounts"
