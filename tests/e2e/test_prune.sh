#!/usr/bin/env bash
# prune: what it frees and keeps; kill -9 at each of its steps (the
# repository stays restorable, check passes, a rerun finishes the job);
# backups racing with it (a backup that deduplicates against blobs prune
# found dead; a backup that must wait for the exclusive phase; a loop of
# backups beside prunes); --lock-wait and exit 11; its refusals on a
# damaged repository; dry runs change nothing.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$T/src
DAYS=$T/days
mkdir -p "$DAYS"

# Day N: a constant 2 MB file, a DAY_BYTES file of its own, a text file that
# grows, and a small constant subtree. Packs of 1 MiB mix the days' chunks,
# so after forgetting days some packs are all dead and some partly. The
# day's own file is read before the text (names sort so) and is several
# packs long, so its first packs hold nothing else however the workers
# interleave: some packs are all dead whatever the timing (under ASan too).
DAY_BYTES=4000000
make_day() {
        local d=$DAYS/$1
        mkdir -p "$d/sub"
        gen_random 1 2000000 >"$d/common.bin"
        gen_random "$((100 + $1))" "$DAY_BYTES" >"$d/day.bin"
        gen_text 7 $((200000 * $1)) >"$d/grow.txt"
        gen_text 8 30000 >"$d/sub/constant.txt"
        touch -d "2024-03-0$1 12:00:00" "$d/day.bin"
}

backup_day() {
        rm -rf "$SRC"
        cp -a "$DAYS/$1" "$SRC"
        expect_exit 0 lb backup --quiet --time "2024-03-0$1 12:00:00" --tag "day$1" "$SRC"
}

# snap_of N: the id of day N's snapshot.
snap_of() {
        lb snapshots --json | json "[s['id'] for s in d if 'day$1' in (s.get('tags') or [])][0]"
}

# assert_day_restores N: day N's snapshot restores byte-exact.
assert_day_restores() {
        local id
        id=$(snap_of "$1") || fail "no snapshot of day $1"
        rm -rf "$T/restore"
        expect_exit 0 lb restore "$id" --target "$T/restore"
        assert_same_tree "$DAYS/$1" "$T/restore$SRC"
        rm -rf "$T/restore"
}

pack_count() { find "$1/packs" -type f ! -name '.*' | wc -l; }

BASE=$T/base
export LONGBOX_REPO=$BASE
init_repo "$BASE" --pack-size 1
for n in 1 2 3 4 5 6; do
        make_day "$n"
        backup_day "$n"
done
expect_exit 0 lb forget "$(snap_of 1)" "$(snap_of 2)" "$(snap_of 3)"
(($(snapshot_count) == 3)) || fail "expected 3 snapshots after forgetting days 1-3"
ok "6 days backed up, days 1-3 forgotten"

# --- dry run -----------------------------------------------------------------------------------
# The repository's objects (locks/ and the derived localindex/ change).
objects_state() { repo_state "$1" | grep -E "^$1/(config|keys|packs|index|snapshots)"; }
before=$(objects_state "$BASE")
expect_exit 0 lb prune --dry-run --max-unused 0 --json
[[ $(objects_state "$BASE") == "$before" ]] || fail "prune --dry-run changed the repository"
dry=$(cat "$LB_OUT")
[[ $(json 'd["packs_deleted"] > 0 and d["packs_repacked"] > 0' <<<"$dry") == true ]] ||
        fail "the test data gives prune nothing to delete and repack: $dry"
ok "prune --dry-run plans deletions and repacks and changes nothing"

# A leftover for the last crash step: a prune killed after writing a new
# pack, before any index file lists it.
rc=0
LONGBOX_TEST_CRASH_AT=prune:repack-pack lb prune --max-unused 0 >/dev/null 2>&1 || rc=$?
((rc == 137)) || fail "prune with LONGBOX_TEST_CRASH_AT=prune:repack-pack exited $rc, expected 137"
expect_exit 0 lb check
output_has "unreferenced" || output_has "leftover" || fail "check does not report the leftover pack: $(cat "$LB_OUT")"
ok "a killed prune leaves a leftover that check reports and accepts"

# --- kill -9 at each step ------------------------------------------------------------------------
for step in marked repack-pack repack-index exclusive index-written local-index index-removed pack-removed \
        leftover-removed; do
        R=$T/crash-$step
        cp -a "$BASE" "$R"
        export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-$step
        rc=0
        LONGBOX_TEST_CRASH_AT=prune:$step lb prune --max-unused 0 >/dev/null 2>&1 || rc=$?
        ((rc == 137)) || fail "prune killed at step $step exited $rc, expected 137 (the step was not reached?)"
        expect_exit 0 lb check
        for n in 4 5 6; do assert_day_restores "$n"; done
        expect_exit 0 lb prune --max-unused 0
        expect_exit 0 lb check --read-data
        # Finished: nothing left to delete, every blob in use.
        expect_exit 0 lb prune --max-unused 0 --json
        out=$(cat "$LB_OUT")
        [[ $(json 'd["packs_deleted"] + d["packs_repacked"] + d["packs_unindexed"]' <<<"$out") == 0 ]] ||
                fail "after a crash at $step and a rerun, a third prune still had work: $out"
        [[ $(json 'd["blobs"] == d["blobs_live"]' <<<"$out") == true ]] ||
                fail "after a crash at $step and a rerun, unused blobs remain: $out"
        for n in 4 5 6; do assert_day_restores "$n"; done
        [[ -z $(find "$R" -name '.tmp-*') ]] || fail "temporary files remain after prune: $(find "$R" -name '.tmp-*')"
        [[ -z $(find "$R" -name '.tmp-unlinked-*') ]] || fail "a killed prune's temporary files (mark set, spill) were not removed"
        ok "kill -9 at $step: restorable, check passes, a rerun finishes the job"
        rm -rf "$R" "$T/cache-$step"
done

# --- a pack to repack with a damaged blob in use: kept, the rest goes on ---------------------------
# Repack checks the tag of every blob it moves; a pack whose blob in use
# fails is kept, none of its blobs copied (check names it). Damage the
# start of one pack at a time until one that prune would repack is hit
# there in a data chunk in use. (Where the damage hits a tree or chunk
# list in use, the mark cannot read it and prune refuses, deleting
# nothing: exit 13.)
damaged=""
for f in $(find "$BASE/packs" -type f ! -name '.*' | sort); do
        R=$T/damaged
        rm -rf "$R"
        cp -a "$BASE" "$R"
        export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-damaged
        p=$R/packs/$(basename "$(dirname "$f")")/$(basename "$f")
        dd if=/dev/zero of="$p" bs=65536 count=1 conv=notrunc status=none
        packs=$(pack_count "$R")
        rc=0
        lb prune --max-unused 0 --json >"$LB_OUT" 2>"$LB_ERR" || rc=$?
        if ((rc == 13)); then
                output_has "nothing was deleted" || fail "prune exited 13 without saying nothing was deleted: $(cat "$LB_ERR")"
                (($(pack_count "$R") == packs)) || fail "prune exited 13 but deleted packs"
                continue
        fi
        ((rc == 0)) || fail "prune of a repository with a damaged pack exited $rc: $(cat "$LB_ERR")"
        out=$(cat "$LB_OUT")
        if [[ $(json 'd["packs_damaged"]' <<<"$out") == 1 ]]; then
                damaged=$p
                break
        fi
done
[[ -n $damaged ]] || fail "no damaged blob in use was in a pack prune repacks"
[[ -f $damaged ]] || fail "prune removed the pack whose blob it could not verify"
[[ $(json 'd["packs_repacked"] > 0' <<<"$out") == true ]] || fail "prune repacked nothing beside the damaged pack: $out"
expect_exit 13 lb check --read-data
output_has "$(basename "$damaged")" || fail "check does not name the damaged pack: $(cat "$LB_OUT" "$LB_ERR")"
# A second prune keeps it again and finds nothing else to do.
expect_exit 0 lb prune --max-unused 0 --json
[[ $(json 'd["packs_damaged"] == 1 and d["packs_repacked"] == 0 and d["packs_deleted"] == 0' <<<"$(cat "$LB_OUT")") == true ]] ||
        fail "a second prune did not keep just the damaged pack: $(cat "$LB_OUT")"
[[ -f $damaged ]] || fail "the second prune removed the damaged pack"
ok "a pack with a damaged blob in use is kept and named; the others are repacked"
rm -rf "$R" "$T/cache-damaged"

# --- a full prune: what it frees ---------------------------------------------------------------
R=$T/full
cp -a "$BASE" "$R"
export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-full
size_before=$(du -sb "$R/packs" | cut -f1)
expect_exit 0 lb prune --max-unused 0
size_after=$(du -sb "$R/packs" | cut -f1)
# Days 1-3 had 3 x DAY_BYTES of random data of their own; all of it goes.
((size_before - size_after >= 3 * DAY_BYTES)) ||
        fail "prune freed $((size_before - size_after)) bytes, expected at least the $((3 * DAY_BYTES)) bytes only days 1-3 used"
# What stays: the constant file, days 4-6's own files, the text (compressible).
((size_after >= 2000000 + 3 * DAY_BYTES)) || fail "prune left only $size_after bytes: it deleted live data"
expect_exit 0 lb check --read-data
for n in 4 5 6; do assert_day_restores "$n"; done
ok "prune freed $((size_before - size_after)) bytes; days 4-6 restore byte-exact"

# A second prune moves blobs the first one moved (its new packs mix days
# 4-6): the local index finds them in one step, through the remap of the
# packs they first lived in (docs/design.md "The local index").
expect_exit 0 lb forget "$(snap_of 4)"
expect_exit 0 lb prune --max-unused 0 --json
[[ $(json 'd["packs_repacked"] > 0' <<<"$(cat "$LB_OUT")") == true ]] ||
        fail "the second prune repacked nothing: $(cat "$LB_OUT")"
for n in 5 6; do assert_day_restores "$n"; done
# And a fresh local index, built from the index files alone, agrees.
rm -rf "$R/localindex"
expect_exit 0 lb check --read-data
for n in 5 6; do assert_day_restores "$n"; done
ok "a second prune moves moved blobs again; days 5-6 restore, with the local index and without it"

# --- a backup that deduplicates against blobs prune found dead ------------------------------------
R=$T/race
cp -a "$BASE" "$R"
export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-race
PAUSE=$T/pause
LONGBOX_TEST_PAUSE_AT=prune:marked LONGBOX_TEST_PAUSE_FILE=$PAUSE "$LONGBOX" prune --max-unused 0 \
        >"$T/prune.out" 2>&1 &
prune_pid=$!
register_pid "$prune_pid"
wait_for 60 test -e "$PAUSE" || fail "prune did not reach its pause point"
# Day 1 again: every chunk of day.bin is in the index, and prune's mark
# found it dead.
backup_day 1
rm -f "$PAUSE"
rc=0
wait "$prune_pid" || rc=$?
((rc == 0)) || fail "prune exited $rc after the racing backup: $(cat "$T/prune.out")"
expect_exit 0 lb check --read-data
assert_day_restores 1
for n in 4 5 6; do assert_day_restores "$n"; done
ok "a backup deduplicating against blobs prune marked dead during prune keeps them"

# --- a backup started during the exclusive phase waits --------------------------------------------
R=$T/wait
cp -a "$BASE" "$R"
export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-wait
rm -f "$PAUSE"
LONGBOX_TEST_PAUSE_AT=prune:exclusive LONGBOX_TEST_PAUSE_FILE=$PAUSE "$LONGBOX" prune --max-unused 0 \
        >"$T/prune.out" 2>&1 &
prune_pid=$!
register_pid "$prune_pid"
wait_for 60 test -e "$PAUSE" || fail "prune did not reach the exclusive phase"
expect_exit 11 lb backup --lock-wait 1s --quiet "$SRC"
output_has "exclusive lock held by pid $prune_pid" || fail "exit 11 does not name the lock holder: $(cat "$LB_ERR")"
ok "--lock-wait 1s: exit 11 naming prune's exclusive lock"
rm -rf "$SRC"
cp -a "$DAYS/2" "$SRC"
"$LONGBOX" backup --lock-wait 60s --quiet --time "2024-03-02 12:00:00" --tag day2 "$SRC" >"$T/backup.out" 2>&1 &
backup_pid=$!
register_pid "$backup_pid"
wait_for 30 grep -q -F "waiting" "$T/backup.out" || fail "the backup does not say it waits: $(cat "$T/backup.out")"
rm -f "$PAUSE"
rc=0
wait "$prune_pid" || rc=$?
((rc == 0)) || fail "prune exited $rc: $(cat "$T/prune.out")"
rc=0
wait "$backup_pid" || rc=$?
((rc == 0)) || fail "the waiting backup exited $rc: $(cat "$T/backup.out")"
expect_exit 0 lb check --read-data
assert_day_restores 2
ok "a backup started during prune's exclusive phase waits, then succeeds and restores"

# --- backups in a loop beside prunes --------------------------------------------------------------
R=$T/loop
cp -a "$BASE" "$R"
export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-loop
(
        for n in 1 2 3 1 2 3; do
                rm -rf "$T/loop-src"
                cp -a "$DAYS/$n" "$T/loop-src"
                "$LONGBOX" backup --lock-wait 120s --quiet "$T/loop-src" || exit 1
                "$LONGBOX" forget --lock-wait 120s --keep-last 2 --group-by '' --quiet >/dev/null || exit 1
        done
) >"$T/loop.out" 2>&1 &
loop_pid=$!
register_pid "$loop_pid"
prunes=0
while kill -0 "$loop_pid" 2>/dev/null; do
        expect_exit 0 lb prune --lock-wait 120s --max-unused 0
        prunes=$((prunes + 1))
done
rc=0
wait "$loop_pid" || rc=$?
((rc == 0)) || fail "the backup loop failed beside prune: $(cat "$T/loop.out")"
expect_exit 0 lb prune --max-unused 0
expect_exit 0 lb check --read-data
ids=$(lb snapshots --json | json '" ".join(s["id"] for s in d)')
for id in $ids; do
        expect_exit 0 lb restore "$id" --target "$T/restore"
        rm -rf "$T/restore"
done
ok "$prunes prunes beside 6 backups and forgets: check --read-data passes, every snapshot restores"

# --- refusals -------------------------------------------------------------------------------------
R=$T/noindex
cp -a "$BASE" "$R"
export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-noindex
find "$R/index" -type f ! -name '.*' | head -n 1 | xargs rm -f
packs=$(pack_count "$R")
expect_exit 13 lb prune
output_has "nothing was deleted" || fail "prune's refusal does not say nothing was deleted: $(cat "$LB_ERR")"
(($(pack_count "$R") == packs)) || fail "prune deleted packs although snapshots need unindexed blobs"
ok "a lost index file: prune refuses (exit 13) and deletes nothing"

R=$T/badsnap
cp -a "$BASE" "$R"
export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-badsnap
f=$(find "$R/snapshots" -type f ! -name '.*' | head -n 1)
printf 'garbage' | dd of="$f" bs=1 seek=40 conv=notrunc status=none
packs=$(pack_count "$R")
expect_exit 13 lb prune
output_has "cannot be read" || fail "prune does not name the unreadable snapshot: $(cat "$LB_ERR")"
(($(pack_count "$R") == packs)) || fail "prune deleted packs although a snapshot file is unreadable"
ok "a damaged snapshot file: prune refuses (exit 13) and deletes nothing"

# --- usage ------------------------------------------------------------------------------------------
expect_exit 2 lb prune --max-unused 101
expect_exit 2 lb prune --max-unused abc
expect_exit 2 lb prune extra
expect_exit 2 lb --lock-wait soon prune
expect_exit 0 lb prune --help
output_has "--max-unused" || fail "prune --help does not document --max-unused"
ok "usage errors exit 2; --help documents the options"
