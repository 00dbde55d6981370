/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: lb_snapshot_decode on untrusted bytes. An accepted snapshot
 * must encode, decode again to the same struct and re-encode to the same
 * bytes.
 */
#include <stdio.h>

#include "store/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_eq(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static bool strv_eq(char **a, size_t na, char **b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!str_eq(a[i], b[i]))
                        return false;
        return true;
}

static bool snap_eq(const LbSnapshot *a, const LbSnapshot *b) {
        if (a->time_ns != b->time_ns || a->tz_offset != b->tz_offset || !str_eq(a->hostname, b->hostname) ||
            !str_eq(a->username, b->username) || !strv_eq(a->tags, a->n_tags, b->tags, b->n_tags) ||
            !strv_eq(a->paths, a->n_paths, b->paths, b->n_paths) || memcmp(&a->tree, &b->tree, LB_ID_SIZE) != 0 ||
            !str_eq(a->source, b->source) || !str_eq(a->program, b->program) || a->has_parent != b->has_parent ||
            memcmp(&a->parent, &b->parent, LB_ID_SIZE) != 0 || memcmp(&a->id, &b->id, LB_ID_SIZE) != 0 ||
            memcmp(&a->stats, &b->stats, sizeof a->stats) != 0 || a->n_meta != b->n_meta)
                return false;
        for (size_t i = 0; i < a->n_meta; i++)
                if (!str_eq(a->meta[i].key, b->meta[i].key) || !str_eq(a->meta[i].value, b->meta[i].value))
                        return false;
        return true;
}

static void fail(const char *what) {
        fprintf(stderr, "fuzz-snapshot: %s\n", what);
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        LbSnapshot *s = NULL, *s2 = NULL;
        LbBuf b1 = {}, b2 = {};
        int r = lb_snapshot_decode(data, size, &s);
        if (r < 0) {
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -ENOMEM)
                        fail("unexpected error code");
                return 0;
        }
        for (size_t i = 0; i < s->n_meta; i++)
                if (!lb_snapshot_meta(s, s->meta[i].key))
                        fail("lb_snapshot_meta misses a key");
        if (lb_snapshot_encode(s, &b1) < 0)
                fail("a decoded snapshot does not encode");
        if (lb_snapshot_decode(b1.data, b1.len, &s2) < 0)
                fail("an encoded snapshot does not decode");
        if (!snap_eq(s, s2))
                fail("snapshot changed in a round trip");
        if (lb_snapshot_encode(s2, &b2) < 0 || b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
                fail("encoding is not deterministic");
        lb_snapshot_free(s);
        lb_snapshot_free(s2);
        lb_buf_free(&b1);
        lb_buf_free(&b2);
        return 0;
}
