#!/usr/bin/env bash
# A repository directly on S3 (s3rver): init, backup, restore byte-exact,
# check --read-data, forget and index rebuild, with an empty cache; rclone
# as an independent S3 client sees the same objects (names, sizes, bytes)
# and no plaintext; clear errors for a missing bucket, refused credentials,
# refused connections, an unresolvable host and missing credentials.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/remote_lib.sh"
need_s3

R=$S3_URL/$RUN_ID/repo
export LONGBOX_REPO=$R
SRC=$T/src
marker() { echo "lbmark$1$(python3 -c 'import secrets; print(secrets.token_hex(8))')"; }
CONTENT=$(marker content)
NAME=$(marker name)
mkdir -p "$SRC/sub"
{
        for _ in $(seq 1 5000); do echo "row $CONTENT"; done
        gen_random 7 300000
} >"$SRC/data.txt"
gen_random 8 3000000 >"$SRC/sub/$NAME.bin"
gen_text 9 2000000 >"$SRC/sub/text.txt"
ln -s "data.txt" "$SRC/link"

# Small listing pages: every listing below goes through pagination.
export LONGBOX_S3_LIST_PAGE=3
init_repo "$R" --pack-size 1
ok "init on $R"
expect_exit 1 lb init --repo "$R" --insecure-fast-kdf
output_has "not empty" || fail "second init did not say the location is not empty"
ok "init refuses a prefix that holds objects"

expect_exit 0 lb backup "$SRC"
gen_random 10 1000000 >"$SRC/sub/more.bin"
expect_exit 0 lb backup --tag second "$SRC"
[[ $(snapshot_count) == 2 ]] || fail "expected 2 snapshots on S3"
ok "two backups straight to S3"

# A fresh cache: the local index is bootstrapped from the index files.
export LONGBOX_CACHE_DIR=$T/cache2
expect_exit 0 lb restore latest --target "$T/restore"
assert_same_tree "$SRC" "$T/restore$SRC"
ok "restore from S3 with an empty cache is byte-exact"
[[ -d $T/cache2 ]] && [[ -n $(find "$T/cache2" -path '*/index/data.mdb') ]] || fail "no local index in the cache dir"
ok "the local index lives in the cache dir"
expect_exit 0 lb dump latest "$SRC/sub/text.txt"
cmp -s "$LB_OUT" "$SRC/sub/text.txt" || fail "dump from S3 differs"
expect_exit 0 lb ls latest
grep -q -F "$SRC/sub/more.bin" "$LB_OUT" || fail "ls from S3 misses a file"
ok "dump and ls from S3"
expect_exit 0 lb check --read-data
ok "check --read-data on S3"

# rclone, an independent client, sees the objects longbox wrote.
expect_exit 0 lb sync --to "$T/copy"
(cd "$T/copy" && find config keys packs index snapshots -type f -printf '%p %s\n' | sort) >"$T/lb.list"
# Not locks/ nor events/ (every command, sync included, records an event
# in the repository it ran on, after the copy was made).
rclone_s3_listing "$RUN_ID/repo" | grep -v -E '^(locks|events)/' >"$T/rclone.list" ||
        fail "rclone could not list the bucket"
[[ $(wc -l <"$T/rclone.list") -gt 5 ]] || fail "rclone listed almost nothing"
diff -u "$T/lb.list" "$T/rclone.list" >"$T/list.diff" || { sed 's/^/#   /' "$T/list.diff"; fail "rclone's listing differs from longbox's"; }
ok "rclone lists the same object names and sizes ($(wc -l <"$T/rclone.list") objects)"
rclone copy --fast-list "lbs3:$LB_S3_BUCKET/$RUN_ID/repo" "$T/rc" --exclude 'locks/**' --exclude 'events/**' || fail "rclone copy from the bucket failed"
rmdir "$T/copy/locks" 2>/dev/null || true
diff -r -x events "$T/copy" "$T/rc" >"$T/rc.diff" || { head -5 "$T/rc.diff"; fail "bytes rclone downloaded differ from longbox's copy"; }
ok "rclone downloads the same bytes"
for m in "$CONTENT" "$NAME"; do
        if grep -r -a -l -F -e "$m" "$T/rc" >"$T/hits"; then fail "plaintext marker in: $(tr '\n' ' ' <"$T/hits")"; fi
        [[ -z $(find "$T/rc" -name "*$m*") ]] || fail "marker in an object name"
done
grep -r -a -q -F -e "$CONTENT" "$SRC" || fail "marker missing from the source (the scan could not fail)"
ok "no plaintext marker in the bucket's objects"

# The copy made by sync is a repository of its own, with the same snapshots.
[[ $(LONGBOX_REPO=$T/copy snapshot_count) == 2 ]] || fail "the copy does not hold 2 snapshots"
ok "sync from S3 to a directory makes a usable repository"

# forget and index rebuild on S3.
expect_exit 0 lb forget --keep-last 1
[[ $(snapshot_count) == 1 ]] || fail "forget on S3 left $(snapshot_count) snapshots"
expect_exit 0 lb index rebuild
expect_exit 0 lb index rebuild --from-packs
export LONGBOX_CACHE_DIR=$T/cache3
expect_exit 0 lb restore latest --target "$T/restore2"
assert_same_tree "$SRC" "$T/restore2$SRC"
ok "forget and index rebuild on S3, restore after"

# prune on S3: what only the forgotten snapshot used goes; what stays
# restores; a second prune has nothing to do.
expect_exit 0 lb prune --max-unused 0 --json
[[ $(json 'd["packs_deleted"] + d["packs_repacked"]' <"$LB_OUT") != 0 ]] ||
        fail "prune on S3 found nothing to remove after forget: $(cat "$LB_OUT")"
expect_exit 0 lb check --read-data
rm -rf "$T/restore2"
expect_exit 0 lb restore latest --target "$T/restore2"
assert_same_tree "$SRC" "$T/restore2$SRC"
expect_exit 0 lb prune --max-unused 0 --json
[[ $(json 'd["packs_deleted"] + d["packs_repacked"] + d["packs_unindexed"]' <"$LB_OUT") == 0 ]] ||
        fail "a second prune on S3 still had work: $(cat "$LB_OUT")"
ok "prune on S3: check --read-data passes, restore byte-exact, a rerun has nothing to do"

# Errors: each a clear sentence and the documented exit code.
expect_exit 10 lb snapshots --repo "s3:$LB_S3_ENDPOINT/no-such-bucket/x"
output_has "bucket or folder does not exist" || fail "missing bucket: unclear message: $(cat "$LB_ERR")"
ok "missing bucket: exit 10, says so"
expect_exit 10 lb snapshots --repo "$S3_URL/$RUN_ID/nothing-here"
ok "empty prefix: exit 10"
AWS_ACCESS_KEY_ID=nobody expect_exit 1 lb snapshots
output_has "refused the credentials" || fail "bad key: unclear message: $(cat "$LB_ERR")"
ok "unknown access key: exit 1, credentials refused"
port=$(lb_free_port)
LONGBOX_HTTP_RETRIES=1 expect_exit 1 lb snapshots --repo "s3:http://127.0.0.1:$port/$LB_S3_BUCKET/x"
output_has "connection refused" || fail "refused: unclear message: $(cat "$LB_ERR")"
ok "connection refused: exit 1, says so"
expect_exit 1 lb snapshots --repo "s3:http://no-such-host.invalid/$LB_S3_BUCKET/x"
output_has "host not found" || fail "DNS: unclear message: $(cat "$LB_ERR")"
ok "unresolvable host: exit 1, says so"
env -u AWS_ACCESS_KEY_ID "$LONGBOX" snapshots >"$LB_OUT" 2>"$LB_ERR" && fail "no credentials accepted"
output_has "AWS_ACCESS_KEY_ID" || fail "no credentials: unclear message: $(cat "$LB_ERR")"
ok "no credentials: says which variables to set"
expect_exit 2 lb snapshots --repo "s3:http://127.0.0.1/Bad_Bucket"
ok "malformed location: usage error"
