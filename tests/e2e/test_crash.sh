#!/usr/bin/env bash
# kill -9 during a backup at several moments: the repository stays
# consistent and the next backup succeeds and restores byte-exact.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$T/src
mkdir -p "$SRC/text" "$SRC/binary"
# ~200 MB: half compressible text, half random, in 10 MB files.
for i in $(seq 1 10); do
        gen_text "$i" 10000000 >"$SRC/text/part$i.txt"
        gen_random "$((100 + i))" 10000000 >"$SRC/binary/part$i.bin"
done

kills=0
for delay in 0.2 0.5 1 2 4; do
        R=$T/repo-$delay
        export LONGBOX_REPO=$R LONGBOX_CACHE_DIR=$T/cache-$delay
        init_repo "$R"
        rc=0
        # The braces' 2>/dev/null silences bash's "Killed" job message.
        { timeout -s KILL "$delay" "$LONGBOX" backup "$SRC" >/dev/null 2>&1 || rc=$?; } 2>/dev/null
        case $rc in
        0) echo "# backup finished before the kill at ${delay}s" ;;
        137) kills=$((kills + 1)) ;;
        *) fail "backup killed at ${delay}s exited $rc, expected 137 (killed) or 0" ;;
        esac
        expect_exit 0 lb check
        ok "kill -9 at ${delay}s: check passes"

        expect_exit 0 lb backup "$SRC"
        expect_exit 0 lb check
        expect_exit 0 lb restore latest --target "$T/restore"
        assert_same_tree "$SRC" "$T/restore$SRC"
        rm -rf "$T/restore"
        ok "kill -9 at ${delay}s: the next backup succeeds and restores byte-exact"
        rm -rf "$R" "$T/cache-$delay"
done
((kills > 0)) || fail "no backup was still running when killed: the test exercised nothing"
ok "$kills of 5 backups were killed mid-run"
