#!/usr/bin/env bash
# Progress output: a line on a terminal (bytes, rate, ETA, current file),
# nothing when stderr is not a terminal, nothing at all with --quiet, and
# JSON status lines plus a summary with --json: for backup, restore, check
# --read-data, sync and prune's repacking (a database's backup and restore
# are in test_pg_ops.sh). The terminal is a pty from util-linux script(1).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v script >/dev/null || ! script -qfec true /dev/null >/dev/null 2>&1; then
        skip "script(1) from util-linux cannot give a pty here"
        exit 77
fi

# Updates every 10 ms instead of 200 ms, so even a fast machine shows some.
export LONGBOX_PROGRESS_FPS=100

# on_tty OUT CMD...: run CMD with stdin, stdout and stderr on a pty; what the
# terminal showed goes to OUT. Fails unless CMD exits 0.
on_tty() {
        local out=$1 cmd
        shift
        printf -v cmd '%q ' "$@"
        script -qfec "$cmd" /dev/null >"$out" </dev/null || fail "on a tty, exit $?: $*"
}

SRC=$T/src
mkdir -p "$SRC/sub"
head -c $((100 << 20)) /dev/urandom >"$SRC/sub/big.bin"
gen_text 3 200000 >"$SRC/small.txt"

# --- backup on a tty --------------------------------------------------------
init_repo "$T/r1"
on_tty "$T/tty.backup" "$LONGBOX" --repo "$T/r1" backup "$SRC"
python3 - "$T/tty.backup" <<'EOF' || fail "backup on a tty: no progress line with bytes, rate, ETA and the file"
import re, sys
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
lines = re.findall(r"\r\x1b\[Kbackup: ([^\r\n\x1b]*)", t)
assert lines, f"no progress line in {t[:500]!r}"
pat = re.compile(r"[\d.]+ (B|KiB|MiB|GiB) of 100\.\d+ MiB \(\d+%\), [\d.]+ (B|KiB|MiB|GiB)/s, ETA \S+.*  \S*(big\.bin|small\.txt)$")
good = [l for l in lines if pat.search(l)]
assert good, f"no line with 'X of 100 MiB (N%), R/s, ETA T  FILE': {lines[:5]}"
# The line is erased before the summary: the summary starts a line of its own.
assert re.search(r"\x1b\[Kfiles: +2 ", t), f"summary not after an erased line: {t[-400:]!r}"
EOF
ok "backup on a tty: '$(grep -ao 'backup: [^[:cntrl:]]*ETA[^[:cntrl:]]*' "$T/tty.backup" | head -n 1)'"

# --- restore on a tty -------------------------------------------------------
on_tty "$T/tty.restore" "$LONGBOX" --repo "$T/r1" restore latest --target "$T/out"
cmp "$SRC/sub/big.bin" "$T/out$SRC/sub/big.bin" || fail "restore on a tty: wrong content"
python3 - "$T/tty.restore" <<'EOF' || fail "restore on a tty: no progress line with bytes, rate, ETA"
import re, sys
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
lines = re.findall(r"\r\x1b\[Krestore: ([^\r\n\x1b]*)", t)
assert any(re.search(r" of 100\.\d+ MiB \(\d+%\), [\d.]+ \S+/s, ETA ", l) for l in lines), f"{lines[:5]} in {t[:300]!r}"
assert re.search(r"\x1b\[Krestored 2 files", t), f"summary not after an erased line: {t[-300:]!r}"
EOF
ok "restore on a tty: progress line with the total, rate and ETA"

# --- check --read-data and sync on a tty ----------------------------------------
on_tty "$T/tty.check" "$LONGBOX" --repo "$T/r1" check --read-data
grep -aq $'\r\e\\[Kcheck: \\[[0-9]*/[0-9]* packs\\] .* of .*/s, ETA' "$T/tty.check" ||
        fail "check --read-data on a tty: no progress line: $(head -c 300 "$T/tty.check" | cat -v)"
on_tty "$T/tty.sync" "$LONGBOX" --repo "$T/r1" sync --to "$T/copy"
grep -aq $'\r\e\\[Ksync: \\[[0-9]*/[0-9]* objects\\] .* of .*/s, ETA' "$T/tty.sync" ||
        fail "sync on a tty: no progress line: $(head -c 300 "$T/tty.sync" | cat -v)"
ok "check --read-data and sync on a tty: progress lines with packs/objects, rate and ETA"

# --- stdin: no total, so a rate and the name but no ETA -----------------------
init_repo "$T/r2"
on_tty "$T/tty.stdin" sh -c "cat '$SRC/sub/big.bin' | '$LONGBOX' --repo '$T/r2' backup --stdin-name dump.bin"
grep -aq $'\r\e\\[Kbackup: [0-9.]* [KMG]*i*B, [0-9.]* [KMG]*i*B/s, .*  /dump.bin' "$T/tty.stdin" ||
        fail "backup from a pipe on a tty: no line with bytes, rate and /dump.bin: $(head -c 300 "$T/tty.stdin" | cat -v)"
if grep -aq 'ETA' "$T/tty.stdin"; then fail "backup from a pipe shows an ETA without knowing the total"; fi
ok "backup of a pipe on a tty: bytes, rate and the name, no ETA"

# --- stderr not a tty: no progress ------------------------------------------------
init_repo "$T/r3"
on_tty "$T/tty.redirected" sh -c "'$LONGBOX' --repo '$T/r3' backup '$SRC' 2>'$T/err.redirected'"
[[ ! -s $T/err.redirected ]] || fail "progress written to stderr that is a file: $(head -c 300 "$T/err.redirected" | cat -v)"
if grep -aq -e 'ETA' -e $'\r\e\\[K' "$T/tty.redirected"; then
        fail "progress on stdout when stderr is a file: $(head -c 300 "$T/tty.redirected" | cat -v)"
fi
grep -aq 'snapshot .* saved' "$T/tty.redirected" || fail "no summary when stderr is a file"
echo x >>"$SRC/small.txt"
expect_exit 0 lb --repo "$T/r1" restore latest --target "$T/out2"
[[ ! -s $LB_ERR ]] || fail "restore without a tty wrote to stderr: $(head -c 300 "$LB_ERR" | cat -v)"
ok "no progress when stderr is not a tty; the summary is unchanged"

# --- --quiet: nothing at all -----------------------------------------------------
init_repo "$T/r4"
on_tty "$T/tty.quiet" "$LONGBOX" --repo "$T/r4" backup --quiet "$SRC"
[[ ! -s $T/tty.quiet ]] || fail "backup --quiet printed on the tty: $(head -c 300 "$T/tty.quiet" | cat -v)"
[[ $(lb --repo "$T/r4" snapshots --json | json 'len(d)') == 1 ]] || fail "backup --quiet recorded no snapshot"
expect_exit 0 lb --repo "$T/r4" -q restore latest --target "$T/out3"
[[ ! -s $LB_OUT && ! -s $LB_ERR ]] || fail "restore -q printed something"
ok "--quiet: a successful backup and restore print nothing, on a tty or not"

# --- --json: status lines and a summary --------------------------------------------
init_repo "$T/r5"
total=$(find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
expect_exit 0 lb --repo "$T/r5" backup --json "$SRC"
[[ ! -s $LB_ERR ]] || fail "backup --json wrote to stderr: $(head -c 300 "$LB_ERR")"
python3 - "$LB_OUT" "$total" <<'EOF' || fail "backup --json: status lines and summary not as expected"
import json, sys
total = int(sys.argv[2])
lines = open(sys.argv[1]).read().splitlines()
docs = [json.loads(l) for l in lines]          # every line is JSON
status = [d for d in docs if d["message_type"] == "status"]
assert status, f"no status line: {lines[:3]}"
for s in status:
    for k in ("percent_done", "bytes_done", "total_bytes", "current_files", "seconds_elapsed"):
        assert k in s, f"{k} missing in {s}"
    assert 0 <= s["percent_done"] <= 1, s
    assert s["total_bytes"] == total, s
    assert s["bytes_done"] <= s["total_bytes"], s
    assert isinstance(s["current_files"], list), s
assert any(f.endswith("big.bin") for s in status for f in s["current_files"]), status[:3]
dones = [s["bytes_done"] for s in status]
assert dones == sorted(dones), f"bytes_done goes backwards: {dones}"
assert docs[-1]["message_type"] == "summary", docs[-1]
assert len(docs) == len(status) + 1, "something else than status lines and one summary"
assert docs[-1]["total_bytes_processed"] == total, docs[-1]
assert len(docs[-1]["snapshot_id"]) == 64
print(f"# {len(status)} status lines, last: {json.dumps(status[-1])[:200]}")
EOF
ok "backup --json: status lines with percent_done, bytes_done, total_bytes, current_files; then the summary"

expect_exit 0 lb --repo "$T/r5" restore latest --json --target "$T/out4"
python3 - "$LB_OUT" "$total" <<'EOF' || fail "restore --json: status lines and summary not as expected"
import json, sys
total = int(sys.argv[2])
docs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
status = [d for d in docs if d["message_type"] == "status"]
assert status and all(s["total_bytes"] == total for s in status), docs[:3]
assert docs[-1]["message_type"] == "summary" and docs[-1]["files_restored"] == 2, docs[-1]
EOF
ok "restore --json: status lines and the summary"

# --- prune: repacking on a tty, without one, and with --json ---------------------------
# Day 2 rewrites every other 256 KiB block of day 1's file: once day 1 is
# forgotten, every pack of day 1 (1 MiB packs, 4 KiB chunks) is about half
# dead, in scattered places, so prune --max-unused 0 must repack them all.
mkdir -p "$T/pr"
gen_random 11 $((24 << 20)) >"$T/pr/f.bin"
init_repo "$T/p0" --pack-size 1 --chunk-avg 4K
expect_exit 0 lb --repo "$T/p0" backup --quiet "$T/pr"
python3 - "$T/pr/f.bin" <<'EOF'
import random, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
r, B = random.Random(12), 256 << 10
for i in range(1, len(b) // B, 2):
    b[i * B:(i + 1) * B] = r.randbytes(B)
open(p, "wb").write(b)
EOF
expect_exit 0 lb --repo "$T/p0" backup --quiet "$T/pr"
expect_exit 0 lb --repo "$T/p0" forget "$(lb --repo "$T/p0" snapshots --json | json 'd[0]["id"]')"
for n in 1 2 3; do cp -a "$T/p0" "$T/p$n"; done

# A 160-column terminal: on 80 columns the line has no room left for a pack's name.
on_tty "$T/tty.prune" sh -c "stty cols 160 && exec '$LONGBOX' --repo '$T/p1' --cache-dir '$T/cache-p1' prune --max-unused 0"
python3 - "$T/tty.prune" <<'EOF' || fail "prune on a tty: no repacking progress line with bytes, rate, ETA and the pack"
import re, sys
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
lines = re.findall(r"\r\x1b\[Kprune: ([^\r\n\x1b]*)", t)
pat = re.compile(r"^\[\d+/\d+ packs\] [\d.]+ (B|KiB|MiB) of [\d.]+ MiB \(\d+%\), [\d.]+ (B|KiB|MiB|GiB)/s, "
                 r"ETA \S+( s)?  [0-9a-f]{64}$")
good = [l for l in lines if pat.search(l)]
assert good, f"no line '[I/N packs] X of Y (N%), R/s, ETA T  PACK': {lines[:5]} in {t[:600]!r}"
m = re.search(r"repacked (\d+) into", t)
assert m and int(m.group(1)) >= 10, f"prune repacked too little to show progress: {t[-600:]!r}"
print(f"# {len(good)} progress lines, e.g. 'prune: {good[len(good) // 2]}'; {m.group(0)}")
EOF
expect_exit 0 lb --repo "$T/p1" --cache-dir "$T/cache-p1" check
ok "prune on a tty: a line with bytes of the total, rate, ETA and the pack being repacked"

expect_exit 0 lb --repo "$T/p2" --cache-dir "$T/cache-p2" prune --max-unused 0
grep -q 'repacked [1-9][0-9]* into' "$LB_OUT" || fail "prune without a tty repacked nothing: $(cat "$LB_OUT")"
if grep -aq -e 'ETA' -e $'\r' "$LB_ERR" "$LB_OUT"; then
        fail "prune wrote progress without a tty: $(head -c 300 "$LB_ERR" | cat -v)"
fi
ok "prune without a tty: no progress line, only its messages and the summary"

expect_exit 0 lb --repo "$T/p3" --cache-dir "$T/cache-p3" prune --max-unused 0 --json
[[ ! -s $LB_ERR ]] || fail "prune --json wrote to stderr: $(head -c 300 "$LB_ERR")"
python3 - "$LB_OUT" <<'EOF' || fail "prune --json: status lines and summary not as expected"
import json, re, sys
docs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
status = [d for d in docs if d["message_type"] == "status"]
assert status, f"no status line: {docs[:2]}"
for s in status:
    assert s["action"] == "prune", s
    assert 0 < s["total_bytes"] and s["bytes_done"] <= s["total_bytes"], s
    assert all(re.fullmatch(r"[0-9a-f]{64}", c) for c in s["current_files"]), s
    assert 0 <= s["files_done"] <= s["total_files"], s
dones = [s["bytes_done"] for s in status]
assert dones == sorted(dones), f"bytes_done goes backwards: {dones}"
assert docs[-1]["message_type"] == "summary" and docs[-1]["packs_repacked"] >= 10, docs[-1]
assert len(docs) == len(status) + 1, "something else than status lines and one summary"
print(f"# {len(status)} status lines, summary: packs_repacked {docs[-1]['packs_repacked']}")
EOF
ok "prune --json: status lines (bytes of the packs to repack, the pack) and the summary"
