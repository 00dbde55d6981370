#!/usr/bin/env bash
# Byte-exact backup and restore of every kind of entry, stdin backups,
# partial restores, ls, dump and diff.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LONGBOX_REPO=$T/repo
SRC=$T/src
init_repo "$LONGBOX_REPO"

# --- the source tree ---------------------------------------------------------------
mkdir -p "$SRC/dir with space/inner" "$SRC/nested/a/b/c/d" "$SRC/private" "$SRC/bin"
gen_text 1 200000 >"$SRC/text.txt"
printf 'line one\nline two\n' >"$SRC/dir with space/inner/deep.txt"
printf '\x00\x01\x02\xff binary \x00\n' >"$SRC/nested/a/b/c/d/small.bin"
: >"$SRC/empty"
echo "to be removed" >"$SRC/removed.txt"
echo "newline in the name" >"$SRC/new"$'\n'"line"
echo "not UTF-8" >"$SRC/"$'\xff\xfe'"-bytes"
echo "spaces" >"$SRC/with space.txt"
gen_random 2 20000000 >"$SRC/random20m"

# A 5 GiB sparse file with data islands: at 0, unaligned at 1 GiB + 12345,
# 1 MiB at 3 GiB, and its last 100 bytes.
truncate -s 5G "$SRC/sparse"
island() { dd of="$SRC/sparse" bs=64K seek="$1" oflag=seek_bytes conv=notrunc status=none; }
gen_text 3 4096 | island 0
gen_random 4 65536 | island $((1024 * 1024 * 1024 + 12345))
gen_random 5 1048576 | island $((3 * 1024 * 1024 * 1024))
gen_random 6 100 | island $((5 * 1024 * 1024 * 1024 - 100))
[[ $(stat -c %s "$SRC/sparse") == $((5 * 1024 * 1024 * 1024)) ]] || fail "setup: sparse file has the wrong size"
(($(stat -c '%b * %B' "$SRC/sparse") < 64 * 1024 * 1024)) || fail "setup: this file system does not keep files sparse"

ln -s text.txt "$SRC/link-rel"
ln -s "$SRC/dir with space" "$SRC/link-abs-dir"
ln -s does/not/exist "$SRC/link-dangling"
mkfifo "$SRC/fifo"

echo '#!/bin/sh' >"$SRC/bin/tool" && chmod 0755 "$SRC/bin/tool"
echo setuid >"$SRC/bin/suid" && chmod 4755 "$SRC/bin/suid"
echo secret >"$SRC/private/key" && chmod 0600 "$SRC/private/key"
echo readonly >"$SRC/readonly" && chmod 0444 "$SRC/readonly"
chmod 0640 "$SRC/text.txt"
chmod 0750 "$SRC/private"
chmod 0711 "$SRC/nested/a"

# Distinct old mtimes everywhere; directories last, deepest first.
t=1000000000
while IFS= read -r -d '' p; do
        t=$((t + 86400 + 7))
        touch -h -d "@$t" -- "$p"
done < <(find "$SRC" -depth ! -type d -print0; find "$SRC" -depth -type d -print0)

# --- backup and full restore -----------------------------------------------------------
expect_exit 0 lb backup --json "$SRC"
ID1=$(json 'd["snapshot_id"]' <"$LB_OUT")
[[ $ID1 =~ ^[0-9a-f]{64}$ ]] || fail "backup --json snapshot_id is not 64 hex digits: $ID1"
ok "backup of files, symlinks, a fifo, a sparse 5 GiB file and odd names"

expect_exit 0 lb restore latest --target "$T/restore"
[[ -d $T/restore$SRC ]] || fail "restore did not recreate the absolute path $SRC under the target"
assert_same_tree "$SRC" "$T/restore$SRC"
ok "restore latest is byte-exact with modes, mtimes, symlinks and the fifo"

[[ -p $T/restore$SRC/fifo ]] || fail "fifo restored as something else"
[[ $(readlink "$T/restore$SRC/link-dangling") == does/not/exist ]] || fail "dangling symlink target changed"
ok "fifo and dangling symlink restored as such"

(($(stat -c '%b * %B' "$T/restore$SRC/sparse") < 64 * 1024 * 1024)) ||
        fail "restored sparse file occupies $(du -h "$T/restore$SRC/sparse" | cut -f1) on disk: holes were written out"
ok "sparse file restored sparse"
rm -rf "$T/restore"

expect_exit 0 lb restore "${ID1:0:8}" --target "$T/restore-prefix" --include "$SRC/dir with space"
assert_same_tree "$SRC/dir with space" "$T/restore-prefix$SRC/dir with space"
[[ ! -e $T/restore-prefix$SRC/text.txt ]] || fail "--include restored text.txt, outside the included path"
[[ ! -e $T/restore-prefix$SRC/sparse ]] || fail "--include restored sparse, outside the included path"
ok "restore by id prefix with --include restores just that subtree"
rm -rf "$T/restore-prefix"

# --- ls and dump ----------------------------------------------------------------------------
expect_exit 0 lb ls "$ID1"
for p in "$SRC/text.txt" "$SRC/dir with space/inner/deep.txt" "$SRC/nested/a/b/c/d/small.bin" \
        "$SRC/link-rel" "$SRC/fifo" "$SRC/empty" "$SRC/with space.txt"; do
        grep -F -x -q -e "$p" "$LB_OUT" || fail "ls does not list $p"
done
ok "ls lists absolute paths inside the snapshot"

expect_exit 0 lb ls latest "$SRC/dir with space"
grep -F -x -q -e "$SRC/dir with space/inner/deep.txt" "$LB_OUT" || fail "ls SNAP PATH misses a file under PATH"
! grep -F -x -q -e "$SRC/text.txt" "$LB_OUT" || fail "ls SNAP PATH lists a file outside PATH"
ok "ls SNAP PATH lists only that subtree"

lb dump "$ID1" "$SRC/random20m" >"$T/dumped" || fail "dump of random20m failed"
cmp "$T/dumped" "$SRC/random20m" || fail "dump of random20m differs"
lb dump latest "$SRC/dir with space/inner/deep.txt" >"$T/dumped" || fail "dump of deep.txt failed"
cmp "$T/dumped" "$SRC/dir with space/inner/deep.txt" || fail "dump of deep.txt differs"
lb dump latest "$SRC/empty" >"$T/dumped" || fail "dump of an empty file failed"
[[ ! -s $T/dumped ]] || fail "dump of an empty file printed bytes"
ok "dump prints file contents"

# --- stdin backups ------------------------------------------------------------------------
gen_text 7 3000000 >"$T/stream.expected"
gen_text 7 3000000 | expect_exit 0 lb backup --json --stdin-name db.sql
ID_STDIN=$(json 'd["snapshot_id"]' <"$LB_OUT")
lb dump "$ID_STDIN" /db.sql >"$T/dumped" || fail "dump /db.sql failed"
cmp "$T/dumped" "$T/stream.expected" || fail "stdin backup does not dump back byte-exact"
ok "backup --stdin-name stores stdin as /NAME"

expect_exit 0 lb backup --json --stdin-name seq.txt --stdin-from-command -- sh -c 'seq 1 200000'
ID_CMD=$(json 'd["snapshot_id"]' <"$LB_OUT")
lb dump "$ID_CMD" /seq.txt >"$T/dumped" || fail "dump /seq.txt failed"
seq 1 200000 | cmp - "$T/dumped" || fail "--stdin-from-command output does not dump back byte-exact"
ok "backup --stdin-from-command stores the command's output"

before=$(snapshot_count)
expect_exit 1 lb backup --stdin-name broken.sql --stdin-from-command -- sh -c 'seq 1 100000; exit 7'
[[ $(snapshot_count) == "$before" ]] || fail "a failed --stdin-from-command recorded a snapshot"
ok "backup --stdin-from-command records no snapshot when the command fails (exit 1)"

expect_exit 0 lb --quiet backup --stdin-name quiet.txt --stdin-from-command -- echo hi
[[ ! -s $LB_OUT ]] || fail "--quiet backup printed to stdout: $(head -c 200 "$LB_OUT")"
ok "--quiet backup prints nothing on stdout"

# --- diff between two snapshots -----------------------------------------------------------
rm "$SRC/removed.txt"
echo added >"$SRC/added.txt"
echo "one more line" >>"$SRC/text.txt"
expect_exit 0 lb backup --json "$SRC"
ID2=$(json 'd["snapshot_id"]' <"$LB_OUT")
[[ $ID2 != "$ID1" ]] || fail "second backup reused the first snapshot id"

expect_exit 0 lb diff "$ID1" "$ID2"
# "+ path", "- path", "M path"; the width of the gap is not part of the contract.
sed -E 's/^([-+M])[[:space:]]+/\1 /' "$LB_OUT" >"$T/diff.out"
grep -F -x -q -e "+ $SRC/added.txt" "$T/diff.out" || fail "diff does not show '+ $SRC/added.txt'"
grep -F -x -q -e "- $SRC/removed.txt" "$T/diff.out" || fail "diff does not show '- $SRC/removed.txt'"
grep -F -x -q -e "M $SRC/text.txt" "$T/diff.out" || fail "diff does not show 'M $SRC/text.txt'"
! grep -F -q -e "$SRC/random20m" "$T/diff.out" || fail "diff lists the unchanged random20m"
! grep -F -q -e "deep.txt" "$T/diff.out" || fail "diff lists the unchanged deep.txt"
ok "diff shows the added, removed and modified files and nothing unchanged"
