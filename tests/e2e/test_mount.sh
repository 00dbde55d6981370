#!/usr/bin/env bash
# longbox mount (real FUSE): every snapshot directory equals `restore
# --target` of the same snapshot (several snapshots: a file of more than 64
# chunks, sparse files, symlinks, empty files, a stdin stream); 1,000
# random-range reads of a large file equal `dump`, from parallel readers
# too, with reads past the end and of an empty file; tags/, hosts/, latest;
# new snapshots appear without remounting; a damaged pack gives EIO and the
# log names the chunk; clear errors for a missing, non-directory or busy
# mount point; SIGTERM, SIGINT and fusermount3 -u leave no mount behind.
# The PostgreSQL restore.sql is tested by test_mount_pg.sh.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -e /dev/fuse ]] || ! command -v fusermount3 >/dev/null; then
        [[ ${CI:-} == true ]] && fail "FUSE is not available (/dev/fuse, fusermount3); CI must have it"
        skip "FUSE is not available here (/dev/fuse or fusermount3 missing)"
        exit 77
fi

# The mounts this test makes are always unmounted (lib.sh's trap), even on failure.
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

# start_mount DIR [options]: mount $LONGBOX_REPO at DIR in the background;
# MOUNT_PID is its pid, stderr goes to $T/mount.<name>.err.
start_mount() {
        local dir=$1 name
        name=$(basename "$1")
        shift
        register_mount "$dir"
        "$LONGBOX" mount "$dir" "$@" >"$T/mount.$name.out" 2>"$T/mount.$name.err" &
        MOUNT_PID=$!
        register_pid "$MOUNT_PID"
        wait_for 10 is_mounted "$dir" || { cat "$T/mount.$name.err"; fail "mount at $dir did not appear in /proc/mounts"; }
        wait_for 10 test -d "$dir/snapshots" || fail "the mount at $dir shows no snapshots/ directory"
}

# stop_mount DIR PID SIGNAL: the process exits 0 and the mount is gone.
stop_mount() {
        local dir=$1 pid=$2 sig=$3 rc=0
        kill "-$sig" "$pid"
        wait_for 10 bash -c "! kill -0 $pid 2>/dev/null || grep -q '^State:.*Z' /proc/$pid/status" ||
                fail "longbox mount did not exit within 10 s of SIG$sig"
        wait "$pid" || rc=$?
        [[ $rc == 0 ]] || fail "longbox mount exited $rc on SIG$sig"
        ! is_mounted "$dir" || fail "SIG$sig left $dir mounted"
}

export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"

# --- data: several snapshots ------------------------------------------------------------------
S=$T/src
mkdir -p "$S/dir/sub" "$S/emptydir"
gen_random 1 20000000 >"$S/big"               # ~2,400 chunks: chunk lists
gen_text 2 3000000 >"$S/text"
: >"$S/empty"
echo "small file" >"$S/dir/small"
printf 'x' >"$S/dir/one-byte"
ln -s dir/small "$S/link"
ln -s /nonexistent/target "$S/dangling"
truncate -s 50M "$S/sparse"
printf 'middle' | dd of="$S/sparse" bs=1 seek=20000000 conv=notrunc status=none
truncate -s 3M "$S/allhole"
gen_random 3 70000 >"$S/dir/sub/blob"
chmod 0600 "$S/dir/small"
chmod 0751 "$S/dir"
chown 1234:2345 "$S/dir/one-byte"
mkfifo "$S/fifo"
touch -d '2001-02-03 04:05:06' "$S/text" "$S/dir/sub"
expect_exit 0 lb backup --tag nightly --tag "odd/tag" --host hostA --json "$S"
SNAP1=$(json 'd["snapshot_id"]' <"$LB_OUT")
# Second snapshot: some changes.
gen_random 4 1000000 >"$S/dir/new"
printf 'changed' | dd of="$S/big" bs=1 seek=10000000 conv=notrunc status=none
rm "$S/link"
expect_exit 0 lb backup --tag nightly --host hostB --json "$S"
SNAP2=$(json 'd["snapshot_id"]' <"$LB_OUT")
# Third: a stream.
gen_text 5 2000000 | expect_exit 0 lb backup --stdin-name db.dump --json
SNAP3=$(json 'd["snapshot_id"]' <"$LB_OUT")
ok "3 snapshots: files (a 20 MB file, sparse files, symlinks, empty files, a fifo, owners) and a stdin stream"

# --- errors before mounting --------------------------------------------------------------------
expect_exit 1 lb mount "$T/no-such-dir"
output_has "does not exist" || fail "mount on a missing directory: no 'does not exist' message: $(cat "$LB_ERR")"
expect_exit 1 lb mount "$S/empty"
output_has "not a directory" || fail "mount on a file: no 'not a directory' message: $(cat "$LB_ERR")"
expect_exit 2 lb mount
expect_exit 2 lb mount "$T/a" "$T/b"
ok "missing mount point, a file, no or two arguments: clear errors (exit 1, 2)"

# --- mount, and every snapshot equals its restore ---------------------------------------------
M=$T/mnt
mkdir "$M"
start_mount "$M"
PID=$MOUNT_PID
ok "mounted at $M (pid $PID)"

expect_exit 1 lb mount "$M"
output_has "busy" || fail "mount on a busy mount point: no 'busy' message: $(cat "$LB_ERR")"
ok "mounting again on the same mount point is refused: busy"

mapfile -t NAMES < <(ls "$M/snapshots")
[[ ${#NAMES[@]} == 3 ]] || fail "snapshots/ lists ${#NAMES[@]} entries, not 3: ${NAMES[*]}"
name_of() { local n; for n in "${NAMES[@]}"; do if [[ $n == *_${1:0:8} ]]; then echo "$n"; fi; done; }
N1=$(name_of "$SNAP1") N2=$(name_of "$SNAP2") N3=$(name_of "$SNAP3")
[[ -n $N1 && -n $N2 && -n $N3 ]] || fail "snapshots/ names do not end in the short ids: ${NAMES[*]}"
[[ $N1 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z_[0-9a-f]{8}$ ]] || fail "bad snapshot name $N1"
ok "snapshots/ lists the 3 snapshots as <time>_<shortid> ($N1)"

# --- random-range reads against dump ----------------------------------------------------------
lb dump "$SNAP2" "$S/big" >"$T/big.dump" || fail "dump of big failed"
cat >"$T/reads.py" <<'PY'
import os, random, sys
path, ref, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
size = os.path.getsize(ref)
assert os.path.getsize(path) == size, "sizes differ: %d vs %d" % (os.path.getsize(path), size)
fa, fb = os.open(path, os.O_RDONLY), os.open(ref, os.O_RDONLY)
for i in range(count):
    off = r.randrange(0, size + 5000)
    ln = r.choice((1, 2, 17, 4095, 4096, 8193, 65536, 131072, 300000, r.randrange(1, 2000000)))
    a, b = os.pread(fa, ln, off), os.pread(fb, ln, off)
    if a != b:
        sys.exit("read of %d bytes at %d differs (%d vs %d bytes)" % (ln, off, len(a), len(b)))
# Past the end, and the last byte.
assert os.pread(fa, 100, size + 1) == b"" and os.pread(fa, 1, size) == b""
assert os.pread(fa, 10, size - 1) == os.pread(fb, 10, size - 1)
print("ok")
PY
# These reads come first, before anything else read these files through
# the mount: the kernel's page cache holds none of them yet, so the reads
# go to longbox.
out=$(python3 "$T/reads.py" "$M/snapshots/$N2$S/big" "$T/big.dump" 7 1000) || fail "random reads: $out"
ok "1,000 random-range reads of a 20 MB file (across chunk and chunk-list boundaries, past the end) equal dump"

lb dump "$SNAP1" "$S/big" >"$T/big1.ref" || fail "dump of big (snapshot 1) failed"
pids=()
for s in 11 12 13 14; do
        python3 "$T/reads.py" "$M/snapshots/$N1$S/big" "$T/big1.ref" "$s" 250 >"$T/par.$s" 2>&1 &
        pids+=($!)
done
cat "$M/snapshots/$N1$S/big" >"$T/big1.cat" &
catpid=$!
for p in "${pids[@]}"; do wait "$p" || fail "a parallel reader failed: $(cat "$T"/par.*)"; done
wait "$catpid" || fail "cat during parallel reads failed"
cmp -s "$T/big1.cat" "$T/big1.ref" || fail "sequential cat during parallel random reads differs from dump"
ok "4 parallel random readers and a sequential cat of one file: all equal dump"

for pair in "$SNAP1:$N1" "$SNAP2:$N2" "$SNAP3:$N3"; do
        id=${pair%%:*} name=${pair#*:}
        rm -rf "$T/rt"
        expect_exit 0 lb restore "$id" --target "$T/rt"
        # The whole tree: contents, symlinks, types.
        diff -r --no-dereference "$T/rt" "$M/snapshots/$name" >"$T/diff.out" 2>&1 || true
        if grep -v -E '^File .* is a fifo while file .* is a fifo$' "$T/diff.out" | grep -q .; then
                head -20 "$T/diff.out"
                fail "diff -r of snapshot $name and its restore differs"
        fi
        # Metadata below the root (the restore target's own directory is not the snapshot's).
        for top in "$T/rt"/*; do
                b=$(basename "$top")
                if [[ -d $top ]]; then
                        assert_same_tree "$top" "$M/snapshots/$name/$b"
                else
                        [[ $(stat -c '%a %Y %s %F' "$top") == $(stat -c '%a %Y %s %F' "$M/snapshots/$name/$b") ]] ||
                                fail "metadata of /$b differs in snapshot $name"
                fi
        done
        ok "snapshot $name: diff -r and modes, mtimes, sizes, types equal restore --target"
done
[[ $(stat -c %u:%g "$M/snapshots/$N1$S/dir/one-byte") == 1234:2345 ]] ||
        fail "owner of dir/one-byte is $(stat -c %u:%g "$M/snapshots/$N1$S/dir/one-byte"), not 1234:2345"
[[ $(stat -c %a "$M/snapshots/$N1$S/dir") == 751 ]] || fail "mode of dir is not 751"
[[ -p $M/snapshots/$N1$S/fifo ]] || fail "the fifo is not a fifo in the mount"
[[ $(stat -c %Y "$M/snapshots/$N1$S/dir/sub") == $(date -d '2001-02-03 04:05:06' +%s) ]] ||
        fail "directory mtime of dir/sub is not the recorded one"
ok "owners, modes, fifos and directory mtimes as recorded"

[[ $(stat -c %s "$M/snapshots/$N1$S/empty") == 0 ]] || fail "empty file has a size"
[[ -z $(cat "$M/snapshots/$N1$S/empty") ]] || fail "reading the empty file gave bytes"
python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); assert os.pread(fd, 10, 0) == b"" and os.pread(fd, 10, 5) == b""' \
        "$M/snapshots/$N1$S/empty" || fail "reads of the 0-byte file returned data"
cmp -s "$M/snapshots/$N1$S/sparse" "$S/sparse" || fail "the sparse file differs"
cmp -s "$M/snapshots/$N1$S/allhole" "$S/allhole" || fail "the all-hole file differs"
cmp -s "$M/snapshots/$N3/db.dump" <(lb dump "$SNAP3" /db.dump) || fail "the stdin stream differs from dump"
ok "0-byte file, sparse files and the stdin stream read correctly"

# Writes are refused.
! (echo x >"$M/snapshots/$N1$S/dir/small") 2>/dev/null || fail "writing into the mount succeeded"
! touch "$M/snapshots/$N1$S/newfile" 2>/dev/null || fail "creating a file in the mount succeeded"
ok "the mount is read-only"

# --- latest, tags, hosts -------------------------------------------------------------------------
[[ $(readlink "$M/latest") == "snapshots/$N3" ]] || fail "latest -> $(readlink "$M/latest"), not snapshots/$N3"
[[ -f $M/latest/db.dump ]] || fail "latest/db.dump is not reachable"
[[ $(ls "$M/tags" | sort | paste -sd ' ') == "nightly odd%2Ftag" ]] || fail "tags/ lists $(ls "$M/tags")"
[[ $(ls "$M/tags/nightly" | paste -sd ' ') == "$(printf '%s\n' "$N1" "$N2" latest | sort | paste -sd ' ')" ]] ||
        fail "tags/nightly lists $(ls "$M/tags/nightly" | paste -sd ' ')"
[[ $(readlink "$M/tags/nightly/latest") == "$N2" ]] || fail "tags/nightly/latest -> $(readlink "$M/tags/nightly/latest")"
cmp -s "$M/tags/nightly/$N1$S/text" "$S/text" || fail "tags/nightly/$N1 does not lead to the snapshot"
[[ $(ls "$M/hosts" | paste -sd ' ') == "$(printf '%s\n' "$(hostname)" hostA hostB | sort -u | paste -sd ' ')" ]] ||
        fail "hosts/ lists $(ls "$M/hosts" | paste -sd ' ')"
[[ $(ls "$M/hosts/hostA") == "$N1"$'\n'latest ]] || fail "hosts/hostA lists $(ls "$M/hosts/hostA")"
ok "latest, tags/ (a tag with a slash escaped as %2F) and hosts/"

# ls -R of the whole mount works (symlinks are not followed).
ls -R "$M" >"$T/lsR" || fail "ls -R of the mount failed"
grep -q "^$M/snapshots/$N1$S/dir/sub:" "$T/lsR" || fail "ls -R did not reach dir/sub"
ok "ls -R of the whole mount"

# --- new snapshots appear without remounting -------------------------------------------------
echo "fresh" | expect_exit 0 lb backup --stdin-name fresh.txt --tag later --json
SNAP4=$(json 'd["snapshot_id"]' <"$LB_OUT")
has_snap4() { ls "$M/snapshots" | grep -q "_${SNAP4:0:8}$"; }
wait_for 5 has_snap4 || fail "the new snapshot ${SNAP4:0:8} did not appear in snapshots/"
wait_for 5 test -d "$M/tags/later" || fail "the new tag did not appear in tags/"
[[ $(cat "$M/latest/fresh.txt") == fresh ]] || fail "latest does not lead to the new snapshot"
ok "a snapshot made while mounted appears in snapshots/, tags/ and latest"

# --- SIGTERM unmounts ---------------------------------------------------------------------------
stop_mount "$M" "$PID" TERM
ok "SIGTERM: longbox mount exits 0 and $M is no longer mounted"

start_mount "$M"
stop_mount "$M" "$MOUNT_PID" INT
ok "SIGINT: exits 0, unmounted"

start_mount "$M"
PID=$MOUNT_PID
fusermount3 -u "$M" || fail "fusermount3 -u failed"
wait_for 10 bash -c "! kill -0 $PID 2>/dev/null || grep -q '^State:.*Z' /proc/$PID/status" ||
        fail "longbox mount did not exit within 10 s of fusermount3 -u"
rc=0
wait "$PID" || rc=$?
[[ $rc == 0 ]] || fail "longbox mount exited $rc after fusermount3 -u"
! is_mounted "$M" || fail "$M still mounted after fusermount3 -u"
ok "fusermount3 -u: exits 0, unmounted"

# --daemon: returns once mounted.
register_mount "$M"
expect_exit 0 lb mount --daemon "$M"
is_mounted "$M" || fail "mount --daemon returned but $M is not mounted"
[[ $(cat "$M/latest/fresh.txt") == fresh ]] || fail "the daemon's mount does not serve files"
fusermount3 -u "$M" || fail "fusermount3 -u of the daemon's mount failed"
wait_for 5 bash -c "! awk -v m='$M' '\$2 == m { f = 1 } END { exit !f }' /proc/mounts" || fail "the daemon's mount is still there"
ok "--daemon returns 0 once mounted; fusermount3 -u ends it"

# --- a damaged pack: EIO, and the log names the chunk -----------------------------------------
export LONGBOX_REPO=$T/badrepo
init_repo "$LONGBOX_REPO"
gen_random 9 4000000 >"$T/victim"
expect_exit 0 lb backup "$T/victim"
pack=$(find "$LONGBOX_REPO/packs" -type f | head -1)
size=$(stat -c %s "$pack")
python3 -c 'import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = bytearray(f.read(16)); f.seek(off); f.write(bytes(x ^ 0xff for x in b))' "$pack" $((size / 2))
expect_exit 13 lb dump latest "$T/victim"
chunk=$(grep -o -E 'chunk [0-9a-f]{64}' "$LB_ERR" | head -1 | cut -d' ' -f2)
[[ -n $chunk ]] || fail "dump did not name the damaged chunk: $(cat "$LB_ERR")"
B=$T/badmnt
mkdir "$B"
start_mount "$B"
BPID=$MOUNT_PID
f=$(echo "$B"/snapshots/*"$T/victim")
rc=0
cat "$f" >"$T/victim.out" 2>"$T/cat.err" || rc=$?
[[ $rc != 0 ]] || fail "reading a file with a damaged chunk succeeded"
grep -q "Input/output error" "$T/cat.err" || fail "reading the damaged file did not fail with EIO: $(cat "$T/cat.err")"
cmp -s "$T/victim.out" <(head -c "$(stat -c %s "$T/victim.out")" "$T/victim") ||
        fail "the bytes read before the error are wrong"
wait_for 5 grep -q "$chunk" "$T/mount.badmnt.err" || fail "the mount's log does not name chunk $chunk: $(cat "$T/mount.badmnt.err")"
grep -q "damaged" "$T/mount.badmnt.err" || fail "the mount's log does not say the chunk is damaged"
stop_mount "$B" "$BPID" TERM
ok "damaged pack: EIO on the affected file, the log names chunk ${chunk:0:16}..."
