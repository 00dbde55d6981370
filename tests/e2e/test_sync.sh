#!/usr/bin/env bash
# longbox sync to S3 (s3rver) and WebDAV: copies everything, is idempotent,
# resumes after kill -9 transferring only what is missing, mirrors
# deletions with --delete, survives a server that fails now and then; a
# disaster drill restores every snapshot from the remote alone (empty
# cache, only the passphrase).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/remote_lib.sh"
need_s3
need_webdav

LOCAL=$T/local
export LONGBOX_REPO=$LOCAL
SRC=$T/src
mkdir -p "$SRC"
init_repo "$LOCAL" --pack-size 1
for i in 1 2 3; do
        gen_random "$i" 2000000 >"$SRC/f$i.bin"
        gen_text "$((i + 10))" 500000 >"$SRC/t$i.txt"
        expect_exit 0 lb backup --tag "b$i" "$SRC"
        cp -a "$SRC" "$T/src-at-$i"
done
npacks=$(find "$LOCAL/packs" -type f | wc -l)
nidx=$(find "$LOCAL/index" -type f | wc -l)
((npacks >= 6)) || fail "expected several packs, got $npacks"

# ---- first sync, then an idempotent second one ----
R=$S3_URL/$RUN_ID/copy
expect_exit 0 lb sync --to "$R" --json
[[ $(json 'd["copied"]["packs"]' <"$LB_OUT") == "$npacks" ]] || fail "sync copied $(json 'd["copied"]["packs"]' <"$LB_OUT") packs, expected $npacks"
[[ $(json 'd["copied"]["index"]' <"$LB_OUT") == "$nidx" ]] || fail "index files not all copied"
[[ $(json 'd["copied"]["snapshots"]' <"$LB_OUT") == 3 ]] || fail "snapshots not all copied"
[[ $(json 'd["created"]' <"$LB_OUT") == true ]] || fail "sync did not report a new copy"
ok "sync copied $npacks packs, $nidx index files, 3 snapshots"
rclone_s3_listing "$RUN_ID/copy" | grep -v -E '^(locks|events)/' >"$T/remote.list"
dir_listing "$LOCAL" >"$T/local.list"
diff -u "$T/local.list" "$T/remote.list" >/dev/null || fail "remote objects (seen by rclone) differ from the local repository"
ok "the remote holds exactly the local objects (names and sizes, seen by rclone)"
expect_exit 0 lb sync --to "$R" --json
# Only the event the first sync recorded about itself is new.
[[ $(json 'sum(v for k, v in d["copied"].items() if k != "events")' <"$LB_OUT") == 0 ]] ||
        fail "second sync copied something: $(cat "$LB_OUT")"
[[ $(json 'd["copied"]["events"]' <"$LB_OUT") == 1 ]] ||
        fail "second sync did not copy the first sync's event: $(cat "$LB_OUT")"
reqs=$(json 'd["requests"]' <"$LB_OUT")
((reqs < 20)) || fail "second sync made $reqs requests"
ok "second sync copies nothing ($reqs requests)"

# ---- disaster drill: only the remote and the passphrase ----
(
        export LONGBOX_CACHE_DIR=$T/empty-cache LONGBOX_REPO=$R
        mapfile -t ids < <(lb snapshots --json | json '"\n".join(s["id"] for s in d)')
        ((${#ids[@]} == 3)) || fail "remote lists ${#ids[@]} snapshots"
        i=0
        for id in "${ids[@]}"; do
                i=$((i + 1))
                tag=$(lb snapshots --json | json "[s['tags'][0] for s in d if s['id'] == '$id'][0]")
                expect_exit 0 lb restore "$id" --target "$T/drill-$i"
                assert_same_tree "$T/src-at-${tag#b}" "$T/drill-$i$SRC"
        done
        expect_exit 0 lb check --read-data
)
ok "disaster drill: every snapshot restored byte-exact from S3 with an empty cache"

# ---- kill -9 in the middle, then resume ----
R2=$S3_URL/$RUN_ID/resume
"$LONGBOX" sync --to "$R2" --limit-upload 1500 >/dev/null 2>&1 &
pid=$!
register_pid "$pid"
# Complete packs only: a cut-off upload may show (s3rver writes in place)
# with a short size, and sync must copy it again.
complete_packs() {
        comm -12 <(dir_listing "$LOCAL" | grep '^packs/') \
                <(rclone lsf -R --files-only --format ps --separator ' ' "lbs3:$LB_S3_BUCKET/$RUN_ID/resume" 2>/dev/null |
                        grep '^packs/' | sort) | wc -l
}
some_packs_up() { (($(complete_packs) >= 1)); }
wait_for 30 some_packs_up || fail "no pack reached the remote"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
sleep 1 # let the server settle the uploads the kill cut off
partial=$(complete_packs)
((partial > 0 && partial < npacks)) || fail "kill came too late or too early ($partial of $npacks packs)"
expect_exit 0 lb sync --to "$R2" --json
copied=$(json 'd["copied"]["packs"]' <"$LB_OUT")
((copied == npacks - partial)) || fail "resumed sync copied $copied packs; $partial of $npacks were there"
ok "sync killed after $partial of $npacks packs; the rerun copied only the $copied missing"
LONGBOX_CACHE_DIR=$T/cache-r2 expect_exit 0 lb check --read-data --repo "$R2"
ok "check --read-data passes on the resumed copy"

# ---- --delete mirrors forget ----
expect_exit 0 lb forget --keep-last 2
expect_exit 0 lb sync --to "$R" --delete --json
[[ $(json 'd["deleted"]["snapshots"]' <"$LB_OUT") == 1 ]] || fail "sync --delete did not delete the forgotten snapshot"
[[ $(LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-d snapshot_count) == 2 ]] || fail "remote does not hold 2 snapshots"
ok "sync --delete removes the forgotten snapshot from the remote"

# ---- a flaky server: 500s and stalls now and then ----
s3port=${LB_S3_ENDPOINT##*:}
python3 "$LB_SRC/tests/e2e/faultproxy.py" "$s3port" "$T/proxy.port" "$T/proxy.count" --every 4 --stall-every 13 --stall 30 &
register_pid $!
wait_for 10 test -s "$T/proxy.port" || fail "fault proxy did not start"
P=s3:http://127.0.0.1:$(cat "$T/proxy.port")/$LB_S3_BUCKET/$RUN_ID/flaky
LONGBOX_HTTP_TIMEOUT=2 LONGBOX_HTTP_RETRIES=8 expect_exit 0 lb sync --to "$P"
gen_random 99 1500000 >"$SRC/flaky.bin"
LONGBOX_HTTP_TIMEOUT=2 LONGBOX_HTTP_RETRIES=8 LONGBOX_CACHE_DIR=$T/cache-p expect_exit 0 lb backup --repo "$P" "$SRC"
read -r errors stalls <"$T/proxy.count"
((errors > 0 && stalls > 0)) || fail "the proxy injected no faults ($errors errors, $stalls stalls)"
ok "sync and backup through a flaky proxy complete ($errors 500s, $stalls stalls injected)"
LONGBOX_CACHE_DIR=$T/cache-f expect_exit 0 lb check --read-data --repo "$S3_URL/$RUN_ID/flaky"
ok "check --read-data passes on what went through the proxy"

# ---- sync to WebDAV too ----
D=$DAV_URL/$RUN_ID/copy
expect_exit 0 lb sync --to "$D" --json
[[ $(json 'd["copied"]["packs"]' <"$LB_OUT") -gt 0 ]] || fail "no packs copied to WebDAV"
dir_listing "$LOCAL" >"$T/local.list"
dir_listing "$LB_WEBDAV_DIR/$RUN_ID/copy" >"$T/dav.list"
diff -u "$T/local.list" "$T/dav.list" >/dev/null || fail "WebDAV copy differs from the local repository"
ok "sync to WebDAV: same objects"

# ---- sync refuses another repository ----
OTHER=$S3_URL/$RUN_ID/other
init_repo "$OTHER"
expect_exit 1 lb sync --to "$OTHER"
output_has "another longbox repository" || fail "sync into another repository: unclear message"
ok "sync refuses to mix two repositories"
