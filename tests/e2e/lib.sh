# shellcheck shell=bash
# Shared setup and helpers for the end-to-end tests. Source it first:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# meson runs each test with LONGBOX (the binary), LB_SRC (source root) and
# LB_BUILD (build root) set. Every check prints "ok - <name>"; the first
# failed check prints "not ok - <message>" and exits 1. Set LB_KEEP_TMP=1 to
# keep the scratch directory for a post-mortem.
set -euo pipefail

: "${LONGBOX:?LONGBOX must name the longbox binary (meson sets it)}"
[[ -x $LONGBOX ]] || { echo "not ok - LONGBOX=$LONGBOX is not an executable"; exit 1; }
LONGBOX=$(realpath "$LONGBOX")

export LC_ALL=C TZ=UTC
umask 022

# Scratch directory, removed on exit. realpath: backups store absolute
# paths, so tests compare against the canonical spelling.
T=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/lb-e2e.XXXXXX")")
LB_OUT=$T/.last.out # stdout of the last expect_exit
LB_ERR=$T/.last.err # stderr of the last expect_exit
LB_MOUNTS=()
LB_PIDS=()

lb_cleanup() {
        local rc=$? m p
        for p in "${LB_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
        for m in "${LB_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
        if [[ ${LB_KEEP_TMP:-0} == 1 ]]; then
                echo "# kept $T"
        else
                chmod -R u+rwX "$T" 2>/dev/null || true
                rm -rf "$T"
        fi
        return "$rc"
}
trap lb_cleanup EXIT

unset LONGBOX_REPO LONGBOX_PASSWORD_FILE LONGBOX_NEW_PASSWORD
export LONGBOX_PASSWORD=test-pass
export LONGBOX_CACHE_DIR=$T/cache
# No config file of this machine (/etc/longbox/longbox.conf) leaks into a
# test: an empty one, unless a test sets its own.
: >"$T/.empty.conf"
export LONGBOX_CONFIG=$T/.empty.conf
unset LONGBOX_METRICS_FILE

# fd 9 is the test's stdout even inside $(...), so a failure inside a
# command substitution still reports why.
exec 9>&1
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*" >&9; exit 1; }
skip() { echo "SKIP: $*"; }

lb() { "$LONGBOX" "$@"; }

# expect_exit CODE CMD...: run CMD (stdin inherited, stdout to $LB_OUT,
# stderr to $LB_ERR) and fail unless it exits with CODE.
expect_exit() {
        local want=$1 rc=0
        shift
        "$@" >"$LB_OUT" 2>"$LB_ERR" || rc=$?
        if [[ $rc != "$want" ]]; then
                echo "# command: $*"
                echo "# stdout (last 20 lines):"
                tail -n 20 "$LB_OUT" | sed 's/^/#   /'
                echo "# stderr (last 20 lines):"
                tail -n 20 "$LB_ERR" | sed 's/^/#   /'
                fail "expected exit $want, got $rc: $*"
        fi
}

# init_repo DIR [init options...]
init_repo() {
        expect_exit 0 lb init --repo "$1" --insecure-fast-kdf "${@:2}"
}

# output_has STRING: the last expect_exit printed STRING (stdout or stderr).
output_has() {
        grep -F -q -e "$1" "$LB_OUT" "$LB_ERR"
}

# json EXPR: evaluate a Python expression over the JSON document on stdin
# (bound to d); strings print raw, everything else as JSON. Progress lines
# of long commands ({"message_type":"status",...}) are skipped.
json() {
        python3 -c 'import json, sys
d = json.loads("".join(l for l in sys.stdin if not l.startswith("{\"message_type\":\"status\"")))
r = eval(sys.argv[1])
print(r if isinstance(r, str) else json.dumps(r))' "$1"
}

# snapshot_count: number of snapshots in $LONGBOX_REPO.
snapshot_count() {
        local out
        out=$(lb snapshots --json) || fail "snapshots --json failed (exit $?)"
        json 'len(d)' <<<"$out" || fail "snapshots --json did not print a JSON array"
}

# gen_random SEED BYTES: reproducible incompressible bytes on stdout.
gen_random() {
        python3 -c 'import random, sys
r = random.Random(int(sys.argv[1])); n = int(sys.argv[2]); out = sys.stdout.buffer
while n > 0:
    k = min(n, 1 << 20); out.write(r.randbytes(k)); n -= k' "$1" "$2"
}

# gen_text SEED BYTES: reproducible compressible text (random words) on stdout.
gen_text() {
        python3 -c 'import random, sys
r = random.Random(int(sys.argv[1])); n = int(sys.argv[2]); out = sys.stdout.buffer
words = [("".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 10)))).encode()
         for _ in range(2000)]
while n > 0:
    block = b"".join(b" ".join(r.choices(words, k=12)) + b"\n" for _ in range(4096))
    block = block[:n]; out.write(block); n -= len(block)' "$1" "$2"
}

# tree_listing DIR: one line per entry under DIR (DIR itself included):
# name (shell-quoted, so newlines and odd bytes survive), mode, mtime, size
# and type. Directory sizes depend on the file system's history, not on
# the contents, so they are left out.
tree_listing() {
        local dir=$1 rel st
        (
                cd "$dir"
                find . -print0 | sort -z | while IFS= read -r -d '' rel; do
                        st=$(stat -c '%a %Y %s %F' -- "$rel")
                        [[ -d $rel && ! -L $rel ]] && st=$(stat -c '%a %Y - %F' -- "$rel")
                        printf '%q %s\n' "$rel" "$st"
                done
        )
}

# assert_same_tree A B: same names, contents, symlink targets, types,
# modes, mtimes and sizes.
assert_same_tree() {
        local a=$1 b=$2 rc=0
        [[ -d $a ]] || fail "assert_same_tree: $a is not a directory"
        [[ -d $b ]] || fail "assert_same_tree: $b is not a directory"
        diff -r --no-dereference -- "$a" "$b" >"$T/.diff" 2>&1 || rc=$?
        # diff reports every pair of fifos (or devices) as different even when
        # both sides have the same type; the listing below compares types.
        grep -v -E '^File .* is a (fifo|character special file|block special file|socket) while file .* is a \1$' \
                "$T/.diff" >"$T/.diff.real" || true
        if ((rc > 1)) || [[ -s $T/.diff.real ]]; then
                sed 's/^/#   /' "$T/.diff.real" | head -n 40
                fail "contents differ between $a and $b"
        fi
        tree_listing "$a" >"$T/.list.a"
        tree_listing "$b" >"$T/.list.b"
        if ! diff -u "$T/.list.a" "$T/.list.b" >"$T/.list.diff"; then
                sed 's/^/#   /' "$T/.list.diff" | head -n 40
                fail "metadata (mode, mtime, size, type) differs between $a and $b"
        fi
}

# repo_state DIR: every path under DIR with size, mode and mtime (ns), to
# prove a command changed nothing.
repo_state() {
        find "$1" -printf '%p %s %m %T@\n' | sort
}

# register_mount DIR / register_pid PID: cleaned up on exit.
register_mount() { LB_MOUNTS+=("$1"); }
register_pid() { LB_PIDS+=("$1"); }

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
        local deadline=$((SECONDS + $1))
        shift
        until "$@"; do
                ((SECONDS < deadline)) || return 1
                sleep 0.1
        done
}
