#!/usr/bin/env bash
# Consistency under writes: while `longbox backup --db --jobs 2` runs, a
# writer commits transfers between accounts (the total never changes) and
# logs each one. The restore must be one instant of the database: the total
# is the constant, every account's balance is its opening balance plus the
# restored log's transfers, and the log holds at least every transfer
# committed before the backup began and none committed after it ended.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

DB=lbt_cons
ACCOUNTS=200000
OPENING=1000
TOTAL=$((ACCOUNTS * OPENING))
pg_fresh_db "$DB"
psql_db "$DB" -v accounts="$ACCOUNTS" -v opening="$OPENING" >/dev/null <<'SQL' || fail "could not create the accounts"
CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL, owner text NOT NULL);
INSERT INTO accounts SELECT n, :opening, 'owner ' || n || ' ' || md5(n::text) || md5(n::text)
FROM generate_series(1, :accounts) AS n;
CREATE TABLE transfers (
        id bigserial PRIMARY KEY,
        src integer NOT NULL REFERENCES accounts,
        dst integer NOT NULL REFERENCES accounts,
        amount bigint NOT NULL,
        at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE control (stop boolean NOT NULL);
INSERT INTO control VALUES (false);
-- One transfer per transaction, bounded in count and time, stopped early
-- by control.stop.
CREATE PROCEDURE transfer_loop(max_n integer, max_seconds float8) LANGUAGE plpgsql AS $$
DECLARE
        a integer; b integer; amt bigint; i integer := 0;
        t0 timestamptz := clock_timestamp();
        n integer := (SELECT count(*) FROM accounts);
BEGIN
        LOOP
                EXIT WHEN i >= max_n OR clock_timestamp() - t0 > max_seconds * interval '1 second'
                        OR (SELECT stop FROM control);
                a := 1 + floor(random() * n);
                b := 1 + floor(random() * n);
                amt := 1 + floor(random() * 100);
                UPDATE accounts SET balance = balance - amt WHERE id = a;
                UPDATE accounts SET balance = balance + amt WHERE id = b;
                INSERT INTO transfers (src, dst, amount) VALUES (a, b, amt);
                COMMIT;
                i := i + 1;
                PERFORM pg_sleep(0.0005);
        END LOOP;
END $$;
SQL
# Bulk so that the backup takes a few seconds (~120 MB of COPY text).
pg_load_bulk "$DB" 800000
ok "database $DB: $ACCOUNTS accounts holding $TOTAL, $(pg_val "$DB" "SELECT pg_size_pretty(pg_database_size('$DB'))")"

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"

transfers() { pg_val "$DB" "SELECT count(*) FROM transfers"; }
writer_started() { (($(transfers) >= 50)); }
writer_done() { ! kill -0 "$WRITER" 2>/dev/null; }

"$LB_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "CALL transfer_loop(1000000, 240)" >"$T/writer.out" 2>&1 &
WRITER=$!
register_pid "$WRITER"
wait_for 30 writer_started || fail "the writer committed no transfers within 30 s: $(cat "$T/writer.out")"

before=$(transfers)
t0=$(date +%s.%N)
expect_exit 0 lb backup --db "$(pg_conninfo "$DB")" --jobs 2
t1=$(date +%s.%N)
after=$(transfers)
psql_db "$DB" -c "UPDATE control SET stop = true" >/dev/null
wait_for 60 writer_done || fail "the writer did not stop within 60 s"
wrc=0
wait "$WRITER" || wrc=$?
((wrc == 0)) || fail "the writer failed (exit $wrc): $(cat "$T/writer.out")"
during=$((after - before))
secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
((during > 0)) || fail "no transfer was committed during the ${secs}s backup: the test proved nothing"
ok "backup --jobs 2 took ${secs}s while the writer committed $during transfers ($before before it)"

[[ $(pg_val "$DB" "SELECT sum(balance) FROM accounts") == "$TOTAL" ]] ||
        fail "the source's total is not $TOTAL: the writer is broken"

RESTORED=lbt_cons_restored
pg_drop_db "$RESTORED"
expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$RESTORED")" --create --jobs 2
total=$(pg_val "$RESTORED" "SELECT sum(balance) FROM accounts")
[[ $total == "$TOTAL" ]] || fail "the restored total is $total, not $TOTAL"
ok "restored total equals the constant $TOTAL"

n=$(pg_val "$RESTORED" "SELECT count(*) FROM transfers")
((n >= before && n <= after)) ||
        fail "the restore holds $n transfers: not between $before (before the backup) and $after (after it)"
[[ $(pg_val "$RESTORED" "SELECT count(*) FROM accounts") == "$ACCOUNTS" ]] || fail "accounts were lost"
bad=$(pg_val "$RESTORED" "SELECT count(*) FROM accounts a
        LEFT JOIN (SELECT id, sum(d) AS d FROM (SELECT src AS id, -amount AS d FROM transfers
                   UNION ALL SELECT dst, amount FROM transfers) x GROUP BY id) t USING (id)
        WHERE a.balance <> $OPENING + coalesce(t.d, 0)")
[[ $bad == 0 ]] || fail "$bad restored balances disagree with the restored transfer log: not one instant"
[[ $(pg_val "$RESTORED" "SELECT max(id) = count(*) FROM transfers") == t ]] ||
        fail "the restored transfer log has gaps: it is not a prefix of the log (not one instant)"
ok "restored balances and transfer log are one instant ($n transfers: $before <= $n <= $after)"

# Sequences are read outside MVCC: the restored one must not hand out an id
# that the restored log already uses.
[[ $(pg_val "$RESTORED" "SELECT nextval('transfers_id_seq') > (SELECT coalesce(max(id), 0) FROM transfers)") == t ]] ||
        fail "the restored transfers_id_seq would reuse an existing id"
pg_val "$RESTORED" "CALL transfer_loop(5, 10)" >/dev/null || fail "new transfers fail in the restored database"
ok "the restored database takes new transfers (sequence past the restored ids)"
