#!/usr/bin/env bash
# longbox drill against a real PostgreSQL: a passing drill (rows verified,
# SQL checks true, RTO reported, scratch database dropped, result recorded
# so that status turns OK), a drill that must fail on a snapshot whose
# table checksum (or row count) does not match the data, failing SQL
# checks, a drill from a copy of the repository (the off-site case), and
# `longbox run` backing up the configured database.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

: "${LB_TAMPER:?LB_TAMPER must name the lb-tamper helper (meson sets it)}"
export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"
SRC=lbt_drill_src
PREFIX=lbt_drill_x
pg_load_testdb "$SRC" 5000
SERVER="host=$LB_PGHOST port=$LB_PGPORT user=$LB_PGUSER"

# scratch_left: scratch databases of this test still on the server.
scratch_left() { pg_val postgres "SELECT count(*) FROM pg_database WHERE datname LIKE '${PREFIX}%'"; }

expect_exit 0 lb backup --db "$(pg_conninfo "$SRC")"
ntables=$(pg_val "$SRC" "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND NOT EXISTS (SELECT 1 FROM pg_extension e JOIN pg_depend d ON d.refobjid = e.oid AND d.objid = c.oid)")

echo "SELECT count(*) > 0 FROM shop.customers;" >"$T/customers.sql"
echo "SELECT (SELECT count(*) FROM bulk.ledger) = 5000;" >"$T/ledger.sql"
expect_exit 0 lb drill --conninfo "$SERVER" --dbname-prefix "$PREFIX" --sql-check "$T/customers.sql" \
        --sql-check "$T/ledger.sql" --json
[[ $(json 'd["sql_checks_passed"]' <"$LB_OUT") == 2 ]] || fail "drill: $(cat "$LB_OUT")"
[[ $(json 'd["tables_verified"]' <"$LB_OUT") -ge 5 ]] || fail "drill verified too few tables: $(cat "$LB_OUT")"
[[ $(json 'd["rows_verified"]' <"$LB_OUT") -gt 5000 ]] || fail "drill verified too few rows"
python3 -c 'import json,sys; d=json.load(sys.stdin); assert 0 < d["seconds_to_usable"] <= d["total_duration"]' <"$LB_OUT" ||
        fail "drill RTO is not a positive time within the total: $(cat "$LB_OUT")"
[[ $(json 'd["scratch_dropped"]' <"$LB_OUT") == true ]] || fail "scratch database not dropped"
[[ $(scratch_left) == 0 ]] || fail "a scratch database is left on the server"
echo "# source has $ntables tables; drill verified $(json 'd["tables_verified"]' <"$LB_OUT")"
ok "drill passes: tables and rows verified, SQL checks true, RTO measured, scratch database dropped"

# status: a successful check, drill and backup make it OK.
expect_exit 0 lb check
expect_exit 0 lb status
grep -q '^LONGBOX OK - ' "$LB_OUT" || fail "status after backup, check and drill: $(cat "$LB_OUT")"
grep -q 'drill_age=[0-9]*s;7948800;' "$LB_OUT" || fail "status perfdata lacks drill_age: $(cat "$LB_OUT")"
ok "status OK (exit 0) after a backup, a check and a drill"

# --- failing SQL checks ---------------------------------------------------------------------------
echo "SELECT count(*) = 0 FROM shop.customers;" >"$T/false.sql"
expect_exit 1 lb drill --conninfo "$SERVER" --dbname-prefix "$PREFIX" --sql-check "$T/customers.sql" --sql-check "$T/false.sql"
output_has "false.sql returned f, not true" || fail "a false SQL check is not reported: $(tail -n 3 "$LB_ERR")"
[[ $(scratch_left) == 0 ]] || fail "a failed drill left its scratch database"
echo "SELECT id FROM shop.customers;" >"$T/rows.sql"
expect_exit 1 lb drill --conninfo "$SERVER" --dbname-prefix "$PREFIX" --sql-check "$T/rows.sql"
output_has "must return exactly one row with one boolean column" || fail "a many-row SQL check: $(tail -n 3 "$LB_ERR")"
echo "SELECT * FROM no_such_table;" >"$T/error.sql"
expect_exit 1 lb drill --conninfo "$SERVER" --dbname-prefix "$PREFIX" --sql-check "$T/error.sql"
output_has "no_such_table" || fail "an SQL check error is not reported"
[[ $(scratch_left) == 0 ]] || fail "a failed drill left its scratch database"
expect_exit 2 lb status
grep -q 'last drill failed: .*error.sql' "$LB_OUT" || fail "status does not report the failed drill: $(cat "$LB_OUT")"
ok "failing SQL checks (false, many rows, an error) fail the drill (exit 1), scratch dropped, status CRITICAL"

# --- a drill from a copy of the repository (the off-site case) ------------------------------------
cp -a "$LONGBOX_REPO" "$T/offsite"
rm -rf "$T/offsite/events"
expect_exit 0 env LONGBOX_CACHE_DIR="$T/cache-offsite" "$LONGBOX" --repo "$T/offsite" drill --conninfo "$SERVER" \
        --dbname-prefix "$PREFIX" --database "$SRC"
[[ $(find "$T/offsite/events" -type f | wc -l) == 1 ]] || fail "the drill's event was not recorded in the copy"
ok "drill --repo COPY --database NAME: restores from the copy and records its result there"

# --- a snapshot whose table checksum does not match -----------------------------------------------
TREPO=$T/tampered
cp -a "$LONGBOX_REPO" "$TREPO"
"$LB_TAMPER" "$TREPO" test-pass "/$SRC/data/shop.customers" xxh3 || fail "lb-tamper failed"
expect_exit 13 env LONGBOX_CACHE_DIR="$T/cache-t" "$LONGBOX" --repo "$TREPO" drill --conninfo "$SERVER" --dbname-prefix "$PREFIX"
output_has "shop.customers" || fail "the checksum mismatch does not name the table: $(tail -n 3 "$LB_ERR")"
output_has "FAILED" || fail "the drill does not say it failed"
[[ $(scratch_left) == 0 ]] || fail "a drill on tampered data left its scratch database"
expect_exit 2 env LONGBOX_CACHE_DIR="$T/cache-t" "$LONGBOX" --repo "$TREPO" status
grep -q 'last drill failed' "$LB_OUT" || fail "status of the tampered copy: $(cat "$LB_OUT")"
ok "tampered table checksum: drill fails (exit 13) naming the table, scratch dropped, status CRITICAL"

cp -a "$LONGBOX_REPO" "$T/tampered-rows"
"$LB_TAMPER" "$T/tampered-rows" test-pass "/$SRC/data/shop.orders" rows || fail "lb-tamper rows failed"
expect_exit 13 env LONGBOX_CACHE_DIR="$T/cache-r" "$LONGBOX" --repo "$T/tampered-rows" drill --conninfo "$SERVER" \
        --dbname-prefix "$PREFIX"
output_has "shop.orders" || fail "the row count mismatch does not name the table: $(tail -n 3 "$LB_ERR")"
[[ $(scratch_left) == 0 ]] || fail "scratch database left"
ok "tampered row count: drill fails (exit 13) naming the table"

# --- run ------------------------------------------------------------------------------------------
CONF=$T/longbox.conf
cat >"$CONF" <<EOC
[repository]
location = $LONGBOX_REPO
[database src]
conninfo = $(pg_conninfo "$SRC")
jobs = 2
[retention]
keep-last = 2
prune = no
[drill]
conninfo = $SERVER
dbname-prefix = $PREFIX
sql-check = $T/customers.sql
EOC
chmod 600 "$CONF"
before=$(snapshot_count)
expect_exit 0 lb --config "$CONF" --metrics-file "$T/m.prom" run
[[ $(snapshot_count) == 2 ]] || fail "run: $(snapshot_count) snapshots after backup and forget --keep-last 2 (had $before)"
grep -q '^longbox_last_run_success{command="backup",database="'"$SRC"'"} 1$' "$T/m.prom" ||
        fail "run's backup step metrics: $(cat "$T/m.prom")"
grep -q '^longbox_last_run_success{command="run"} 1$' "$T/m.prom" || fail "run metrics missing"
grep -q '^longbox_last_run_success{command="forget"} 1$' "$T/m.prom" || fail "forget step metrics missing"
expect_exit 0 lb --config "$CONF" drill
output_has "1 SQL checks true" || fail "drill does not take its settings from [drill]: $(cat "$LB_OUT")"
expect_exit 0 lb --config "$CONF" status --json
[[ $(json 'd["last_run"]["kind"]' <"$LB_OUT") == run ]] || fail "status: last run is not the run"
ok "run: backs up the configured database, forgets by [retention], records each step; drill uses [drill]"
