/* SPDX-License-Identifier: MIT */
/*
 * Read hints: the blobs a reader will fetch next, as byte ranges per pack
 * for the backend (LbBackend.hint). Blobs lie in random order inside
 * their pack, so a sequential file read is a run of small random reads;
 * announcing a window of them lets a local disk serve them in parallel
 * instead of one at a time, without reading the rest of the pack.
 */
#include "store/repo.h"

typedef struct HintLoc {
        LbId pack;
        LbRange range;
} HintLoc;

static int loc_cmp(const void *a, const void *b) {
        const HintLoc *x = a, *y = b;
        int c = lb_id_cmp(&x->pack, &y->pack);
        if (c != 0)
                return c;
        return x->range.off < y->range.off ? -1 : x->range.off > y->range.off;
}

int lb_repo_hint_blobs(LbRepo *r, const LbId *ids, size_t n) {
        if (!r->be->hint || n == 0)
                return 0;
        _cleanup_free_ HintLoc *locs = calloc(n, sizeof *locs);
        _cleanup_free_ LbRange *ranges = calloc(n, sizeof *ranges);
        if (!locs || !ranges)
                return -ENOMEM;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
                LbBlobLoc l;
                if (lb_repo_lookup(r, &ids[i], &l) < 0)
                        continue;   /* the read reports it */
                locs[m++] = (HintLoc) { .pack = l.pack, .range = { .off = l.e.offset, .len = l.e.stored_len } };
        }
        lb_qsort(locs, m, sizeof *locs, loc_cmp);
        for (size_t i = 0, j; i < m; i = j) {
                size_t k = 0;
                for (j = i; j < m && lb_id_cmp(&locs[j].pack, &locs[i].pack) == 0; j++)
                        ranges[k++] = locs[j].range;
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&locs[i].pack, hex);
                (void) r->be->hint(r->be, LB_OBJ_PACK, hex, ranges, k);
        }
        return 0;
}
