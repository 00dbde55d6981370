#!/usr/bin/env bash
# Deltas (docs/design.md "Deltas"): nightly `backup --db` of a table where
# one row in twenty changes a night stores the changed pages as deltas
# against the previous night's, restores exactly, survives `forget
# --prune` of the nights whose chunks were the bases, and `check
# --read-data` verifies every delta through its base.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"

DB=lbt_delta
RESTORED=lbt_delta_restored
pg_fresh_db "$DB"
psql_db "$DB" >/dev/null <<'SQL' || fail "could not create the inventory"
CREATE TABLE inventory (id integer PRIMARY KEY, issue integer NOT NULL, quantity integer NOT NULL,
                        location text NOT NULL, note text NOT NULL);
INSERT INTO inventory SELECT n, (n * 7919) % 100000, n % 50, 'shelf ' || (n % 400),
                             md5(n::text) FROM generate_series(1, 150000) AS n;
SQL
export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"

night() { # night N: one row in twenty changes its quantity, then a backup
        psql_db "$DB" -c "UPDATE inventory SET quantity = quantity + $1 WHERE (id * 31 + $1 * 17) % 20 = 0" >/dev/null ||
                fail "night $1: the update failed"
        expect_exit 0 lb backup --db "$(pg_conninfo "$DB")" --jobs 2 --tag "night$1"
}
expect_exit 0 lb backup --db "$(pg_conninfo "$DB")" --jobs 2 --tag night0
for n in 1 2 3; do night "$n"; done

stored() { lb snapshots --json | json "[s['summary']['bytes_stored'] for s in d if '$1' in s['tags']][0]"; }
s0=$(stored night0) s1=$(stored night1) s3=$(stored night3)
ok "bytes stored: night 0 $s0, night 1 $s1, night 3 $s3"
((s1 * 4 < s0)) || fail "night 1 stored $s1 bytes, not under a quarter of night 0's $s0: no deltas?"
((s3 * 3 < s0)) || fail "night 3 stored $s3 bytes, not under a third of night 0's $s0"

want=$(pg_table_sum "$DB" public.inventory)
restore_and_compare() {
        pg_drop_db "$RESTORED"
        expect_exit 0 lb restore latest --dbname "$(pg_conninfo "$RESTORED")" --create
        got=$(pg_table_sum "$RESTORED" public.inventory)
        [[ $got == "$want" ]] || fail "$1: restored inventory differs: $got, want $want"
        ok "$1: the latest snapshot restores exactly"
}
restore_and_compare "before prune"
expect_exit 0 lb check --read-data
ok "check --read-data reads every delta through its base"

# Nights 0-2 held the bases; night 3 is mostly deltas against them.
expect_exit 0 lb forget --keep-last 1 --prune
[[ $(snapshot_count) == 1 ]] || fail "forget --keep-last 1 left $(snapshot_count) snapshots"
expect_exit 0 lb check --read-data
ok "after forget --prune of the nights with the bases, check --read-data passes"
restore_and_compare "after prune"
