#!/usr/bin/env bash
# The dead-server case, end to end: a database is backed up to the on-site
# repository and copied off-site by `sync` as the config file says ([remote]
# with a credentials file); then a "new machine" (empty cache, no AWS
# variables, only the config and the passphrase) restores the database from
# the S3 copy into a new database, identical to the source, and a restore
# drill runs from the off-site copy.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/remote_lib.sh"
need_s3

SRC=lbt_offsite_src
NEW=lbt_offsite_new
PREFIX=lbt_offsite_drill
pg_load_testdb "$SRC" 3000
export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"
REMOTE=$S3_URL/$RUN_ID/offsite

# The credentials live in a file of their own; the config names it.
cat >"$T/s3-credentials" <<EOF
# longbox's off-site copy
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
EOF
chmod 600 "$T/s3-credentials"
cat >"$T/longbox.conf" <<EOF
[repository]
location = $LONGBOX_REPO

[remote]
location = $REMOTE
credentials-file = $T/s3-credentials
EOF
chmod 600 "$T/longbox.conf"
export LONGBOX_CONFIG=$T/longbox.conf
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

expect_exit 0 lb backup --db "$(pg_conninfo "$SRC")"
expect_exit 0 lb sync --json
[[ $(json 'd["copied"]["snapshots"]' <"$LB_OUT") == 1 ]] || fail "sync did not copy the snapshot: $(cat "$LB_OUT")"
ok "backup, then sync to the [remote] of the config with its credentials file"

# Without the credentials file the remote refuses: the file is what worked.
sed -i '/credentials-file/d' "$T/longbox.conf"
expect_exit 1 lb snapshots --repo "$REMOTE"
output_has "AWS_ACCESS_KEY_ID" || fail "no credentials: the error does not say what to set: $(cat "$LB_ERR")"
echo "credentials-file = $T/s3-credentials" >>"$T/longbox.conf"

# The new machine: the on-site repository is gone, the cache is empty.
rm -rf "$LONGBOX_REPO" "$LONGBOX_CACHE_DIR"
export LONGBOX_CACHE_DIR=$T/new-cache
(($(lb snapshots --repo "$REMOTE" --json | json 'len(d)') == 1)) || fail "the off-site copy lists no snapshot"
pg_drop_db "$NEW"
expect_exit 0 lb restore latest --repo "$REMOTE" --dbname "$(pg_conninfo "$NEW")" --create --jobs 2
PG_LABEL="restore from S3 on a new machine" pg_compare_dbs "$SRC" "$NEW" create
ok "restore --dbname from the S3 copy alone (empty cache, credentials from the config) is identical"

SERVER="host=$LB_PGHOST port=$LB_PGPORT user=$LB_PGUSER"
expect_exit 0 lb drill --repo "$REMOTE" --conninfo "$SERVER" --dbname-prefix "$PREFIX" --json
[[ $(json 'd["scratch_dropped"]' <"$LB_OUT") == true ]] || fail "drill from S3: $(cat "$LB_OUT")"
[[ $(json 'd["tables_verified"]' <"$LB_OUT") -ge 5 ]] || fail "drill from S3 verified too few tables"
ok "a restore drill runs from the off-site copy"
pg_drop_db "$NEW"
