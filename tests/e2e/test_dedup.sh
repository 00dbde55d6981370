#!/usr/bin/env bash
# A few scattered byte changes in a big file cost a few chunks, not the file.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export LONGBOX_REPO=$T/repo
SRC=$T/src
SIZE=50000000
init_repo "$LONGBOX_REPO"
mkdir -p "$SRC"
gen_text 11 "$SIZE" >"$SRC/big.txt"

expect_exit 0 lb backup --json "$SRC"
added1=$(json 'd["data_added"]' <"$LB_OUT")
processed1=$(json 'd["total_bytes_processed"]' <"$LB_OUT")
[[ $processed1 == "$SIZE" ]] || fail "first backup: total_bytes_processed=$processed1, expected $SIZE"
((added1 > 0)) || fail "first backup: data_added=$added1"
# The text compresses about 3:1; stored bytes must show it.
((added1 < SIZE * 6 / 10)) || fail "first backup stored $added1 bytes for $SIZE bytes of text: no compression?"
ok "first backup: data_added=$added1 for $SIZE bytes"

# Change 5 bytes in 5 scattered places.
for off in 4999999 13000001 24000017 35500003 47000011; do
        printf 'Z' | dd of="$SRC/big.txt" bs=1 seek="$off" conv=notrunc status=none
done
expect_exit 0 lb backup --json "$SRC"
added2=$(json 'd["data_added"]' <"$LB_OUT")
((added2 * 100 < added1 * 5)) ||
        fail "second backup added $added2 bytes, not < 5% of the first backup's $added1"
ok "second backup after 5 scattered byte changes: data_added=$added2 (< 5% of $added1)"

lb dump latest "$SRC/big.txt" | cmp - "$SRC/big.txt" || fail "the modified file does not dump back byte-exact"
ok "the modified file dumps back byte-exact"

expect_exit 0 lb backup --json "$SRC"
added3=$(json 'd["data_added"]' <"$LB_OUT")
((added3 * 100 < added1)) || fail "an unchanged backup added $added3 bytes (>= 1% of $added1)"
ok "an unchanged backup adds almost nothing: data_added=$added3"

expect_exit 0 lb stats --json
python3 - "$LB_OUT" "$SIZE" "$added1" <<'EOF' || fail "stats --json does not show the dedup (see above)"
import json, sys
s = json.load(open(sys.argv[1]))
size = int(sys.argv[2])
compression = size / int(sys.argv[3])  # what the first backup got from zstd alone
print("# stats:", s)
assert s["snapshots_count"] == 3, "snapshots_count != 3"
assert s["chunk_count"] > 0, "chunk_count == 0"
assert s["total_size"] >= 3 * size, "total_size should count every snapshot's files"
assert s["total_stored_size"] < size, "total_stored_size should be less than one copy of the data"
ratio = s["total_size"] / s["total_stored_size"]
assert abs(s["dedup_ratio"] - ratio) <= 0.05 * ratio, \
    f"dedup_ratio {s['dedup_ratio']} is not total_size/total_stored_size ({ratio:.2f})"
assert s["dedup_ratio"] > 2.5 * compression, \
    f"three near-identical snapshots should give > 2.5 x the compression ratio ({compression:.2f})"
EOF
ok "stats --json: 3 snapshots, stored size below one copy, dedup_ratio consistent"
