#!/usr/bin/env bash
# Every failure of `longbox backup --db` and `restore --dbname` the issue
# lists: the command exits non-zero with a message naming what failed, no
# snapshot is recorded, the repository stays consistent (check passes) and
# the next backup works; no password is ever printed or stored; a damaged
# chunk never loads wrong rows silently.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"

# expect_failure CMD...: CMD exits non-zero (not 2, a usage error: the
# option must exist), with a message on stderr.
expect_failure() {
        local rc=0
        "$@" >"$LB_OUT" 2>"$LB_ERR" || rc=$?
        if ((rc == 0 || rc == 2)) || [[ ! -s $LB_ERR ]]; then
                echo "# command: $*"
                sed 's/^/#   out: /' "$LB_OUT" | tail -n 10
                sed 's/^/#   err: /' "$LB_ERR" | tail -n 10
                ((rc != 0)) || fail "expected a failure, got exit 0: $*"
                ((rc != 2)) || fail "usage error (exit 2): $*"
                fail "exit $rc without a message on stderr: $*"
        fi
        LAST_RC=$rc
}

# output_matches ERE: the last command's stdout or stderr matches (case
# insensitive).
output_matches() { grep -E -i -q -e "$1" "$LB_OUT" "$LB_ERR"; }

# no_new_snapshot N WHAT: still N snapshots and check passes.
no_new_snapshot() {
        local n
        n=$(snapshot_count)
        [[ $n == "$1" ]] || fail "$2: $n snapshots, expected $1 (a failed backup recorded one)"
        lb check >"$T/check.out" 2>&1 || { sed 's/^/#   /' "$T/check.out"; fail "$2: check fails afterwards"; }
}

# A small database for most cases; a big one for the mid-stream cases.
SMALL=lbt_fail_small
pg_load_testdb "$SMALL" 2000
BIG=lbt_fail_big
pg_fresh_db "$BIG"
pg_load_bulk "$BIG" 1500000
ok "databases $SMALL and $BIG ($(pg_val "$BIG" "SELECT pg_size_pretty(pg_database_size('$BIG'))")) ready"

# --- unreachable server -------------------------------------------------------------------------
closed=$(lb_free_port)
expect_failure lb backup --db "host=127.0.0.1 port=$closed user=postgres dbname=$SMALL connect_timeout=5"
output_matches "refused|connect|$closed" || fail "the message does not say the server could not be reached"
no_new_snapshot 0 "unreachable server"
expect_failure lb backup --db "host=$T/no-such-socket-dir dbname=$SMALL"
no_new_snapshot 0 "no socket"
ok "unreachable server (closed port, missing socket): exit $LAST_RC, a message, no snapshot"

# --- bad password ---------------------------------------------------------------------------------
[[ -n ${LB_PG_PWUSER:-} && -n ${LB_PG_PWPASS:-} ]] ||
        fail "LB_PG_PWUSER/LB_PG_PWPASS not set: the cluster lacks the password role (scripts/lib/services.sh)"
TCP="host=127.0.0.1 port=$LB_PGPORT user=$LB_PG_PWUSER dbname=$SMALL"
PGPASSWORD=$LB_PG_PWPASS pg_val "$TCP" "SELECT 1" >/dev/null || fail "the password role cannot log in with its password"
! PGPASSWORD=wrong pg_val "$TCP" "SELECT 1" >/dev/null 2>&1 || fail "the cluster accepts a wrong password: pg_hba.conf is not set up"
BAD=Wr0ng-$RANDOM-pass-$RANDOM
PGPASSWORD=$BAD expect_failure lb backup --db "$TCP"
output_matches "password|authentication" || fail "bad password: the message does not say authentication failed"
! grep -F -q -e "$BAD" "$LB_OUT" "$LB_ERR" || fail "bad password: the password was printed"
no_new_snapshot 0 "bad password (PGPASSWORD)"
expect_failure lb backup --db "$TCP password=$BAD"
! grep -F -q -e "$BAD" "$LB_OUT" "$LB_ERR" || fail "bad password in the conninfo: the password was printed"
no_new_snapshot 0 "bad password (conninfo)"
expect_failure lb backup --db "postgresql://$LB_PG_PWUSER:$BAD@127.0.0.1:$LB_PGPORT/$SMALL"
! grep -F -q -e "$BAD" "$LB_OUT" "$LB_ERR" || fail "bad password in a URI: the password was printed"
no_new_snapshot 0 "bad password (URI)"
ok "bad password (PGPASSWORD, conninfo, URI): exit $LAST_RC, an authentication message, never the password, no snapshot"

# The right password from PGPASSFILE and from a service file works, and is
# stored nowhere in the snapshot. (Superuser for the time of this case, so
# the role can read everything, globals included.)
psql_db postgres -c "ALTER ROLE $LB_PG_PWUSER SUPERUSER" >/dev/null
printf '127.0.0.1:%s:*:%s:%s\n' "$LB_PGPORT" "$LB_PG_PWUSER" "$LB_PG_PWPASS" >"$T/pgpass"
chmod 600 "$T/pgpass"
printf '[lbtest]\nhost=127.0.0.1\nport=%s\nuser=%s\npassword=%s\ndbname=%s\n' \
        "$LB_PGPORT" "$LB_PG_PWUSER" "$LB_PG_PWPASS" "$SMALL" >"$T/pg_service.conf"
rc1=0 rc2=0
PGPASSFILE=$T/pgpass lb backup --db "$TCP" >"$T/pw1.out" 2>&1 || rc1=$?
PGSERVICEFILE=$T/pg_service.conf lb backup --db "service=lbtest" >"$T/pw2.out" 2>&1 || rc2=$?
psql_db postgres -c "ALTER ROLE $LB_PG_PWUSER NOSUPERUSER" >/dev/null
((rc1 == 0)) || { sed 's/^/#   /' "$T/pw1.out"; fail "backup with the password in PGPASSFILE failed (exit $rc1)"; }
((rc2 == 0)) || { sed 's/^/#   /' "$T/pw2.out"; fail "backup with service=lbtest (PGSERVICEFILE) failed (exit $rc2)"; }
! grep -F -q -e "$LB_PG_PWPASS" "$T/pw1.out" "$T/pw2.out" || fail "a successful backup printed the password"
[[ $(snapshot_count) == 2 ]] || fail "two backups, $(snapshot_count) snapshots"
for s in $(lb snapshots --json | json '" ".join(x["id"] for x in d)'); do
        lb restore "$s" --target "$T/files-$s" >/dev/null 2>&1 || fail "restore --target of snapshot ${s:0:8} failed"
        [[ -n $(find "$T/files-$s" -type f -name pre-data.sql) ]] || fail "snapshot ${s:0:8} has no pre-data.sql"
        ! grep -r -F -q -e "$LB_PG_PWPASS" "$T/files-$s" || fail "snapshot ${s:0:8} stores the password: $(grep -r -F -l -e "$LB_PG_PWPASS" "$T/files-$s")"
        rm -rf "$T/files-$s"
done
! lb snapshots --json | grep -F -q -e "$LB_PG_PWPASS" || fail "the snapshot list shows the password"
ok "PGPASSFILE and PGSERVICEFILE work; the password is in no file of either snapshot nor in its metadata"
SNAPS=2

# --- permission denied on a table ------------------------------------------------------------------
PERM=lbt_fail_perm
pg_roles
pg_fresh_db "$PERM"
psql_db "$PERM" >/dev/null <<'SQL' || fail "could not set up $PERM"
CREATE TABLE public.visible (id integer PRIMARY KEY, v text);
INSERT INTO public.visible SELECT n, 'v' || n FROM generate_series(1, 100) AS n;
CREATE SCHEMA secret;
CREATE TABLE secret.payroll (id integer PRIMARY KEY, salary numeric);
INSERT INTO secret.payroll VALUES (1, 100000), (2, 120000);
GRANT USAGE ON SCHEMA secret TO lb_noselect;
GRANT SELECT ON public.visible TO lb_noselect;
SQL
expect_failure lb backup --db "host=$LB_PGHOST port=$LB_PGPORT user=lb_noselect dbname=$PERM"
output_matches "payroll" || fail "permission denied: the message does not name the table secret.payroll"
no_new_snapshot "$SNAPS" "permission denied"
ok "permission denied on secret.payroll: exit $LAST_RC, the message names the table, no snapshot"

# --- connection loss and server restart mid-stream ---------------------------------------------
BIGINFO=$(pg_conninfo "$BIG")
copy_pid() {
        pg_val postgres "SELECT pid FROM pg_stat_activity WHERE datname = '$BIG' AND state = 'active'
                AND query ILIKE 'copy%ledger%' AND pid <> pg_backend_pid() LIMIT 1"
}
copying() { [[ -n $(copy_pid) ]] || ! kill -0 "$BG" 2>/dev/null; }
bg_done() { ! kill -0 "$BG" 2>/dev/null; }

# start_bg_backup: a backup of $BIG in the background; returns once it is
# copying bulk.ledger (fails if it ended before).
start_bg_backup() {
        "$LONGBOX" backup --db "$BIGINFO" --jobs 2 >"$T/bg.out" 2>"$T/bg.err" &
        BG=$!
        register_pid "$BG"
        wait_for 120 copying || fail "the backup of $BIG did not start copying bulk.ledger within 120 s"
        if bg_done; then
                wait "$BG" || true
                sed 's/^/#   /' "$T/bg.err" | tail -n 5
                fail "the backup of $BIG ended before it was seen copying bulk.ledger"
        fi
}

# finish_bg_backup WHAT: the background backup fails with a message naming
# bulk.ledger or the lost connection; no snapshot; check passes.
finish_bg_backup() {
        local rc=0
        wait_for 120 bg_done || fail "$1: the backup still runs 120 s later"
        wait "$BG" || rc=$?
        ((rc != 0)) || fail "$1: the backup exited 0 (was the table already copied?)"
        [[ -s $T/bg.err ]] || fail "$1: the backup failed (exit $rc) without a message"
        grep -E -i -q "ledger" "$T/bg.err" ||
                { sed 's/^/#   /' "$T/bg.err" | tail -n 5; fail "$1: the message does not name bulk.ledger"; }
        no_new_snapshot "$SNAPS" "$1"
        LAST_RC=$rc
}

start_bg_backup
pid=$(copy_pid)
[[ -n $pid ]] || fail "lost the COPY backend"
[[ $(pg_val postgres "SELECT pg_terminate_backend($pid)") == t ]] || fail "could not terminate backend $pid"
finish_bg_backup "connection lost mid-stream"
ok "connection lost while copying bulk.ledger: exit $LAST_RC naming the table, no snapshot, check passes"

if [[ -n ${LB_PG_DIR:-} && -d $LB_PG_DIR/data ]]; then
        start_bg_backup
        lb_pg_ctl -m immediate stop >/dev/null || fail "pg_ctl stop -m immediate failed"
        finish_bg_backup "server stopped mid-stream"
        lb_pg_ctl start >/dev/null || fail "the server did not start again"
        pg_wait_ready 60 || fail "the server does not accept connections after the restart"
        ok "server stopped (immediate) while copying bulk.ledger: exit $LAST_RC naming the table, no snapshot, check passes"
else
        [[ ${CI:-} != true ]] || fail "LB_PG_DIR is not set: cannot stop and restart the server under CI"
        echo "SKIP: LB_PG_DIR is not set (not our cluster): server restart mid-stream NOT tested"
fi

expect_exit 0 lb backup --db "$BIGINFO" --jobs 2
SNAPS=$((SNAPS + 1))
[[ $(snapshot_count) == "$SNAPS" ]] || fail "the backup after the failures recorded no snapshot"
expect_exit 0 lb check
ok "the next backup of $BIG succeeds and check passes"

# --- pg_dump missing or failing --------------------------------------------------------------------
mkdir -p "$T/nobin" "$T/failbin" "$T/partbin" "$T/failall"
for p in pg_dump pg_dumpall psql pg_restore; do
        for d in failbin partbin failall; do ln -s "$LB_PG_BIN/$p" "$T/$d/$p"; done
done
rm "$T/failbin/pg_dump" "$T/partbin/pg_dump" "$T/failall/pg_dumpall"
printf '#!/bin/sh\necho "pg_dump: error: simulated failure" >&2\nexit 1\n' >"$T/failbin/pg_dump"
printf '#!/bin/sh\n"%s/pg_dump" "$@" | head -c 300\nexit 1\n' "$LB_PG_BIN" >"$T/partbin/pg_dump"
printf '#!/bin/sh\necho "pg_dumpall: error: simulated failure" >&2\nexit 1\n' >"$T/failall/pg_dumpall"
chmod +x "$T/failbin/pg_dump" "$T/partbin/pg_dump" "$T/failall/pg_dumpall"
SMALLINFO=$(pg_conninfo "$SMALL")

LONGBOX_PG_BINDIR=$T/nobin expect_failure lb backup --db "$SMALLINFO"
output_matches "pg_dump" || fail "pg_dump missing: the message does not name pg_dump"
no_new_snapshot "$SNAPS" "pg_dump missing"
ok "pg_dump missing (LONGBOX_PG_BINDIR=empty dir): exit $LAST_RC naming pg_dump, no snapshot"

LONGBOX_PG_BINDIR=$T/failbin expect_failure lb backup --db "$SMALLINFO"
output_matches "pg_dump" || fail "pg_dump failing: the message does not name pg_dump"
no_new_snapshot "$SNAPS" "pg_dump failing"
LONGBOX_PG_BINDIR=$T/partbin expect_failure lb backup --db "$SMALLINFO"
output_matches "pg_dump" || fail "pg_dump failing after output: the message does not name pg_dump"
no_new_snapshot "$SNAPS" "pg_dump failing after output"
LONGBOX_PG_BINDIR=$T/failall expect_failure lb backup --db "$SMALLINFO"
output_matches "pg_dumpall" || fail "pg_dumpall failing: the message does not name pg_dumpall"
no_new_snapshot "$SNAPS" "pg_dumpall failing"
ok "pg_dump failing at once or after some output, pg_dumpall failing: non-zero naming the program, no snapshot"

# --- restore into a non-empty database, or --create over an existing one ------------------------------
expect_exit 0 lb backup --db "$SMALLINFO"
SNAPS=$((SNAPS + 1))
FULL=lbt_fail_nonempty
pg_fresh_db "$FULL"
psql_db "$FULL" -c "CREATE TABLE public.keep (x integer); INSERT INTO public.keep VALUES (42)" >/dev/null
before=$(pg_plain_dump "$FULL" "$T/full.before.sql" && cat "$T/full.before.sql")
expect_failure lb restore latest --dbname "$(pg_conninfo "$FULL")"
pg_plain_dump "$FULL" "$T/full.after.sql"
[[ $before == "$(cat "$T/full.after.sql")" ]] || fail "a refused restore changed the database $FULL"
ok "restore into a database with user tables, without --clean: refused (exit $LAST_RC), database unchanged"
expect_failure lb restore latest --dbname "$(pg_conninfo "$FULL")" --create
pg_plain_dump "$FULL" "$T/full.after.sql"
[[ $before == "$(cat "$T/full.after.sql")" ]] || fail "a refused restore --create changed the database $FULL"
ok "restore --create over an existing database: refused (exit $LAST_RC), database unchanged"

# --- a damaged data chunk ------------------------------------------------------------------------
# Flip one byte of a pack until the damaged chunk belongs to a table's data
# file (found with `dump`, which reads one file); then the restore must fail
# naming that table, and whatever rows it loaded must be rows of the source.
CREPO=$T/corrupt-pristine
init_repo "$CREPO"
expect_exit 0 lb --repo "$CREPO" backup --db "$SMALLINFO"
lb --repo "$CREPO" ls latest | grep "^/$SMALL/data/" >"$T/datafiles" || fail "no data files in the snapshot"
damaged=
for attempt in 1 2 3 4 5 6 7 8; do
        rm -rf "$T/corrupt" "$T/cache-corrupt"
        cp -a "$CREPO" "$T/corrupt"
        pack=$(find "$T/corrupt/packs" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
        python3 - "$pack" "$attempt" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(0, 2)
    pos = f.tell() * int(sys.argv[2]) // 9
    f.seek(pos)
    b = f.read(1)
    f.seek(pos)
    f.write(bytes([b[0] ^ 0x5a]))
PY
        damaged=
        # A damaged tree would fail every dump: only a data chunk counts.
        LONGBOX_CACHE_DIR=$T/cache-corrupt lb --repo "$T/corrupt" dump latest "/$SMALL/pre-data.sql" >/dev/null 2>&1 ||
                continue
        while IFS= read -r f; do
                if ! LONGBOX_CACHE_DIR=$T/cache-corrupt lb --repo "$T/corrupt" dump latest "$f" >/dev/null 2>&1; then
                        damaged=$f
                        break
                fi
        done <"$T/datafiles"
        [[ -z $damaged ]] || break
done
[[ -n $damaged ]] || fail "8 flipped bytes never hit a table's data: cannot test"
# File names escape / and % as %2F and %25 (docs/design.md).
table=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))' "${damaged#"/$SMALL/data/"}")
IFS=$'\t' read -r tname qt < <(pg_val "$SMALL" "SELECT c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname || '.' || c.relname = \$t\$$table\$t\$ AND c.relkind = 'r'") ||
        fail "no table $table in $SMALL"
[[ -n $tname ]] || fail "the damaged data file $damaged names no table of $SMALL"
CDB=lbt_fail_corrupt
pg_drop_db "$CDB"
LONGBOX_CACHE_DIR=$T/cache-corrupt expect_failure lb --repo "$T/corrupt" restore latest --dbname "$(pg_conninfo "$CDB")" --create
grep -F -q -e "$tname" "$LB_OUT" "$LB_ERR" ||
        { sed 's/^/#   /' "$LB_ERR" | tail -n 5; fail "restore of a damaged $table does not name the table"; }
if [[ -n $(pg_val postgres "SELECT 1 FROM pg_database WHERE datname = '$CDB'") ]]; then
        if [[ -n $(pg_val "$CDB" "SELECT to_regclass(\$t\$$qt\$t\$)") ]]; then
                pg_val "$SMALL" "SELECT to_jsonb(t)::text FROM ONLY $qt t" | sort >"$T/rows.src"
                pg_val "$CDB" "SELECT to_jsonb(t)::text FROM ONLY $qt t" | sort >"$T/rows.restored"
                wrong=$(comm -13 "$T/rows.src" "$T/rows.restored" | wc -l)
                ((wrong == 0)) || fail "the failed restore loaded $wrong rows into $table that the source does not have"
        fi
fi
ok "damaged chunk in $table: restore fails (exit $LAST_RC) naming it, and loads no wrong row"
