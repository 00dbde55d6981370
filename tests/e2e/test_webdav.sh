#!/usr/bin/env bash
# Repositories on WebDAV (rclone serve webdav) and on an rclone remote
# (longbox starts rclone itself): init, backup, restore byte-exact, check
# --read-data with an empty cache; atomic puts leave no temp files; wrong
# password is a clear error (HTTP 401); a missing rclone is a clear error.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/remote_lib.sh"
need_webdav

SRC=$T/src
mkdir -p "$SRC/a/b"
gen_random 21 2500000 >"$SRC/a/r.bin"
gen_text 22 1500000 >"$SRC/a/b/t.txt"
echo small >"$SRC/s"

# ---- WebDAV ----
R=$DAV_URL/$RUN_ID/deep/repo
export LONGBOX_REPO=$R
init_repo "$R" --pack-size 1
ok "init on WebDAV creates the missing folders ($R)"
expect_exit 0 lb backup "$SRC"
echo changed >>"$SRC/s"
expect_exit 0 lb backup "$SRC"
[[ $(snapshot_count) == 2 ]] || fail "expected 2 snapshots on WebDAV"
[[ -f $LB_WEBDAV_DIR/$RUN_ID/deep/repo/config ]] || fail "no config file in the served directory"
[[ -z $(find "$LB_WEBDAV_DIR/$RUN_ID" -name '.tmp-*') ]] || fail "temp files left behind by puts"
ok "two backups; objects under the served folder, no temp files left"
export LONGBOX_CACHE_DIR=$T/cache2
expect_exit 0 lb restore latest --target "$T/restore"
assert_same_tree "$SRC" "$T/restore$SRC"
ok "restore from WebDAV with an empty cache is byte-exact"
expect_exit 0 lb check --read-data
ok "check --read-data on WebDAV"
# The served directory is itself a valid local repository (same layout).
[[ $(LONGBOX_REPO=$LB_WEBDAV_DIR/$RUN_ID/deep/repo snapshot_count) == 2 ]] || fail "served folder is not a repository"
ok "the WebDAV layout is the directory layout"

# prune on WebDAV also removes the temporary upload of a killed put.
served=$LB_WEBDAV_DIR/$RUN_ID/deep/repo
shard=$(find "$served/packs" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -n 1)
# Through the server (rclone caches its listings: a file made behind its
# back stays invisible for minutes).
curl -s -f -o /dev/null -u "$LB_WEBDAV_USER:$LB_WEBDAV_PASS" -T - \
        "$LB_WEBDAV_URL/$RUN_ID/deep/repo/packs/$shard/.tmp-0123456789abcdef" <<<"partial upload" ||
        fail "could not PUT a temporary file through WebDAV"
[[ -n $(find "$served" -name '.tmp-*') ]] || fail "the planted temporary upload is not in the served folder"
expect_exit 0 lb forget --keep-last 1 --prune --max-unused 0
expect_exit 0 lb check --read-data
[[ -z $(find "$served" -name '.tmp-*') ]] || fail "prune left temporary uploads: $(find "$served" -name '.tmp-*')"
rm -rf "$T/restore"
expect_exit 0 lb restore latest --target "$T/restore"
assert_same_tree "$SRC" "$T/restore$SRC"
ok "forget --prune on WebDAV: temporary uploads removed, check passes, restore byte-exact"

LONGBOX_WEBDAV_PASSWORD=wrong expect_exit 1 lb snapshots
output_has "refused the credentials" || fail "wrong password: unclear message: $(cat "$LB_ERR")"
ok "wrong WebDAV password: exit 1, credentials refused"
expect_exit 10 lb snapshots --repo "$DAV_URL/$RUN_ID/none"
ok "missing folder: exit 10"

# ---- rclone:REMOTE:PATH (longbox runs rclone serve webdav itself) ----
RC=rclone::local:$T/rclone-repo
init_repo "$RC"
expect_exit 0 lb backup --repo "$RC" "$SRC"
expect_exit 0 lb restore --repo "$RC" latest --target "$T/restore-rc"
assert_same_tree "$SRC" "$T/restore-rc$SRC"
[[ -f $T/rclone-repo/config ]] || fail "rclone backend wrote no config"
ok "rclone backend: init, backup, restore byte-exact"
pgrep -f "serve webdav :local:$T/rclone-repo" >/dev/null && fail "rclone was left running"
ok "rclone is stopped after the command"
LONGBOX_RCLONE=$T/no-such-rclone expect_exit 1 lb snapshots --repo "$RC"
output_has "rclone is not installed" || fail "missing rclone: unclear message: $(cat "$LB_ERR")"
ok "missing rclone: says so"
