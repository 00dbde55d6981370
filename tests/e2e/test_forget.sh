#!/usr/bin/env bash
# forget: the retention policy on 40 simulated days of backups (a dry run
# changes nothing; the default policy keeps exactly the expected snapshots,
# computed here independently), forgetting named snapshots, the refusals,
# and that what remains restores.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"
SRC=$T/src
OTHER=$T/other
mkdir -p "$SRC" "$OTHER"

# The backups run in Central European time (a POSIX TZ rule, no tzdata
# needed) at 00:30 local, which is 23:30 UTC the day before: the policy must
# bucket by the snapshot's own local date, not by UTC nor by the zone forget
# runs in (TZ=UTC, from lib.sh).
BERLIN='CET-1CEST,M3.5.0,M10.5.0/3'
mapfile -t DAYS < <(python3 -c 'import datetime
d = datetime.date(2024, 1, 20)
for i in range(40): print(d + datetime.timedelta(i))')
((${#DAYS[@]} == 40)) && [[ ${DAYS[39]} == 2024-02-28 ]] || fail "day list is wrong: ${DAYS[*]}"

for i in "${!DAYS[@]}"; do
        day=${DAYS[$i]}
        printf 'day %s\n' "$day" >"$SRC/day.txt"
        printf 'entry %d %s\n' "$i" "$day" >>"$SRC/log.txt"
        TZ=$BERLIN expect_exit 0 lb backup --quiet --time "$day 00:30:00" "$SRC"
done
# Another host's backups: a group of its own that the first group's
# snapshots never push out.
for day in 2024-02-26 2024-02-27 2024-02-28; do
        printf 'other %s\n' "$day" >"$OTHER/day.txt"
        expect_exit 0 lb backup --quiet --host other --time "$day 12:00:00" "$OTHER"
done
(($(snapshot_count) == 43)) || fail "expected 43 snapshots after the backups"
ok "43 backups on 40 simulated days"

HOST=$(lb snapshots --json | json 'd[0]["hostname"]')

# The default policy, worked out independently: restic's rules over the
# local dates (newest first; each rule keeps the newest snapshot of each of
# its last N buckets, and the oldest snapshot if it still has count left).
EXPECTED=$(python3 - "${DAYS[@]}" <<'EOF'
import datetime, sys
days = sorted((datetime.date.fromisoformat(s) for s in sys.argv[1:]), reverse=True)
kept = set()
for n, bucket in ((7, lambda d: d), (5, lambda d: d.isocalendar()[:2]), (4, lambda d: (d.year, d.month))):
    last = None
    for i, d in enumerate(days):
        if n == 0:
            break
        if bucket(d) != last or i == len(days) - 1:
            kept.add(d)
            last = bucket(d)
            n -= 1
print(" ".join(str(d) for d in sorted(kept)))
EOF
)
# By hand: daily 02-22..02-28; weekly (ISO, Sundays) 02-28 (Wed), 02-25,
# 02-18, 02-11, 02-04; monthly 02-28, 01-31, then the oldest, 01-20.
BY_HAND="2024-01-20 2024-01-31 2024-02-04 2024-02-11 2024-02-18 2024-02-22 2024-02-23 2024-02-24 2024-02-25 2024-02-26 2024-02-27 2024-02-28"
[[ $EXPECTED == "$BY_HAND" ]] || fail "the test's own expectation is inconsistent: python says $EXPECTED"

# main_dates: the local dates of the snapshots of this host, sorted.
main_dates() {
        lb snapshots --json | json '" ".join(sorted(s["time"][:10] for s in d if s["hostname"] != "other"))'
}
other_count() {
        lb snapshots --json | json 'len([s for s in d if s["hostname"] == "other"])'
}
# id_of DATE: the id of this host's snapshot of that local date.
id_of() {
        lb snapshots --json | json "[s['id'] for s in d if s['hostname'] != 'other' and s['time'][:10] == '$1'][0]"
}

# --- refusals -------------------------------------------------------------------------
expect_exit 2 lb forget
output_has "would remove every snapshot" || fail "no-policy refusal does not say why"
output_has "--keep-daily 7 --keep-weekly 5 --keep-monthly 4" || fail "no-policy refusal does not suggest the default"
[[ $(wc -l <"$LB_ERR") == 1 ]] || fail "no-policy refusal printed more than one message"
expect_exit 2 lb forget --keep-last 0 --keep-within 0d
output_has "would remove every snapshot" || fail "a policy of zeros was not refused as empty"
expect_exit 2 lb forget --keep-within 1x
output_has "--keep-within" || fail "bad duration: message does not name the option"
expect_exit 2 lb forget --keep-daily -1
expect_exit 2 lb forget --keep-daily 7 --group-by hosts
expect_exit 2 lb forget --keep-tag ',a' --keep-last 1
expect_exit 2 lb forget --keep-daily 7 "$(id_of 2024-02-11)"
output_has "not both" || fail "policy and snapshot names together not refused clearly"
expect_exit 2 lb forget not-an-id
(($(snapshot_count) == 43)) || fail "a refused forget removed snapshots"
ok "forget refuses no policy (exit 2, suggests the default), bad options, and policy with names"

# --- dry run ---------------------------------------------------------------------------
POLICY=(--keep-daily 7 --keep-weekly 5 --keep-monthly 4)
repo_state "$LONGBOX_REPO" >"$T/state.before"
expect_exit 0 lb forget "${POLICY[@]}" --dry-run
repo_state "$LONGBOX_REPO" >"$T/state.after"
diff -u "$T/state.before" "$T/state.after" >/dev/null || fail "forget --dry-run changed the repository"
(($(grep -c '^  remove ' "$LB_OUT") == 28)) || fail "dry run does not list 28 snapshots to remove"
(($(grep -c '^  keep ' "$LB_OUT") == 15)) || fail "dry run does not list 15 snapshots to keep"
grep -q '2024-01-20T00:30:00+01:00  oldest monthly snapshot$' "$LB_OUT" ||
        fail "dry run does not show the oldest snapshot as 'oldest monthly snapshot'"
grep -q '2024-02-28T00:30:00+01:00  daily snapshot, weekly snapshot, monthly snapshot$' "$LB_OUT" ||
        fail "dry run does not list every rule that keeps the newest snapshot"
output_has "host=other paths=$OTHER: keep 3, remove 0" || fail "dry run does not show the other host's group"
output_has "would remove 28 snapshots and keep 15" || fail "dry run summary missing"
ok "forget --dry-run lists keep (with rules) and remove, and changes nothing"

expect_exit 0 lb forget "${POLICY[@]}" --dry-run --json
repo_state "$LONGBOX_REPO" >"$T/state.after"
diff -u "$T/state.before" "$T/state.after" >/dev/null || fail "forget --dry-run --json changed the repository"
python3 - "$LB_OUT" "$EXPECTED" "$HOST" "$SRC" "$OTHER" <<'EOF' || fail "forget --dry-run --json is not as expected"
import json, sys
out, expected, host, src, other = sys.argv[1:]
groups = json.load(open(out))
assert isinstance(groups, list) and len(groups) == 2, groups
by_host = {g["host"]: g for g in groups}
g = by_host[host]
assert g["group"] == "host=%s paths=%s" % (host, src), g["group"]
assert g["paths"] == [src], g
assert " ".join(sorted(s["time"][:10] for s in g["keep"])) == expected, g["keep"]
assert len(g["remove"]) == 28, len(g["remove"])
reasons = {r["snapshot"]["time"][:10]: r["matches"] for r in g["reasons"]}
assert reasons["2024-01-20"] == ["oldest monthly snapshot"], reasons
assert reasons["2024-01-31"] == ["monthly snapshot"], reasons
assert reasons["2024-02-28"] == ["daily snapshot", "weekly snapshot", "monthly snapshot"], reasons
assert reasons["2024-02-25"] == ["daily snapshot", "weekly snapshot"], reasons
assert len(reasons) == 12
for s in g["keep"] + g["remove"]:
    assert len(s["id"]) == 64 and s["short_id"] == s["id"][:8] and s["hostname"] == host, s
o = by_host["other"]
assert len(o["keep"]) == 3 and o["remove"] == [], o
EOF
ok "forget --dry-run --json: groups with keep, remove and reasons, as computed"

# --- the real thing ----------------------------------------------------------------------
expect_exit 0 lb forget "${POLICY[@]}"
output_has "removed 28 snapshots, kept 15" || fail "forget summary missing"
[[ $(main_dates) == "$EXPECTED" ]] || fail "forget kept $(main_dates), expected $EXPECTED"
(($(other_count) == 3)) || fail "forget touched the other host's group"
ok "forget with 7 daily, 5 weekly, 4 monthly keeps exactly the expected 12 (+3 of the other host)"

expect_exit 0 lb forget "${POLICY[@]}"
output_has "removed 0 snapshots, kept 15" || fail "a second forget with the same policy removed something"
ok "forget is idempotent"

# --- named snapshots ---------------------------------------------------------------------
GONE=$(id_of 2024-02-11)
expect_exit 0 lb forget "${GONE:0:10}"
output_has "removed 1 snapshot, kept 14" || fail "forget SNAP summary missing"
[[ $(main_dates) == "${EXPECTED/2024-02-11 /}" ]] || fail "forget SNAP did not remove exactly 2024-02-11: $(main_dates)"
expect_exit 1 lb forget "${GONE:0:10}"
output_has "no snapshot ${GONE:0:10}" || fail "forgetting a removed snapshot does not say it is not there"
expect_exit 1 lb forget "$(id_of 2024-02-18)" 0000000000000000000000000000000000000000000000000000000000000000
(($(snapshot_count) == 14)) || fail "forget with one unknown name removed the known one"
ok "forget SNAP removes that snapshot; an unknown name removes nothing (exit 1)"

# --prune: forget, then prune what only the forgotten snapshot used
# (test_prune.sh covers prune itself). A dry run counts the snapshot as
# gone and changes nothing.
OLDEST_OTHER=$(lb snapshots --json | json '[s["id"] for s in d if s["hostname"] == "other"][0]')
packs_before=$(find "$LONGBOX_REPO/packs" -type f | wc -l)
expect_exit 0 lb forget --dry-run --prune --json "${OLDEST_OTHER:0:12}"
(($(other_count) == 3)) || fail "forget --dry-run --prune removed a snapshot"
tail -n 1 "$LB_OUT" | json 'd["dry_run"]' | grep -q true || fail "forget --dry-run --prune printed no prune summary"
expect_exit 0 lb forget --prune "${OLDEST_OTHER:0:12}"
(($(other_count) == 2)) || fail "forget --prune did not forget"
output_has "freed" || fail "forget --prune printed no prune summary"
(($(find "$LONGBOX_REPO/packs" -type f | wc -l) <= packs_before)) || fail "forget --prune added packs"
expect_exit 2 lb forget --max-unused 5 "${OLDEST_OTHER:0:12}"
ok "forget --prune forgets, then prunes; --dry-run changes nothing; --max-unused needs --prune"

# --- what remains restores ------------------------------------------------------------------
expect_exit 0 lb check
lb snapshots --json | json '"\n".join(s["id"] + " " + s["hostname"] + " " + s["time"][:10] for s in d)' >"$T/left"
while read -r id host day; do
        rm -rf "$T/r"
        expect_exit 0 lb restore "${id:0:12}" --target "$T/r"
        if [[ $host == other ]]; then
                [[ $(cat "$T/r$OTHER/day.txt") == "other $day" ]] || fail "snapshot $day of host other restores wrong data"
                continue
        fi
        [[ $(cat "$T/r$SRC/day.txt") == "day $day" ]] || fail "snapshot $day restores day.txt wrong"
        idx=$(python3 -c 'import datetime, sys; print((datetime.date.fromisoformat(sys.argv[1]) - datetime.date(2024, 1, 20)).days)' "$day")
        [[ $(tail -n 1 "$T/r$SRC/log.txt") == "entry $idx $day" ]] || fail "snapshot $day restores log.txt wrong"
        (($(wc -l <"$T/r$SRC/log.txt") == idx + 1)) || fail "snapshot $day restores a log.txt of the wrong length"
done <"$T/left"
(($(wc -l <"$T/left") == 13)) || fail "expected 13 snapshots left"
ok "check passes and every remaining snapshot restores its own day's data"
