# shellcheck shell=bash
# PostgreSQL helpers for the end-to-end tests. Source it after lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"
#
# scripts/test starts one PostgreSQL 15 cluster for the whole run and passes
# LB_PGHOST, LB_PGPORT, LB_PGUSER (and LB_PG_DIR, LB_PG_PWUSER, LB_PG_PWPASS)
# to meson test. Without them (a developer running `meson test` directly)
# this file starts a private throwaway cluster for the test file and stops
# it on exit. Without PostgreSQL 15 binaries the test is skipped (exit 77)
# with a loud SKIP line, except under CI (CI=true), where that is a failure.
#
# Several tests, and the plain and the ASan run, share one cluster: every
# test names its databases with its own prefix, drops them before use
# (pg_fresh_db) and again on exit (unless LB_KEEP_TMP=1).

: "${LB_SRC:?LB_SRC must name the source tree (meson sets it)}"
LB_PG_BIN=${LB_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_TESTDATA=$LB_SRC/tests/data/pg

for _p in postgres initdb pg_ctl psql pg_dump pg_isready; do
        if [[ ! -x $LB_PG_BIN/$_p ]]; then
                if [[ ${CI:-} == true ]]; then
                        fail "PostgreSQL 15 is not installed ($LB_PG_BIN/$_p missing); CI must have it (scripts/bootstrap installs postgresql-15)"
                fi
                echo "SKIP: ################################################################"
                echo "SKIP: PostgreSQL 15 is not installed ($LB_PG_BIN/$_p missing):"
                echo "SKIP: $(basename "$0") tests NOTHING. Run scripts/bootstrap to install it."
                echo "SKIP: ################################################################"
                exit 77
        fi
done
unset _p

# shellcheck source=scripts/lib/services.sh
source "$LB_SRC/scripts/lib/services.sh"

PG_DBS=()
PG_PRIVATE=0

pg_lib_cleanup() {
        local rc=$? db
        set +e # best effort; and `(exit "$rc")` below must not end the trap
        if [[ ${LB_KEEP_TMP:-0} != 1 ]] && ((${#PG_DBS[@]})) &&
                "$LB_PG_BIN/pg_isready" -q -t 2 2>/dev/null; then
                for db in "${PG_DBS[@]}"; do
                        "$LB_PG_BIN/psql" -X -q -d postgres \
                                -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
                done
        fi
        if ((PG_PRIVATE)); then
                lb_pg_stop >/dev/null 2>&1 || true
        fi
        (exit "$rc")
        lb_cleanup
}
trap pg_lib_cleanup EXIT
# meson stops a test that times out with SIGTERM: still clean up.
trap 'exit 143' TERM
trap 'exit 130' INT

if [[ -z ${LB_PGHOST:-} ]]; then
        # Our own cluster: lb_pg_start sets LB_PG_DIR, LB_PGHOST, ...
        unset LB_PG_DIR
        echo "# no LB_PGHOST: starting a private PostgreSQL cluster for $(basename "$0")"
        lb_pg_start || fail "could not start a private PostgreSQL cluster"
        PG_PRIVATE=1
fi
: "${LB_PGPORT:?LB_PGHOST is set but LB_PGPORT is not}"
LB_PGUSER=${LB_PGUSER:-postgres}
export PGHOST=$LB_PGHOST PGPORT=$LB_PGPORT PGUSER=$LB_PGUSER PGDATABASE=postgres
unset PGPASSWORD PGPASSFILE PGSERVICE PGSERVICEFILE PGOPTIONS PGSSLMODE PGCONNECT_TIMEOUT PGAPPNAME
export PGCONNECT_TIMEOUT=10
# The throwaway cluster's binaries come first, so a `psql` or `pg_dump` on
# PATH is version 15 too (Debian's /usr/bin ones are wrappers).
export PATH=$LB_PG_BIN:$PATH

# psql_db DB ARGS...: psql on DB, stop at the first error, no psqlrc.
psql_db() {
        "$LB_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$1" "${@:2}"
}

# pg_val DB SQL: the result of SQL, unaligned, tuples only, tab separated.
pg_val() {
        "$LB_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At -F $'\t' -d "$1" -c "$2"
}

# pg_fresh_db NAME [CREATE DATABASE options]: drop NAME if it exists, create
# it empty, and drop it again when the test exits.
pg_fresh_db() {
        pg_drop_db "$1"
        psql_db postgres -c "CREATE DATABASE \"$1\" ${*:2}" >/dev/null ||
                fail "could not create database $1"
        PG_DBS+=("$1")
}

# pg_drop_db NAME: drop NAME if it exists (dropped again on exit: restores
# may create it).
pg_drop_db() {
        psql_db postgres -c "SET client_min_messages = warning" \
                -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null ||
                fail "could not drop database $1"
        PG_DBS+=("$1")
}

# pg_conninfo DB: a libpq conninfo for DB on the test cluster (socket).
pg_conninfo() {
        echo "host=$LB_PGHOST port=$LB_PGPORT user=$LB_PGUSER dbname=$1"
}

# pg_roles: create the extra roles the test databases grant to (global).
pg_roles() {
        psql_db postgres -f "$PG_TESTDATA/roles.sql" >/dev/null || fail "could not create the test roles"
}

# pg_load_testdb DB [BULK_ROWS]: a fresh DB holding tests/data/pg/testdb.sql
# and bulk.ledger (tests/data/pg/bigtable.sql) with BULK_ROWS rows (40000).
pg_load_testdb() {
        pg_roles
        pg_fresh_db "$1"
        psql_db "$1" -f "$PG_TESTDATA/testdb.sql" >/dev/null || fail "could not load testdb.sql into $1"
        pg_load_bulk "$1" "${2:-40000}"
}

# pg_load_bulk DB ROWS: add bulk.ledger with ROWS rows (~150 bytes each).
pg_load_bulk() {
        psql_db "$1" -v rows="$2" -f "$PG_TESTDATA/bigtable.sql" >/dev/null ||
                fail "could not load bigtable.sql into $1"
}

# pg_wait_ready SECONDS: the server accepts connections.
pg_wait_ready() {
        wait_for "$1" "$LB_PG_BIN/pg_isready" -q -t 1
}

# pg_table_sums DB: one line per table with rows (relkind r: ordinary
# tables, partitions, inheritance parents counted ONLY, unlogged tables):
# "schema.table<TAB>rows<TAB>md5". The checksum is over the rows as jsonb
# text (jsonb orders keys by name, so an inheritance child whose column
# order differs after a restore still compares equal), sorted.
# Materialized views are not tables: pg_compare_dbs checks them apart.
pg_table_sums() {
        psql_db "$1" -At -F $'\t' <<'SQL'
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(j, E''\n'' ORDER BY j), '''')) '
              'FROM (SELECT to_jsonb(t)::text AS j FROM ONLY %I.%I t) s',
              n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
ORDER BY n.nspname, c.relname
\gexec
SQL
}

# pg_table_sum DB SCHEMA.TABLE: the pg_table_sums line of one table.
pg_table_sum() {
        pg_table_sums "$1" | awk -F '\t' -v t="$2" '$1 == t'
}

# pg_seq_state DB: "schema.sequence<TAB>last_value<TAB>is_called" per
# sequence (identity and owned ones included).
pg_seq_state() {
        psql_db "$1" -At -F $'\t' <<'SQL'
SELECT format('SELECT %L, last_value, is_called FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' ORDER BY n.nspname, c.relname
\gexec
SQL
}

# pg_lo_state DB: "oid<TAB>owner<TAB>acl<TAB>size<TAB>md5" per large object.
pg_lo_state() {
        pg_val "$1" "SELECT oid, lomowner::regrole, coalesce(lomacl::text, '-'),
                length(lo_get(oid)), md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid"
}

# pg_matview_state DB: "schema.name<TAB>populated" per materialized view.
pg_matview_state() {
        pg_val "$1" "SELECT schemaname || '.' || matviewname, ispopulated FROM pg_matviews ORDER BY 1, 2"
}

# pg_children DB: inheritance children (not partitions), as pg_dump names
# them in COPY lines; their column order may legitimately differ.
pg_children() {
        pg_val "$1" "SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT c.relispartition ORDER BY 1"
}

# pg_plain_dump DB OUT [pg_dump options]: plain pg_dump of DB, normalized
# (see normalize_dump below) into OUT.
pg_plain_dump() {
        local db=$1 out=$2 children
        shift 2
        "$LB_PG_BIN/pg_dump" "$@" -f "$out.raw" "$db" 2>"$out.err" ||
                { cat "$out.err"; fail "pg_dump of $db failed"; }
        children=$(pg_children "$db" | paste -sd '|') || fail "could not list inheritance children of $db"
        python3 "$T/normalize_dump.py" "$db" "$children" <"$out.raw" >"$out" ||
                fail "could not normalize the dump of $db"
}

# The lines of two plain dumps that legitimately differ, and nothing else:
#  1. `\restrict KEY` / `\unrestrict KEY`: pg_dump >= 15.14 writes a random
#     key into every plain dump.
#  2. `-- Dumped from database version` / `-- Dumped by pg_dump version`.
#  3. The database name (with --create: CREATE DATABASE, \connect, ALTER
#     DATABASE, COMMENT ON DATABASE, GRANT ... ON DATABASE): replaced by
#     @DBNAME@ (whole identifier, plain or double-quoted).
#  4. Row order within a COPY block: a restore loads rows in a new
#     physical order, so each block's rows are compared as a sorted set.
#  5. The column order of inheritance children (argument 2, `|`-separated):
#     pg_dump recreates a child with the parent's columns first, so a
#     column added to the parent later moves. Only for those tables, the
#     COPY column list and every row's fields are permuted into column-name
#     order.
#  (6. Stale materialized-view contents never appear here: pg_dump writes
#     a REFRESH statement, not the rows; pg_compare_dbs checks them.)
cat >"$T/normalize_dump.py" <<'PY'
import re, sys
db = sys.argv[1]
children = set(filter(None, sys.argv[2].split("|")))
name_re = re.compile(r'(?<![\w$"])(?:%s|"%s")(?![\w$"])' % (re.escape(db), re.escape(db)))
copy_re = re.compile(r'^COPY (.+?) \((.*)\) FROM stdin;$')
out = sys.stdout
lines = sys.stdin.read().split("\n")
i = 0
while i < len(lines):
    line = lines[i]
    i += 1
    if line.startswith("\\restrict ") or line.startswith("\\unrestrict "):
        continue
    if line.startswith("-- Dumped from database version") or line.startswith("-- Dumped by pg_dump version"):
        continue
    line = name_re.sub("@DBNAME@", line)
    if line.startswith("COPY ") and line.endswith(" FROM stdin;"):
        rows = []
        while i < len(lines) and lines[i] != "\\.":
            rows.append(lines[i])
            i += 1
        i += 1
        m = copy_re.match(line)
        if m and m.group(1) in children:
            cols = m.group(2).split(", ")
            perm = sorted(range(len(cols)), key=lambda k: cols[k])
            line = "COPY %s (%s) FROM stdin;" % (m.group(1), ", ".join(cols[k] for k in perm))
            rows = ["\t".join(r.split("\t")[k] for k in perm) for r in rows]
        out.write(line + "\n")
        for r in sorted(rows):
            out.write(r + "\n")
        out.write("\\.\n")
        continue
    out.write(line + ("\n" if i < len(lines) else ""))
PY

# pg_compare_dbs SRC DST [create]: DST is a faithful restore of SRC:
# identical normalized plain dumps (with `create`, of `pg_dump --create`, so
# database-level settings, comments and grants count too), the same rows
# and checksums in every table, the same sequence states, the same large
# objects, materialized views populated alike and holding what their query
# returns now. Prints "ok - <label>: ..." lines with LABEL=$PG_LABEL.
pg_compare_dbs() {
        local src=$1 dst=$2 mode=${3:-} label=${PG_LABEL:-$2} opts=() f what=pg_dump
        if [[ $mode == create ]]; then
                opts=(--create)
                what="pg_dump --create"
        fi
        pg_plain_dump "$src" "$T/cmp.src.sql" "${opts[@]}"
        pg_plain_dump "$dst" "$T/cmp.dst.sql" "${opts[@]}"
        if ! diff -u "$T/cmp.src.sql" "$T/cmp.dst.sql" >"$T/cmp.diff"; then
                echo "# $what of $src and $dst differ (normalized; - source, + restore):"
                head -n 60 "$T/cmp.diff" | sed 's/^/#   /'
                fail "$label: the restored database's pg_dump differs from the source's"
        fi
        ok "$label: $what of the restore equals the source's ($(wc -l <"$T/cmp.src.sql") lines)"

        for f in pg_table_sums pg_seq_state pg_lo_state pg_matview_state; do
                "$f" "$src" >"$T/cmp.src.$f" || fail "$f $src failed"
                "$f" "$dst" >"$T/cmp.dst.$f" || fail "$f $dst failed"
                if ! diff -u "$T/cmp.src.$f" "$T/cmp.dst.$f" >"$T/cmp.diff"; then
                        head -n 40 "$T/cmp.diff" | sed 's/^/#   /'
                        fail "$label: $f differs between $src and $dst"
                fi
        done
        [[ -s $T/cmp.src.pg_table_sums ]] || fail "$label: no tables in $src?"
        ok "$label: row counts and checksums of all $(wc -l <"$T/cmp.src.pg_table_sums") tables match"
        ok "$label: $(wc -l <"$T/cmp.src.pg_seq_state") sequences (last_value, is_called), $(wc -l <"$T/cmp.src.pg_lo_state") large objects and $(wc -l <"$T/cmp.src.pg_matview_state") materialized views match"

        # A populated materialized view of the restore holds what its query
        # returns now (the source's may be stale: not compared with it).
        local mv diff
        while IFS=$'\t' read -r mv f; do
                [[ $f == t ]] || continue
                diff=$(pg_val "$dst" "SELECT count(*) FROM ((TABLE $mv EXCEPT ALL
                        SELECT * FROM ($(pg_val "$dst" "SELECT pg_get_viewdef('$mv'::regclass)" | sed 's/;$//')) q)
                        UNION ALL (SELECT * FROM ($(pg_val "$dst" "SELECT pg_get_viewdef('$mv'::regclass)" | sed 's/;$//')) q
                        EXCEPT ALL TABLE $mv)) d") || fail "$label: could not compare $mv with its query"
                [[ $diff == 0 ]] || fail "$label: materialized view $mv differs from its query in $dst ($diff rows)"
        done <"$T/cmp.dst.pg_matview_state"
        ok "$label: populated materialized views hold their query's current result"
}
