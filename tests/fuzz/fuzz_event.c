/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: lb_event_decode on untrusted bytes. An accepted event must
 * encode, and its encoding decode and re-encode to the same bytes.
 */
#include <stdio.h>

#include "store/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
        fprintf(stderr, "fuzz-event: %s\n", what);
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        LbEvent *e = NULL, *e2 = NULL;
        LbBuf b1 = {}, b2 = {};
        int r = lb_event_decode(data, size, &e);
        if (r < 0) {
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -ENOMEM)
                        fail("unexpected error code");
                return 0;
        }
        for (size_t i = 0; i < e->n_meta; i++)
                if (!lb_event_meta(e, e->meta[i].key))
                        fail("lb_event_meta misses a key");
        if (lb_event_encode(e, &b1) < 0)
                fail("a decoded event does not encode");
        if (lb_event_decode(b1.data, b1.len, &e2) < 0)
                fail("an encoded event does not decode");
        if (lb_event_encode(e2, &b2) < 0 || b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
                fail("encoding is not deterministic");
        if (e->time_ns != e2->time_ns || strcmp(e->kind, e2->kind) != 0 || e->status != e2->status ||
            e->n_meta != e2->n_meta)
                fail("event changed in a round trip");
        lb_event_free(e);
        lb_event_free(e2);
        lb_buf_free(&b1);
        lb_buf_free(&b2);
        return 0;
}
