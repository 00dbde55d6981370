#!/usr/bin/env bash
# The S3 server dies in the middle of a sync and comes back: the sync fails
# with a clear error, the rerun completes, check --read-data on the remote
# passes and the remote restores byte-exact. Uses an s3rver of its own (it
# is killed), on its own port and data directory.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/remote_lib.sh"
need_s3 # credentials in the environment; skips loudly without s3rver

BIN=$(lb_s3rver_bin) || remote_skip "s3rver is not installed"
PORT=$(lb_free_port)
DATA=$T/s3data
mkdir -p "$DATA"
start_s3() {
        NODE_OPTIONS=--openssl-legacy-provider "$BIN" -d "$DATA" -a 127.0.0.1 -p "$PORT" -s \
                --configure-bucket lbrestart >>"$T/s3rver.log" 2>&1 &
        S3PID=$!
        register_pid "$S3PID"
        wait_for 30 curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/" || fail "s3rver did not start: $(cat "$T/s3rver.log")"
}
start_s3

export LONGBOX_REPO=$T/local
init_repo "$LONGBOX_REPO" --pack-size 1
SRC=$T/src
mkdir -p "$SRC"
for i in 1 2 3 4 5 6; do gen_random "$i" 4000000 >"$SRC/f$i.bin"; done
expect_exit 0 lb backup --quiet "$SRC"
npacks=$(find "$LONGBOX_REPO/packs" -type f | wc -l)
((npacks >= 20)) || fail "expected at least 20 packs to sync, got $npacks"

R=s3:http://127.0.0.1:$PORT/lbrestart/copy
uploaded() { find "$DATA/lbrestart" -type f -name '*._S3rver_object' 2>/dev/null | wc -l; }
# One transfer at a time and a rate limit, so the kill lands mid-sync;
# few retries, so the failed run ends soon.
LONGBOX_HTTP_RETRIES=1 LONGBOX_HTTP_TIMEOUT=5 "$LONGBOX" sync --to "$R" --parallel 1 --limit-upload 4096 \
        >"$T/sync1.out" 2>&1 &
sync_pid=$!
register_pid "$sync_pid"
some_uploaded() { (($(uploaded) >= 5)); }
wait_for 60 some_uploaded || fail "the sync uploaded nothing: $(cat "$T/sync1.out")"
kill -9 "$S3PID"
wait "$S3PID" 2>/dev/null || true
rc=0
wait "$sync_pid" || rc=$?
((rc != 0)) || fail "sync succeeded although the server died mid-way (uploaded $(uploaded) objects)"
grep -q -i -E 'refused|connect|server' "$T/sync1.out" || fail "the failed sync does not say the server is unreachable: $(cat "$T/sync1.out")"
ok "the server killed mid-sync: sync fails (exit $rc) and says why"

start_s3
expect_exit 0 lb sync --to "$R" --json
copied=$(json 'd["copied"]["packs"]' <"$LB_OUT")
((copied > 0 && copied < npacks)) || fail "the rerun copied $copied of $npacks packs: expected only the missing ones"
export LONGBOX_CACHE_DIR=$T/fresh-cache
expect_exit 0 lb check --read-data --repo "$R"
expect_exit 0 lb restore latest --repo "$R" --target "$T/restore"
assert_same_tree "$SRC" "$T/restore$SRC"
ok "after a restart the rerun copies the $copied missing packs; check --read-data on the remote passes; restore is byte-exact"
