#!/usr/bin/env bash
# Repository creation, passphrase sources, key slots and file permissions.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

R=$T/repo
SRC=$T/src
mkdir -p "$SRC"
echo hello >"$SRC/hello.txt"

# --- init ------------------------------------------------------------------
init_repo "$R"
[[ -f $R/config ]] || fail "init did not write $R/config"
[[ $(find "$R/keys" -type f | wc -l) == 1 ]] || fail "init should write exactly one key slot under keys/"
ok "init creates a missing directory with config and one key"

mkdir -p "$T/nonempty"
echo x >"$T/nonempty/file"
expect_exit 1 lb init --repo "$T/nonempty" --insecure-fast-kdf
[[ $(ls -A "$T/nonempty") == file ]] || fail "init into a non-empty directory left files behind"
ok "init refuses a non-empty directory"

expect_exit 1 lb init --repo "$R" --insecure-fast-kdf
ok "init refuses an existing repository"

# --- global options in either position, and LONGBOX_REPO ---------------------
expect_exit 0 lb --repo "$R" snapshots
expect_exit 0 lb snapshots --repo "$R"
LONGBOX_REPO=$R expect_exit 0 lb snapshots
ok "--repo before or after the subcommand, or LONGBOX_REPO"

# --- not a repository ----------------------------------------------------------
mkdir -p "$T/empty"
expect_exit 10 lb snapshots --repo "$T/empty"
expect_exit 10 lb snapshots --repo "$T/does-not-exist"
[[ ! -e $T/does-not-exist ]] || fail "opening a missing repository created it"
expect_exit 10 lb backup --repo "$T/empty" "$SRC"
[[ -z $(ls -A "$T/empty") ]] || fail "backup into a non-repository wrote files"
ok "not a repository exits 10 and writes nothing"

export LONGBOX_REPO=$R
expect_exit 0 lb backup "$SRC"
ok "backup with the right passphrase"

# --- wrong passphrase ---------------------------------------------------------
repo_state "$R" >"$T/state.before"
LONGBOX_PASSWORD=wrong-pass expect_exit 12 lb snapshots
LONGBOX_PASSWORD=wrong-pass expect_exit 12 lb backup "$SRC"
LONGBOX_PASSWORD=wrong-pass expect_exit 12 lb check
repo_state "$R" >"$T/state.after"
diff -u "$T/state.before" "$T/state.after" ||
        fail "a wrong passphrase changed the repository (see diff above)"
ok "wrong passphrase exits 12 and changes nothing in the repository"

# --- passphrase sources -----------------------------------------------------------
# No env, no file, no terminal: setsid detaches the controlling tty.
expect_exit 1 env -u LONGBOX_PASSWORD setsid -w "$LONGBOX" snapshots </dev/null
grep -q -i -E 'pass(word|phrase)' "$LB_ERR" ||
        fail "no passphrase source: the error does not mention the password: $(cat "$LB_ERR")"
ok "no passphrase source at all is a clear error (exit 1)"

printf '%s' test-pass >"$T/pw-plain"
printf '%s\n' test-pass >"$T/pw-newline"
env -u LONGBOX_PASSWORD "$LONGBOX" --password-file "$T/pw-plain" snapshots >/dev/null ||
        fail "--password-file without a trailing newline was not accepted"
env -u LONGBOX_PASSWORD "$LONGBOX" snapshots --password-file "$T/pw-newline" >/dev/null ||
        fail "--password-file with a trailing newline was not accepted"
env -u LONGBOX_PASSWORD LONGBOX_PASSWORD_FILE="$T/pw-newline" "$LONGBOX" snapshots >/dev/null ||
        fail "LONGBOX_PASSWORD_FILE was not used"
LONGBOX_PASSWORD=wrong-pass expect_exit 0 lb --password-file "$T/pw-plain" snapshots
ok "--password-file / LONGBOX_PASSWORD_FILE, and they win over LONGBOX_PASSWORD"

printf '%s\n' wrong-pass >"$T/pw-wrong"
expect_exit 12 lb --password-file "$T/pw-wrong" snapshots
ok "a wrong passphrase from a file exits 12"

# --- key slots ----------------------------------------------------------------------
key_count() { lb key list --json | json 'len(d)'; }
key_id_by_label() { lb key list --json | json "[k['id'] for k in d if k['label'] == '$1'][0]"; }
current_key_id() { lb key list --json | json "[k['id'] for k in d if k['current']][0]"; }

expect_exit 0 lb key list
[[ -s $LB_OUT ]] || fail "key list printed nothing"
[[ $(key_count) == 1 ]] || fail "a new repository should have one key"
ok "key list"

printf '%s\n' second-pass >"$T/pw-second"
expect_exit 0 lb key add --new-password-file "$T/pw-second" --label second --insecure-fast-kdf
LONGBOX_NEW_PASSWORD=third-pass expect_exit 0 lb key add --label third --insecure-fast-kdf
[[ $(key_count) == 3 ]] || fail "expected 3 keys after two key add, got $(key_count)"
[[ $(find "$R/keys" -type f | wc -l) == 3 ]] || fail "expected 3 files under keys/"
LONGBOX_PASSWORD=second-pass expect_exit 0 lb snapshots
LONGBOX_PASSWORD=third-pass expect_exit 0 lb snapshots
LONGBOX_PASSWORD=test-pass expect_exit 0 lb snapshots
ok "key add (from a file and from LONGBOX_NEW_PASSWORD): every passphrase opens the repository"

[[ $(LONGBOX_PASSWORD=second-pass current_key_id) == $(key_id_by_label second) ]] ||
        fail "key list does not mark the slot that was used as current"
ok "key list marks the slot in use as current"

# passwd changes the slot that was unlocked; the old passphrase stops working.
printf '%s\n' changed-pass >"$T/pw-changed"
expect_exit 0 lb key passwd --new-password-file "$T/pw-changed"
expect_exit 12 lb snapshots
LONGBOX_PASSWORD=changed-pass expect_exit 0 lb snapshots
LONGBOX_PASSWORD=second-pass expect_exit 0 lb snapshots
[[ $(LONGBOX_PASSWORD=changed-pass key_count) == 3 ]] || fail "key passwd changed the number of slots"
ok "key passwd: new passphrase works, old one exits 12, other slots untouched"

export LONGBOX_PASSWORD=changed-pass
second=$(key_id_by_label second)
third=$(key_id_by_label third)
expect_exit 0 lb key remove "$second"
LONGBOX_PASSWORD=second-pass expect_exit 12 lb snapshots
expect_exit 0 lb key remove "$third"
LONGBOX_PASSWORD=third-pass expect_exit 12 lb snapshots
[[ $(key_count) == 1 ]] || fail "expected 1 key after removing two"
[[ $(find "$R/keys" -type f | wc -l) == 1 ]] || fail "removed key files are still under keys/"
ok "key remove: the removed passphrases stop working"

last=$(current_key_id)
expect_exit 1 lb key remove "$last"
[[ $(key_count) == 1 ]] || fail "the last key slot was removed"
expect_exit 0 lb snapshots
ok "removing the last key slot is refused (exit 1)"

# --- permissions ----------------------------------------------------------------------
expect_exit 0 lb backup "$SRC"
bad_files=$(find "$R" -type f ! -perm 0600)
bad_dirs=$(find "$R" -type d ! -perm 0700)
[[ -z $bad_files ]] || fail "files in the repository not mode 0600: $bad_files"
[[ -z $bad_dirs ]] || fail "directories in the repository not mode 0700: $bad_dirs"
for d in keys packs index snapshots locks; do
        [[ -d $R/$d ]] || fail "repository lacks $d/"
done
ok "repository files are 0600 and directories 0700 (umask 022)"
