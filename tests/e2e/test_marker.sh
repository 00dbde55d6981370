#!/usr/bin/env bash
# Nothing written to the repository shows plaintext: not file contents,
# not names, not symlink targets, tags or host names.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LONGBOX_REPO=$T/repo
SRC=$T/src
init_repo "$LONGBOX_REPO"

marker() { echo "lbmark$1$(python3 -c 'import secrets; print(secrets.token_hex(8))')"; }
CONTENT=$(marker content)
NAME=$(marker name)
DIR=$(marker dir)
LINK=$(marker link)
TAG=$(marker tag)
HOST=$(marker host)
STDIN=$(marker stdin)

mkdir -p "$SRC/$DIR"
{
        for _ in $(seq 1 20000); do echo "row $CONTENT"; done
        gen_random 31 100000
        echo "$CONTENT"
} >"$SRC/data.txt"
echo "named file" >"$SRC/$DIR/$NAME.txt"
ln -s "/etc/$LINK" "$SRC/link"

expect_exit 0 lb backup --tag "$TAG" --host "$HOST" "$SRC"
echo "hello" | expect_exit 0 lb backup --stdin-name "$STDIN.sql"

# The markers really are in the snapshots (so the scan below can fail).
[[ $(lb dump latest /"$STDIN.sql") == hello ]] || fail "stdin file not in the snapshot"
SNAP=$(lb snapshots --json | json "[s['id'] for s in d if '$TAG' in s['tags']][0]") ||
        fail "snapshots --json has no snapshot tagged with the marker tag"
lb ls "$SNAP" >"$T/ls" || fail "ls $SNAP failed"
grep -q -F -e "$SRC/$DIR/$NAME.txt" "$T/ls" || fail "marker file name not listed by ls"
lb snapshots --json | grep -q -F -e "$HOST" || fail "host name not in snapshots --json"
ok "markers are in the snapshots"

for m in "$CONTENT" "$NAME" "$DIR" "$LINK" "$TAG" "$HOST" "$STDIN"; do
        kind=${m#lbmark}
        kind=${kind%????????????????}
        if grep -r -a -l -F -e "$m" "$LONGBOX_REPO" >"$T/hits"; then
                fail "plaintext $kind marker found in: $(tr '\n' ' ' <"$T/hits")"
        fi
        [[ -z $(find "$LONGBOX_REPO" -name "*$m*") ]] || fail "$kind marker appears in a repository file name"
        ok "no plaintext $kind marker anywhere in the repository"
done
