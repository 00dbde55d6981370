#!/usr/bin/env bash
# The fidelity proof: tests/data/pg/testdb.sql (one of everything a logical
# backup must carry) -> longbox backup --db -> restore into a new database
# (--create, and into a pre-created empty one), through `restore --sql` and
# psql, and one table at a time -> pg_dump of the restore equals pg_dump of
# the source apart from the lines that legitimately differ (listed in
# pg_lib.sh, normalize_dump), and every table's rows, checksums, sequences,
# large objects and materialized views match.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

SRC=lbt_rt_src
pg_load_testdb "$SRC" 40000
ok "test database $SRC loaded ($(pg_val "$SRC" "SELECT pg_size_pretty(pg_database_size('$SRC'))"))"

# The source's own plain dumps, before anything else touches the cluster.
"$LB_PG_BIN/pg_dump" -f "$T/src.plain.sql" "$SRC" || fail "pg_dump of the source failed"
grep -q '^COPY shop.customers ' "$T/src.plain.sql" || fail "the source dump has no shop.customers data"

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"

# --- backup ----------------------------------------------------------------------------------
expect_exit 0 lb backup --db "$(pg_conninfo "$SRC")" --jobs 2 --json
SNAP=$(json 'd["snapshot_id"]' <"$LB_OUT") || fail "backup --json printed no snapshot_id"
[[ $(snapshot_count) == 1 ]] || fail "one backup, but $(snapshot_count) snapshots"
ok "backup --db --jobs 2 recorded snapshot ${SNAP:0:8}"

lb snapshots --json >"$T/snaps.json" || fail "snapshots --json failed"
[[ $(json 'd[0].get("source")' <"$T/snaps.json") == postgresql ]] ||
        fail "the snapshot's source is not \"postgresql\": $(cat "$T/snaps.json")"
ok "the snapshot's source is postgresql"

# The layout of docs/design.md "PostgreSQL snapshots".
expect_exit 0 lb ls latest
cp "$LB_OUT" "$T/ls.txt"
for p in database.sql globals.sql pre-data.sql post-data.sql sequences.sql \
        data/shop.customers data/shop.blobs data/shop.notes data/bulk.ledger \
        data/shop.events_2023 data/shop.events_other data/shop.stock_eu data/shop.stock_empty \
        data/shop.media data/shop.media_digital data/shop.sessions data/shop.empty_table \
        data/audit.log data/audit.no_columns \
        "data/Odd Schema.v1.Mixed Case.Table" "data/shop.Weird%2FName%25Here" \
        large-objects/424242 large-objects/424243 large-objects/424244 large-objects/424245; do
        grep -qxF "/$SRC/$p" "$T/ls.txt" || fail "the snapshot has no /$SRC/$p (ls: $(head -c 2000 "$T/ls.txt"))"
done
for p in data/shop.events data/shop.stock data/shop.customer_orders data/shop.customer_orders_mv \
        data/shop.series_count_mv data/shop.invoice_no; do
        ! grep -qxF "/$SRC/$p" "$T/ls.txt" || fail "the snapshot has /$SRC/$p: views, partitioned parents, matviews and sequences have no data file"
done
ok "snapshot layout: one data file per leaf table (unlogged, empty and quoted names too), none for views, matviews, partitioned parents"

# Data files are the COPY text of the table; large objects their bytes.
expect_exit 0 lb dump latest "/$SRC/large-objects/424242"
[[ $(cat "$LB_OUT") == "hello, large object" ]] || fail "large object 424242 holds '$(head -c 100 "$LB_OUT")'"
lb dump latest "/$SRC/data/bulk.ledger" | sort >"$T/ledger.snap" || fail "dump of data/bulk.ledger failed"
psql_db "$SRC" -c "\\copy bulk.ledger TO STDOUT" | sort >"$T/ledger.src"
cmp -s "$T/ledger.snap" "$T/ledger.src" || fail "data/bulk.ledger is not the COPY text of bulk.ledger"
lb dump latest "/$SRC/data/shop.blobs" | sort >"$T/blobs.snap" || fail "dump of data/shop.blobs failed"
psql_db "$SRC" -c "\\copy shop.blobs TO STDOUT" | sort >"$T/blobs.src"
cmp -s "$T/blobs.snap" "$T/blobs.src" || fail "data/shop.blobs is not the COPY text of shop.blobs"
ok "data files hold the tables' COPY text; large-objects/<oid> the object's bytes"

# --- restore --create into a new database ------------------------------------------------------
NEW=lbt_rt_new
pg_drop_db "$NEW"
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$NEW")" --create --jobs 2
ok "restore --create --jobs 2 into the new database $NEW"
PG_LABEL="restore --create" pg_compare_dbs "$SRC" "$NEW" create

# Post-data ran (indexes, constraints, triggers) and the tables were analyzed.
[[ $(pg_val "$NEW" "SELECT count(*) FROM pg_stats WHERE schemaname = 'bulk' AND tablename = 'ledger'") -gt 0 ]] ||
        fail "bulk.ledger has no statistics after the restore: ANALYZE did not run"
[[ $(pg_val "$NEW" "SELECT n FROM shop.series_count_mv") == $(pg_val "$NEW" "SELECT count(*) FROM shop.series") ]] ||
        fail "the stale materialized view shop.series_count_mv was not refreshed by the restore"
[[ $(pg_val "$NEW" "SELECT tgenabled FROM pg_trigger WHERE tgname = 'notes_audit'") == D ]] ||
        fail "the disabled trigger notes_audit is enabled after the restore"
pg_val "$NEW" "INSERT INTO shop.series (title) VALUES ('after restore') RETURNING id" >/dev/null ||
        fail "inserting into a restored table (identity + trigger) failed"
[[ $(pg_val "$NEW" "SELECT count(*) FROM audit.log WHERE row_data->>'title' = 'after restore'") == 1 ]] ||
        fail "the audit trigger does not fire in the restored database"
[[ $(pg_val "$NEW" "SELECT n_distinct IS NOT NULL FROM pg_stats_ext WHERE statistics_name = 'orders_status_customer'") == t ]] ||
        fail "the extended statistics shop.orders_status_customer are empty: ANALYZE ran before CREATE STATISTICS"
ok "restored database: statistics (extended ones too) present, stale matview refreshed, triggers as in the source"

# --- restore into a pre-created empty database, URI conninfo --------------------------------
EMPTY=lbt_rt_empty
pg_fresh_db "$EMPTY"
expect_exit 0 lb restore "${SNAP:0:8}" --dbname "postgresql://$LB_PGUSER@127.0.0.1:$LB_PGPORT/$EMPTY"
ok "restore into the existing empty database $EMPTY (URI conninfo over TCP)"
PG_LABEL="restore into an empty database" pg_compare_dbs "$SRC" "$EMPTY"

# --clean replaces what is there.
psql_db "$EMPTY" -c "DELETE FROM shop.notes WHERE id < 5; UPDATE bulk.ledger SET memo = 'changed' WHERE id % 100 = 0;
        SELECT setval('shop.invoice_no', 1)" >/dev/null
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$EMPTY")" --clean --jobs 2
PG_LABEL="restore --clean over a changed database" pg_compare_dbs "$SRC" "$EMPTY"

# --- restore --sql | psql ---------------------------------------------------------------------
SQLDB=lbt_rt_sql
pg_fresh_db "$SQLDB"
lb restore latest --sql >"$T/restore.sql" 2>"$T/restore-sql.err" ||
        { cat "$T/restore-sql.err"; fail "restore --sql failed"; }
[[ -s $T/restore.sql ]] || fail "restore --sql wrote nothing"
psql_db "$SQLDB" -f "$T/restore.sql" >"$T/psql.out" 2>&1 ||
        { tail -n 20 "$T/psql.out" | sed 's/^/#   /'; fail "psql could not load the restore --sql script"; }
ok "restore --sql wrote a $(wc -c <"$T/restore.sql")-byte script that psql loads without error"
PG_LABEL="restore --sql | psql" pg_compare_dbs "$SRC" "$SQLDB"

# --- --table: one table into a database that has the schema --------------------------------
TBL=lbt_rt_table
pg_fresh_db "$TBL"
"$LB_PG_BIN/pg_dump" --schema-only "$SRC" | psql_db "$TBL" >/dev/null 2>&1 ||
        fail "could not copy the schema of $SRC into $TBL"
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$TBL")" --table shop.customers
[[ $(pg_table_sum "$TBL" shop.customers) == "$(pg_table_sum "$SRC" shop.customers)" ]] ||
        fail "--table shop.customers: rows differ ($(pg_table_sum "$TBL" shop.customers) vs $(pg_table_sum "$SRC" shop.customers))"
seq=$(pg_val "$SRC" "SELECT pg_get_serial_sequence('shop.customers', 'id')")
[[ $(pg_val "$TBL" "SELECT last_value || ' ' || is_called FROM $seq") == "$(pg_val "$SRC" "SELECT last_value || ' ' || is_called FROM $seq")" ]] ||
        fail "--table shop.customers did not restore its identity sequence $seq"
[[ $(pg_val "$TBL" "SELECT count(*) FROM shop.orders") == 0 && $(pg_val "$TBL" "SELECT count(*) FROM bulk.ledger") == 0 ]] ||
        fail "--table shop.customers also loaded other tables"
ok "--table shop.customers into a database with the schema: its rows and its identity sequence, nothing else"

# --- --table: the table was dropped -------------------------------------------------------------
psql_db "$TBL" -c "DROP TABLE shop.notes" >/dev/null
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$TBL")" --table shop.notes --table shop.blobs
[[ $(pg_table_sum "$TBL" shop.notes) == "$(pg_table_sum "$SRC" shop.notes)" ]] ||
        fail "--table shop.notes (dropped before): rows differ"
[[ $(pg_table_sum "$TBL" shop.blobs) == "$(pg_table_sum "$SRC" shop.blobs)" ]] ||
        fail "--table shop.blobs: rows differ"
[[ $(pg_val "$TBL" "SELECT tableowner FROM pg_tables WHERE schemaname = 'shop' AND tablename = 'notes'") == lb_owner ]] ||
        fail "--table shop.notes recreated the table without its owner lb_owner"
[[ $(pg_val "$TBL" "SELECT count(*) FROM pg_indexes WHERE schemaname = 'shop' AND tablename = 'notes'") == 1 ]] ||
        fail "--table shop.notes recreated the table without its primary key"
ok "--table shop.notes after DROP TABLE: recreated with owner, primary key and rows; shop.blobs loaded too"

# --- --table with names that need quoting -------------------------------------------------------
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$TBL")" --table 'shop."Weird/Name%Here"'
[[ $(pg_table_sum "$TBL" "shop.Weird/Name%Here") == "$(pg_table_sum "$SRC" "shop.Weird/Name%Here")" ]] ||
        fail "--table 'shop.\"Weird/Name%Here\"': rows differ"
ok "--table 'shop.\"Weird/Name%Here\"' (a slash and a percent sign in the name)"
# Into an empty database: the table is created, with the schema it lives in.
ONE=lbt_rt_one
pg_fresh_db "$ONE"
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$ONE")" --table '"Odd Schema.v1"."Mixed Case.Table"'
[[ $(pg_table_sum "$ONE" "Odd Schema.v1.Mixed Case.Table") == "$(pg_table_sum "$SRC" "Odd Schema.v1.Mixed Case.Table")" ]] ||
        fail "--table '\"Odd Schema.v1\".\"Mixed Case.Table\"' into an empty database: rows differ"
[[ $(pg_val "$ONE" "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") == 1 ]] ||
        fail "--table of one table into an empty database created other tables too"
ok "--table '\"Odd Schema.v1\".\"Mixed Case.Table\"' into an empty database: schema and table created, rows loaded"

# --- indexes in a tablespace -------------------------------------------------------------------
# pg_dump writes "SET default_tablespace" only when it changes, before a
# run of objects: each index or constraint built on a loader connection
# must get the tablespace its own header names. Needs a directory the
# server can use: a cluster on this machine, and root to hand it over.
if [[ $EUID -eq 0 && -n ${LB_PG_DIR:-} && -d ${LB_PG_DIR:-/nonexistent} ]]; then
        TS=lbt_rt_ts
        TSSRC=lbt_rt_ts_src
        TSNEW=lbt_rt_ts_new
        pg_drop_db "$TSSRC"
        pg_drop_db "$TSNEW"
        psql_db postgres -c "SET client_min_messages = warning" -c "DROP TABLESPACE IF EXISTS $TS" >/dev/null
        # Beside the cluster: the server must reach it (the test's own
        # temporary directory is closed to it).
        tsdir=$LB_PG_DIR/lbt_rt_ts.$$
        rm -rf "$tsdir" && mkdir "$tsdir" && chown postgres: "$tsdir" || fail "could not make $tsdir"
        psql_db postgres -c "CREATE TABLESPACE $TS LOCATION '$tsdir'" >/dev/null || fail "CREATE TABLESPACE failed"
        pg_fresh_db "$TSSRC"
        psql_db "$TSSRC" >/dev/null <<SQL || fail "could not fill $TSSRC"
CREATE TABLE t (a integer PRIMARY KEY, b integer, c integer, d integer);
INSERT INTO t SELECT n, n % 97, n % 89, n FROM generate_series(1, 5000) AS n;
ALTER TABLE t ADD CONSTRAINT t_d UNIQUE (d) USING INDEX TABLESPACE $TS;
CREATE INDEX t_b ON t (b) TABLESPACE $TS;
CREATE INDEX t_bc ON t (b, c) TABLESPACE $TS;
CREATE INDEX t_bd ON t (b, d) TABLESPACE $TS;
CREATE INDEX t_c ON t (c);
CREATE INDEX t_cd ON t (c, d);
SQL
        expect_exit 0 lb backup --db "$(pg_conninfo "$TSSRC")"
        expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$TSNEW")" --create --jobs 2
        q="SELECT string_agg(indexname || ':' || coalesce(tablespace, '-'), ' ' ORDER BY indexname) FROM pg_indexes WHERE tablename = 't'"
        want=$(pg_val "$TSSRC" "$q")
        got=$(pg_val "$TSNEW" "$q")
        [[ $got == "$want" ]] || fail "indexes restored into the wrong tablespaces: $got (source: $want)"
        pg_drop_db "$TSSRC"
        pg_drop_db "$TSNEW"
        psql_db postgres -c "DROP TABLESPACE $TS" >/dev/null || fail "DROP TABLESPACE failed"
        rm -rf "$tsdir"
        ok "indexes and constraints in a tablespace restore into it with --jobs 2 ($want)"
else
        echo "# skipped the tablespace check: it needs root and a cluster on this machine"
fi

# The source is untouched by all of this.
"$LB_PG_BIN/pg_dump" -f "$T/src.plain.after.sql" "$SRC" || fail "pg_dump of the source failed"
python3 "$T/normalize_dump.py" "$SRC" "" <"$T/src.plain.sql" >"$T/a.sql"
python3 "$T/normalize_dump.py" "$SRC" "" <"$T/src.plain.after.sql" >"$T/b.sql"
cmp -s "$T/a.sql" "$T/b.sql" || fail "the source database changed during the test"
expect_exit 0 lb check --read-data
ok "the source is unchanged and the repository passes check --read-data"
