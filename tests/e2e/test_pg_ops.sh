#!/usr/bin/env bash
# Running it for real with a PostgreSQL server: the progress line of
# `backup --db` and `restore --dbname` (on a terminal, absent without one,
# JSON status lines with --json); longbox's own config, secrets removed, in
# every database snapshot as /config/longbox.conf; `status` judging each
# configured database by its own newest snapshot. The terminal is a pty
# from util-linux script(1), as in test_progress.sh.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

if ! command -v script >/dev/null || ! script -qfec true /dev/null >/dev/null 2>&1; then
        skip "script(1) from util-linux cannot give a pty here"
        exit 77
fi
# Updates every 1 ms instead of 200 ms: a small database's backup is quick.
export LONGBOX_PROGRESS_FPS=1000

# on_tty OUT CMD...: run CMD with stdin, stdout and stderr on a 160-column
# pty; what the terminal showed goes to OUT. Fails unless CMD exits 0.
on_tty() {
        local out=$1 cmd
        shift
        printf -v cmd '%q ' "$@"
        script -qfec "stty cols 160 && exec $cmd" /dev/null >"$out" </dev/null || fail "on a tty, exit $?: $*"
}

SHOP=lbt_ops_shop
CRM=lbt_ops_crm
RESTORED=lbt_ops_restored
pg_load_testdb "$SHOP" 60000
pg_fresh_db "$CRM"
psql_db "$CRM" -c "CREATE TABLE contacts (id int PRIMARY KEY, name text); INSERT INTO contacts VALUES (1, 'Ann')" ||
        fail "could not fill $CRM"
TABLES=$(pg_val "$SHOP" "SELECT string_agg(n.nspname || '.' || c.relname, ' ') FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')")
ok "databases $SHOP ($(pg_val "$SHOP" "SELECT pg_size_pretty(pg_database_size('$SHOP'))")) and $CRM loaded"

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"

# --- progress of backup --db ----------------------------------------------------------------------
# --json: status lines on stdout, then the summary; the first backup's total
# is the tables' size on disk, an estimate.
expect_exit 0 lb backup --db "$(pg_conninfo "$SHOP")" --json
[[ ! -s $LB_ERR ]] || fail "backup --db --json wrote to stderr: $(head -c 300 "$LB_ERR")"
python3 - "$LB_OUT" "$TABLES" <<'EOF' || fail "backup --db --json: status lines and summary not as expected"
import json, sys
tables = set(sys.argv[2].split())
docs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
status = [d for d in docs if d["message_type"] == "status"]
assert status, f"no status line: {docs[:2]}"
for s in status:
    assert s["action"] == "backup", s
    for k in ("percent_done", "bytes_done", "total_bytes", "current_files", "total_files"):
        assert k in s, f"{k} missing in {s}"
    assert 0 <= s["percent_done"] <= 1, s
    assert "seconds_remaining" in s or s["bytes_done"] == 0, s
dones = [s["bytes_done"] for s in status]
assert dones == sorted(dones), f"bytes_done goes backwards: {dones}"
assert any(f in tables for s in status for f in s["current_files"]), f"no table as the current item: {status[:3]}"
assert docs[-1]["message_type"] == "summary" and docs[-1]["database"] == "lbt_ops_shop", docs[-1]
assert len(docs) == len(status) + 1, "something else than status lines and one summary"
print(f"# {len(status)} status lines, e.g. {json.dumps(status[len(status) // 2])[:300]}")
EOF
ok "backup --db --json: status lines (bytes, estimated total, remaining time, the table) and the summary"

# On a tty: one line, redrawn, with tables done, bytes of the total (now
# the previous snapshot's size), rate, ETA and the table being copied.
on_tty "$T/tty.backup" "$LONGBOX" backup --db "$(pg_conninfo "$SHOP")"
python3 - "$T/tty.backup" "$TABLES" <<'EOF' || fail "backup --db on a tty: no progress line with tables, bytes, rate, ETA and the table"
import re, sys
tables = set(sys.argv[2].split())
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
lines = re.findall(r"\r\x1b\[Kbackup: ([^\r\n\x1b]*)", t)
pat = re.compile(r"^\[\d+/\d+ tables\] [\d.]+ (B|KiB|MiB) of [\d.]+ (KiB|MiB) \(\d+%\), [\d.]+ (B|KiB|MiB|GiB)/s, "
                 r"ETA \S+( s)?  (\S+)$")
good = [l for l in lines if (m := pat.search(l)) and m.group(5) in tables]
assert good, f"no line '[I/N tables] X of Y (N%), R/s, ETA T  TABLE': {lines[:5]} in {t[:600]!r}"
assert re.search(r"\x1b\[Kdatabase: +lbt_ops_shop ", t), f"summary not after an erased line: {t[-600:]!r}"
print(f"# {len(good)} lines, e.g. 'backup: {good[len(good) // 2]}'")
EOF
ok "backup --db on a tty: tables done, bytes of the total, rate, ETA and the current table"

# stderr not a tty: no progress, the summary as before.
expect_exit 0 lb backup --db "$(pg_conninfo "$SHOP")"
if grep -aq -e 'ETA' -e $'\r' -e 'tables\]' "$LB_ERR" "$LB_OUT"; then
        fail "backup --db wrote progress without a tty: $(head -c 300 "$LB_ERR" | cat -v)"
fi
grep -q "^snapshot [0-9a-f]* saved" "$LB_OUT" || fail "backup --db without a tty: no summary"
ok "backup --db without a tty: no progress line"

# --- progress of restore --dbname -----------------------------------------------------------------
pg_drop_db "$RESTORED"
on_tty "$T/tty.restore" "$LONGBOX" restore latest --dbname "$(pg_conninfo "$RESTORED")" --create
python3 - "$T/tty.restore" "$TABLES" <<'EOF' || fail "restore --dbname on a tty: no progress line with tables, bytes, rate, ETA and the table"
import re, sys
tables = set(sys.argv[2].split())
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
lines = re.findall(r"\r\x1b\[Krestore: ([^\r\n\x1b]*)", t)
pat = re.compile(r"^\[\d+/\d+ tables\] [\d.]+ (B|KiB|MiB) of [\d.]+ (KiB|MiB) \(\d+%\), [\d.]+ (B|KiB|MiB|GiB)/s, "
                 r"ETA \S+( s)?  (\S+)$")
good = [l for l in lines if (m := pat.search(l)) and m.group(5) in tables]
assert good, f"no line '[I/N tables] X of Y (N%), R/s, ETA T  TABLE': {lines[:5]} in {t[:600]!r}"
# Each table's line on stdout starts a line of its own: the progress line is erased first.
# After the data, the line names each step that starts (an index build, a
# foreign key check, an ANALYZE) rather than freezing on the last table.
steps = [l for l in lines if re.search(r"  (INDEX|CONSTRAINT|FK CONSTRAINT|ANALYZE) \S.*$", l)]
assert any("ANALYZE " in l for l in steps) and any("ANALYZE " not in l for l in steps), \
    f"no index build and ANALYZE steps in the progress lines: {lines[-8:]}"
assert re.search(r"\x1b\[K  bulk\.ledger: 60000 rows", t), f"table line not after an erased line: {t[-800:]!r}"
print(f"# {len(good)} lines, e.g. 'restore: {good[len(good) // 2]}'")
EOF
[[ $(pg_table_sum "$RESTORED" bulk.ledger) == "$(pg_table_sum "$SHOP" bulk.ledger)" ]] ||
        fail "restore on a tty: bulk.ledger differs from the source"
ok "restore --dbname on a tty: tables done, bytes of the total, rate, ETA and the current table"

pg_drop_db "$RESTORED"
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$RESTORED")" --create
if grep -aq -e 'ETA' -e $'\r' -e 'tables\]' "$LB_ERR" "$LB_OUT"; then
        fail "restore --dbname wrote progress without a tty: $(head -c 300 "$LB_ERR" | cat -v)"
fi
grep -q "^restored snapshot .* into $RESTORED" "$LB_OUT" || fail "restore --dbname without a tty: no summary"
ok "restore --dbname without a tty: no progress line"

pg_drop_db "$RESTORED"
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$RESTORED")" --create --json
[[ ! -s $LB_ERR ]] || fail "restore --dbname --json wrote to stderr: $(head -c 300 "$LB_ERR")"
python3 - "$LB_OUT" "$TABLES" <<'EOF' || fail "restore --dbname --json: status lines and summary not as expected"
import json, sys
tables = set(sys.argv[2].split())
docs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
status = [d for d in docs if d["message_type"] == "status"]
assert status, f"no status line: {docs[:2]}"
for s in status:
    assert s["action"] == "restore" and 0 < s["total_bytes"] and s["bytes_done"] <= s["total_bytes"], s
    assert s["files_done"] <= s["total_files"], s
assert any(f in tables for s in status for f in s["current_files"]), f"no table as the current item: {status[:3]}"
dones = [s["bytes_done"] for s in status]
assert dones == sorted(dones), f"bytes_done goes backwards: {dones}"
assert any(f.startswith("ANALYZE ") for s in status for f in s["current_files"]), f"no ANALYZE step: {status[-3:]}"
assert docs[-1]["message_type"] == "summary" and docs[-1]["rows_restored"] > 60000, docs[-1]
assert len(docs) == len(status) + 1, "something else than status lines and one summary"
EOF
ok "restore --dbname --json: status lines and the summary"

# --- longbox's config in the snapshot, secrets removed -----------------------------------------------
printf 'AWS_ACCESS_KEY_ID=x\n' >"$T/creds"
echo "SELECT true;" >"$T/check.sql"
chmod 600 "$T/creds"
CONF=$T/longbox.conf
cat >"$CONF" <<EOC
# longbox.conf of the shop server (test_pg_ops.sh)
; comments of both kinds stay

[repository]
location = $LONGBOX_REPO
password = inline-repo-secret-1   ; env LONGBOX_PASSWORD wins
cache-dir = $T/cache

[remote]
location = webdav:https://backup:webdav-secret-2@dav.invalid/shop
  credentials-file = $T/creds
max-age = 30h

[database shop]
conninfo = $(pg_conninfo "$SHOP") password=pg-secret-3
jobs = 2

[database crm]
conninfo = postgresql://$LB_PGUSER:uri-secret-4@localhost/$CRM

[notify]
webhook = https://hooks.example.invalid/services/T0/B0/webhook-secret-5
timeout = 5

[drill]
conninfo=host=$LB_PGHOST port=$LB_PGPORT user=$LB_PGUSER sslpassword=drill-secret-6
sql-check = $T/check.sql
EOC
chmod 600 "$CONF"
expect_exit 0 lb --config "$CONF" config check
expect_exit 0 lb --config "$CONF" backup --db "$(pg_conninfo "$CRM")" --json
SNAP=$(json 'd["snapshot_id"]' <"$LB_OUT")
expect_exit 0 lb ls "$SNAP" /config
grep -q '/config/longbox.conf$' "$LB_OUT" || fail "no /config/longbox.conf in the snapshot: $(cat "$LB_OUT")"
lb dump "$SNAP" /config/longbox.conf >"$T/stored.conf" || fail "longbox dump of /config/longbox.conf failed"
for secret in inline-repo-secret-1 webdav-secret-2 pg-secret-3 uri-secret-4 webhook-secret-5 drill-secret-6; do
        if grep -q -F "$secret" "$T/stored.conf"; then
                fail "the stored config holds the secret $secret: $(grep -F "$secret" "$T/stored.conf")"
        fi
done
python3 - "$CONF" "$T/stored.conf" <<'EOF' || fail "the stored config is not the file with exactly its secret values replaced"
import sys
orig = open(sys.argv[1]).read().split("\n")
stored = open(sys.argv[2]).read().split("\n")
assert len(orig) == len(stored), f"{len(orig)} lines became {len(stored)}"
redacted = 0
for o, s in zip(orig, stored):
    if "secret-" in o:
        assert s.endswith("<redacted>") and o.startswith(s[:-len("<redacted>")]), f"{o!r} -> {s!r}"
        assert "=" in s[:-len("<redacted>")], s
        redacted += 1
    else:
        assert o == s, f"{o!r} -> {s!r}"
assert redacted == 6, redacted
EOF
grep -q -F "credentials-file = $T/creds" "$T/stored.conf" || fail "the path of a secret file was not kept"
rm -rf "$T/rc"
expect_exit 0 lb restore "$SNAP" --target "$T/rc" --include /config/longbox.conf
cmp "$T/rc/config/longbox.conf" "$T/stored.conf" || fail "restore --include /config/longbox.conf differs from dump"
[[ $(stat -c %a "$T/rc/config/longbox.conf") == 600 ]] || fail "the stored config is not mode 0600"
ok "backup --db stores /config/longbox.conf: comments and layout kept, the 6 secret values <redacted>"

# --- status per configured database -----------------------------------------------------------------
export LONGBOX_REPO=$T/status-repo
init_repo "$LONGBOX_REPO"
SCONF=$T/status.conf
cat >"$SCONF" <<EOC
[database shop]
conninfo = $(pg_conninfo "$SHOP")
[database crm]
conninfo = $(pg_conninfo "$CRM")
EOC
export LONGBOX_CONFIG=$SCONF
expect_exit 0 lb backup --db "$(pg_conninfo "$SHOP")"
expect_exit 0 lb check
expect_exit 2 lb status
grep -q '^LONGBOX CRITICAL - database crm (lbt_ops_crm): no snapshot' "$LB_OUT" || fail "crm never backed up: $(cat "$LB_OUT")"
grep -q 'database shop (lbt_ops_shop): newest snapshot [0-9]*s ago' "$LB_OUT" || fail "status does not judge shop: $(cat "$LB_OUT")"
grep -q ' snapshot_age_shop=[0-9]*s;93600; snapshot_age_crm=U ' "$LB_OUT" || fail "perfdata per database: $(cat "$LB_OUT")"
ok "status: a configured database never backed up is CRITICAL, named; perfdata per database"

# crm backed up, but 3 days ago.
expect_exit 0 lb backup --db "$(pg_conninfo "$CRM")" --time "$(date -d '3 days ago' '+%Y-%m-%d %H:%M:%S')"
expect_exit 2 lb status
grep -q '^LONGBOX CRITICAL - database crm (lbt_ops_crm): newest snapshot [0-9a-f]\{8\} is 3d00h old (more than 1d02h)' "$LB_OUT" ||
        fail "a late database is not named: $(cat "$LB_OUT")"
if grep -q 'database shop .* old' "$LB_OUT"; then fail "shop is called late: $(cat "$LB_OUT")"; fi
grep -q ' snapshot_age_crm=2[0-9]\{5\}s;93600;' "$LB_OUT" || fail "crm's age is not about 3 days: $(cat "$LB_OUT")"
expect_exit 2 lb status --json
python3 - "$LB_OUT" <<'EOF' || fail "status --json does not list the databases: $(cat "$LB_OUT")"
import json, sys
d = json.load(open(sys.argv[1]))
dbs = {x["name"]: x for x in d["databases"]}
assert set(dbs) == {"shop", "crm"}, dbs
assert dbs["shop"]["status"] == "ok" and dbs["shop"]["database"] == "lbt_ops_shop", dbs["shop"]
assert dbs["crm"]["status"] == "critical" and 3 * 86400 - 60 < dbs["crm"]["age_seconds"] < 3 * 86400 + 600, dbs["crm"]
assert len(dbs["crm"]["snapshot_id"]) == 64 and dbs["crm"]["limit_seconds"] == 93600
assert d["status"] == "critical" and d["exit_code"] == 2
EOF
# (WARNING: no drill yet.)
expect_exit 1 lb status --max-age 4d
grep -q '^LONGBOX WARNING - no successful drill recorded; database shop (lbt_ops_shop): newest snapshot [0-9]*s ago; database crm (lbt_ops_crm): newest snapshot 3d00h ago' \
        "$LB_OUT" || fail "status --max-age 4d: $(cat "$LB_OUT")"
ok "status: a database whose newest snapshot is older than --max-age is CRITICAL and named; --json lists each"

# Both fresh, a check and a drill: OK.
expect_exit 0 lb backup --db "$(pg_conninfo "$CRM")"
expect_exit 0 lb drill --database "$CRM" --conninfo "host=$LB_PGHOST port=$LB_PGPORT user=$LB_PGUSER" \
        --dbname-prefix lbt_ops_drill_
expect_exit 0 lb status
grep -q '^LONGBOX OK - .*database shop (lbt_ops_shop): newest snapshot .*database crm (lbt_ops_crm): newest snapshot' "$LB_OUT" ||
        fail "both fresh: $(cat "$LB_OUT")"
grep -q ' snapshot_age_shop=[0-9]*s;93600; snapshot_age_crm=[0-9]*s;93600; ' "$LB_OUT" || fail "perfdata: $(cat "$LB_OUT")"
ok "status: every configured database fresh, a check and a drill: OK"

# Without databases in the config: the newest snapshot overall, as before.
expect_exit 0 env LONGBOX_CONFIG="$T/.empty.conf" "$LONGBOX" status
grep -q '^LONGBOX OK - newest snapshot [0-9]*s ago' "$LB_OUT" || fail "status without a config: $(cat "$LB_OUT")"
if grep -q 'database\|snapshot_age_' "$LB_OUT"; then fail "status without databases names one: $(cat "$LB_OUT")"; fi
ok "status without configured databases: the newest snapshot overall"

# A [database] section without a name: labelled by its database's name,
# quoted in the perfdata when it has a space.
cat >"$T/plain.conf" <<EOC
[database]
conninfo = dbname='lbt ops never'
EOC
expect_exit 2 env LONGBOX_CONFIG="$T/plain.conf" "$LONGBOX" status
grep -q "^LONGBOX CRITICAL - database lbt ops never: no snapshot" "$LB_OUT" || fail "unnamed section: $(cat "$LB_OUT")"
grep -q " 'snapshot_age_lbt ops never'=U " "$LB_OUT" || fail "a label with spaces is not quoted: $(cat "$LB_OUT")"
ok "status: an unnamed [database] is labelled by its database, quoted in the perfdata"
