#!/usr/bin/env bash
# The plan's retention end to end: 120 nightly backups (--time) of slowly
# changing data, forget with the suggested default policy (7 daily, 5
# weekly, 4 monthly) and --prune; then check --read-data, every kept
# snapshot restores byte-exact, and the repository shrank by what only the
# forgotten nights stored.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"
SRC=$T/src
SUMS=$T/sums
mkdir -p "$SRC" "$SUMS"
LOG_BYTES=100000

# Night N: orders.tsv, 20,000 rows of which ~1% change each night (in
# place, so most chunks survive), and a log of LOG_BYTES random bytes of
# that night only.
night() {
        python3 - "$SRC" "$1" "$LOG_BYTES" <<'EOF'
import os, random, sys
src, n, log_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = os.path.join(src, "orders.tsv")
if n == 0:
    r = random.Random(0)
    rows = ["%06d\t%s\t%08.2f\topen" % (i, "".join(r.choice("abcdefghij") for _ in range(24)), r.random() * 1e4)
            for i in range(20000)]
else:
    rows = open(path).read().splitlines()
    r = random.Random(n)
    for i in r.sample(range(len(rows)), 200):
        rows[i] = rows[i][:-4] + r.choice(["paid", "sent", "open", "done"])
open(path, "w").write("\n".join(rows) + "\n")
with open(os.path.join(src, "night.log"), "wb") as f:
    f.write(random.Random(1000 + n).randbytes(log_bytes))
EOF
}

mapfile -t DAYS < <(python3 -c 'import datetime
d = datetime.date(2024, 1, 1)
for i in range(120): print(d + datetime.timedelta(i))')
for i in "${!DAYS[@]}"; do
        night "$i"
        expect_exit 0 lb backup --quiet --time "${DAYS[$i]} 02:00:00" "$SRC"
        (cd "$SRC" && sha256sum orders.tsv night.log) >"$SUMS/${DAYS[$i]}"
done
(($(snapshot_count) == 120)) || fail "expected 120 snapshots"
ok "120 nightly backups"

# The default policy, worked out independently over the dates (restic's
# rules: each rule keeps the newest snapshot of each of its last N buckets).
mapfile -t KEPT < <(python3 - "${DAYS[@]}" <<'EOF'
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
for d in sorted(kept): print(d)
EOF
)
# By hand: daily 04-23..04-29; weekly (ISO, Sundays) 04-28, 04-21, 04-14,
# 04-07 (and 04-29's own week); monthly 04-29, 03-31, 02-29, 01-31.
[[ "${KEPT[*]}" == "2024-01-31 2024-02-29 2024-03-31 2024-04-07 2024-04-14 2024-04-21 2024-04-23 2024-04-24 2024-04-25 2024-04-26 2024-04-27 2024-04-28 2024-04-29" ]] ||
        fail "the independent policy computation disagrees with the hand-worked set: ${KEPT[*]}"

size_before=$(du -sb "$LONGBOX_REPO/packs" | cut -f1)
expect_exit 0 lb forget --keep-daily 7 --keep-weekly 5 --keep-monthly 4 --prune
mapfile -t GOT < <(lb snapshots --json | json '"\n".join(s["time"][:10] for s in d)')
[[ "${GOT[*]}" == "${KEPT[*]}" ]] || fail "forget kept ${GOT[*]}, expected ${KEPT[*]}"
ok "forget kept the ${#KEPT[@]} snapshots the default policy keeps"

size_after=$(du -sb "$LONGBOX_REPO/packs" | cut -f1)
forgotten=$((120 - ${#KEPT[@]}))
# Each forgotten night's log is gone (up to the 10% --max-unused leaves in
# packs that stay); each kept night's log is still there.
((size_before - size_after >= forgotten * LOG_BYTES * 9 / 10)) ||
        fail "prune freed $((size_before - size_after)) bytes; the $forgotten forgotten logs alone were $((forgotten * LOG_BYTES))"
((size_after >= ${#KEPT[@]} * LOG_BYTES)) || fail "only $size_after bytes of packs left: less than the kept logs"
ok "the repository shrank from $size_before to $size_after bytes"

expect_exit 0 lb check --read-data
lb snapshots --json | json '"\n".join(s["id"] + " " + s["time"][:10] for s in d)' >"$T/kept"
while read -r id day; do
        rm -rf "$T/r"
        expect_exit 0 lb restore "$id" --target "$T/r"
        (cd "$T/r$SRC" && sha256sum -c --quiet "$SUMS/$day") >/dev/null ||
                fail "snapshot of $day does not restore byte-exact"
done <"$T/kept"
ok "check --read-data passes; all ${#KEPT[@]} kept snapshots restore byte-exact"

expect_exit 0 lb prune --json
[[ $(json 'd["packs_deleted"] + d["packs_repacked"]' <"$LB_OUT") == 0 ]] ||
        fail "a second prune still found work: $(cat "$LB_OUT")"
ok "a second prune has nothing to do"
