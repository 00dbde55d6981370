/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: lb_chunklist_decode on untrusted bytes. The format has no
 * slack: an accepted list must encode back to exactly the input. Also runs
 * the split rule over the ids (it must hold for every list length).
 */
#include <stdio.h>

#include "store/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
        fprintf(stderr, "fuzz-chunklist: %s\n", what);
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        LbContentRef *refs = NULL;
        size_t n = 0;
        int r = lb_chunklist_decode(data, size, &refs, &n);
        if (r < 0) {
                if (r != -EBADMSG && r != -ENOMEM)
                        fail("unexpected error code");
                return 0;
        }
        if (n == 0 || n > LB_CHUNKLIST_MAX_ENTRIES)
                fail("count out of range");
        LbBuf b = {};
        if (lb_chunklist_encode(refs, n, &b) < 0)
                fail("a decoded list does not encode");
        if (b.len != size || memcmp(b.data, data, size) != 0)
                fail("re-encoding differs from the input");
        size_t cur = 0;
        for (size_t i = 0; i < n; i++) {
                if (refs[i].size == 0 || refs[i].size > LB_CHUNK_MAX_LIMIT)
                        fail("chunk size out of range");
                cur++;
                if (lb_chunklist_is_boundary(&refs[i].id, cur))
                        cur = 0;
                else if (cur >= 4096)
                        fail("split rule lets a list exceed 4096 entries");
        }
        lb_buf_free(&b);
        free(refs);
        return 0;
}
