#!/usr/bin/env bash
# Damage, lost local state, unreadable inputs, a full disk and stale locks:
# each is detected or survived, never silently restored wrong.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$T/src
mkdir -p "$SRC"
gen_random 21 8000000 >"$SRC/big.bin"
gen_text 22 100000 >"$SRC/notes.txt"

# One pristine repository with two snapshots that both need the data pack;
# every case below damages its own copy and uses its own cache.
PRISTINE=$T/pristine
init_repo "$PRISTINE"
expect_exit 0 lb --repo "$PRISTINE" backup --json "$SRC"
ID1=$(json 'd["snapshot_id"]' <"$LB_OUT")
expect_exit 0 lb --repo "$PRISTINE" backup --json "$SRC"
ID2=$(json 'd["snapshot_id"]' <"$LB_OUT")
[[ $ID1 != "$ID2" ]] || fail "two backups returned the same snapshot id"
expect_exit 0 lb --repo "$PRISTINE" check --read-data
ok "pristine repository passes check --read-data"

# use_copy NAME: fresh copy of the pristine repository as LONGBOX_REPO.
use_copy() {
        cp -a "$PRISTINE" "$T/$1"
        export LONGBOX_REPO=$T/$1 LONGBOX_CACHE_DIR=$T/cache-$1
}

# largest_pack: path of the biggest pack file (the one holding big.bin).
largest_pack() {
        find "$LONGBOX_REPO/packs" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-
}

# --- a flipped byte in the middle of a pack --------------------------------------------
use_copy flip
PACK=$(largest_pack)
[[ -n $PACK ]] || fail "no pack files under packs/"
PACK_NAME=$(basename "$PACK")
[[ $PACK_NAME =~ ^[0-9a-f]{64}$ ]] || fail "pack file name is not 64 hex digits: $PACK_NAME"
[[ $(basename "$(dirname "$PACK")") == "${PACK_NAME:0:2}" ]] || fail "pack $PACK_NAME is not under packs/${PACK_NAME:0:2}/"
python3 - "$PACK" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(0, 2)
    mid = f.tell() // 2
    f.seek(mid)
    b = f.read(1)
    f.seek(mid)
    f.write(bytes([b[0] ^ 0xff]))
EOF
expect_exit 13 lb check --read-data
output_has "$PACK_NAME" || fail "check --read-data does not name the damaged pack $PACK_NAME"
output_has "${ID1:0:8}" || fail "check --read-data does not name snapshot ${ID1:0:8} that needs the pack"
output_has "${ID2:0:8}" || fail "check --read-data does not name snapshot ${ID2:0:8} that needs the pack"
ok "flipped byte: check --read-data exits 13 naming the pack and both snapshots"

rc=0
lb dump latest "$SRC/big.bin" >"$T/dumped" 2>"$T/dump.err" || rc=$?
((rc != 0)) || fail "dump of a file with a damaged chunk exited 0"
[[ -s $T/dump.err ]] || fail "dump of a damaged file failed without a message"
n=$(stat -c %s "$T/dumped")
((n < $(stat -c %s "$SRC/big.bin"))) || fail "dump printed the whole size of a damaged file"
cmp -n "$n" "$T/dumped" "$SRC/big.bin" >/dev/null || fail "dump printed wrong bytes before failing"
ok "dump of the damaged file fails with a message (exit $rc) after $n correct bytes"

rc=0
lb restore latest --target "$T/restore-flip" >/dev/null 2>"$T/restore.err" || rc=$?
((rc != 0)) || fail "restore of a damaged snapshot exited 0"
[[ -s $T/restore.err ]] || fail "restore of a damaged snapshot failed without a message"
ok "restore of the damaged snapshot fails with a message (exit $rc)"

# --- a truncated pack and a missing pack ---------------------------------------------------
use_copy truncated
PACK=$(largest_pack)
truncate -s -100 "$PACK"
expect_exit 13 lb check
output_has "$(basename "$PACK")" || fail "check does not name the truncated pack"
ok "truncated pack: check exits 13 and names it"

use_copy missing
PACK=$(largest_pack)
rm "$PACK"
expect_exit 13 lb check
output_has "$(basename "$PACK")" || fail "check does not name the missing pack"
ok "missing pack: check exits 13 and names it"

# --- the local index is derived state ------------------------------------------------------
use_copy nolocal
[[ -d $LONGBOX_REPO/localindex ]] || fail "no localindex/ in the repository"
rm -rf "$LONGBOX_REPO/localindex"
expect_exit 0 lb snapshots --json
[[ $(json 'len(d)' <"$LB_OUT") == 2 ]] || fail "snapshots after deleting localindex/ does not list 2"
expect_exit 0 lb restore "$ID1" --target "$T/restore-nolocal"
assert_same_tree "$SRC" "$T/restore-nolocal$SRC"
ok "after deleting localindex/, snapshots and restore work"

use_copy noindex
find "$LONGBOX_REPO/index" -type f -delete
rm -rf "$LONGBOX_REPO/localindex"
expect_exit 0 lb index rebuild
[[ -n $(find "$LONGBOX_REPO/index" -type f) ]] || fail "index rebuild wrote no index files"
expect_exit 0 lb restore "$ID2" --target "$T/restore-noindex"
assert_same_tree "$SRC" "$T/restore-noindex$SRC"
expect_exit 0 lb check --read-data
ok "index rebuild from the packs alone makes restore and check work again"

# --- unreadable inputs: exit 3, snapshot still written ------------------------------------
# Root reads everything, so root runs this case as nobody.
U=$T/user
mkdir -p "$U/src/locked-dir"
echo readable >"$U/src/readable.txt"
echo secret >"$U/src/secret.txt"
echo hidden >"$U/src/locked-dir/hidden.txt"
cp "$LONGBOX" "$U/longbox"
chmod 0755 "$U/longbox"
if [[ $EUID -eq 0 ]]; then
        chmod 0711 "$T"
        chmod 0777 "$U"
        as_user() { runuser -u nobody -- "$@"; }
else
        as_user() { "$@"; }
fi
chmod 000 "$U/src/secret.txt" "$U/src/locked-dir"
ulb() { as_user env LONGBOX_REPO="$U/repo" LONGBOX_CACHE_DIR="$U/cache" "$U/longbox" "$@"; }
expect_exit 0 ulb init --insecure-fast-kdf
expect_exit 3 ulb backup "$U/src"
grep -q -F secret.txt "$LB_ERR" || fail "backup does not name the unreadable file secret.txt"
grep -q -F locked-dir "$LB_ERR" || fail "backup does not name the unreadable directory locked-dir"
[[ $(ulb snapshots --json | json 'len(d)') == 1 ]] || fail "no snapshot after a backup with unreadable inputs"
ulb dump latest "$U/src/readable.txt" | cmp - "$U/src/readable.txt" || fail "readable file not in the snapshot"
ok "unreadable file and directory: exit 3, both named, snapshot written with the rest"
chmod 0700 "$T"

# --- a full disk ---------------------------------------------------------------------------
SMALL=$T/small
mkdir -p "$SMALL"
if [[ $EUID -ne 0 ]]; then
        skip "ENOSPC case: needs root to mount a tmpfs"
elif ! mount -t tmpfs -o size=2m,mode=0700 tmpfs "$SMALL" 2>"$T/mount.err"; then
        skip "ENOSPC case: mount -t tmpfs not permitted here: $(cat "$T/mount.err")"
else
        register_mount "$SMALL"
        export LONGBOX_REPO=$SMALL/repo LONGBOX_CACHE_DIR=$T/cache-small
        init_repo "$LONGBOX_REPO"
        mkdir -p "$T/big-src"
        gen_random 23 20000000 >"$T/big-src/random"
        rc=0
        lb backup "$T/big-src" >"$T/enospc.out" 2>"$T/enospc.err" || rc=$?
        ((rc != 0)) || fail "backup of 20 MB into a 2 MB file system exited 0"
        grep -q -i 'space' "$T/enospc.err" ||
                fail "ENOSPC message does not mention space: $(tail -n 3 "$T/enospc.err")"
        ok "full disk: backup fails (exit $rc) with a message about space"
        expect_exit 0 lb check
        [[ $(snapshot_count) == 0 ]] || fail "a snapshot was recorded by the failed backup"
        ok "full disk: afterwards check passes and no snapshot was recorded"
fi

# --- a stale lock left by a killed process ------------------------------------------------
use_copy stale
mkfifo "$T/slow-stdin"
"$LONGBOX" backup --stdin-name slow.txt <"$T/slow-stdin" >/dev/null 2>&1 &
pid=$!
register_pid "$pid"
exec 3>"$T/slow-stdin"
echo "some data" >&3
# Temp files (.tmp-*) of an interrupted write are not locks.
locks_present() { [[ -n $(find "$LONGBOX_REPO/locks" -type f ! -name '.*') ]]; }
wait_for 30 locks_present || fail "no lock file under locks/ while a backup runs"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
exec 3>&-
locks_present || fail "the killed backup left no lock file behind (nothing to test)"
expect_exit 0 lb backup "$SRC"
locks_present && fail "the stale lock was not removed: $(ls "$LONGBOX_REPO/locks")"
[[ $(snapshot_count) == 3 ]] || fail "expected 3 snapshots after the backup past the stale lock"
ok "a lock held by a dead pid is cleared automatically"
expect_exit 0 lb unlock
ok "unlock"
