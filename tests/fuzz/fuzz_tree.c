/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: lb_tree_decode on untrusted bytes. An accepted tree must
 * encode (encoder and decoder share one validator), decode again to the
 * same struct, and re-encode to the same bytes (the encoding is
 * deterministic); every entry must be found by name.
 */
#include <stdio.h>

#include "store/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_eq(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static bool node_eq(const LbNode *a, const LbNode *b) {
        if (!str_eq(a->name, b->name) || a->type != b->type || a->mode != b->mode || a->uid != b->uid ||
            a->gid != b->gid || !str_eq(a->user, b->user) || !str_eq(a->group, b->group) ||
            a->size != b->size || a->mtime_ns != b->mtime_ns || a->rdev != b->rdev || !str_eq(a->link, b->link) ||
            a->has_subtree != b->has_subtree || a->indirect != b->indirect || a->n_content != b->n_content ||
            a->has_xxh3 != b->has_xxh3 || a->xxh3 != b->xxh3 || a->n_meta != b->n_meta)
                return false;
        if (a->has_subtree && memcmp(&a->subtree, &b->subtree, sizeof a->subtree) != 0)
                return false;
        for (size_t i = 0; i < a->n_content; i++)
                if (memcmp(&a->content[i].id, &b->content[i].id, LB_ID_SIZE) != 0 ||
                    a->content[i].size != b->content[i].size)
                        return false;
        for (size_t i = 0; i < a->n_meta; i++)
                if (!str_eq(a->meta[i].key, b->meta[i].key) || !str_eq(a->meta[i].value, b->meta[i].value))
                        return false;
        return true;
}

static void fail(const char *what) {
        fprintf(stderr, "fuzz-tree: %s\n", what);
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        LbTree *t = NULL, *t2 = NULL;
        LbBuf b1 = {}, b2 = {};
        int r = lb_tree_decode(data, size, &t);
        if (r < 0) {
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -ENOMEM)
                        fail("unexpected error code");
                return 0;
        }
        for (size_t i = 0; i < t->n; i++)
                if (lb_tree_find(t, t->nodes[i].name) != &t->nodes[i])
                        fail("lb_tree_find misses an entry");
        if (lb_tree_encode(t, &b1) < 0)
                fail("a decoded tree does not encode");
        if (lb_tree_decode(b1.data, b1.len, &t2) < 0)
                fail("an encoded tree does not decode");
        if (t->n != t2->n)
                fail("entry count changed");
        for (size_t i = 0; i < t->n; i++)
                if (!node_eq(&t->nodes[i], &t2->nodes[i]))
                        fail("entry changed in a round trip");
        if (lb_tree_encode(t2, &b2) < 0 || b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
                fail("encoding is not deterministic");
        lb_tree_free(t);
        lb_tree_free(t2);
        lb_buf_free(&b1);
        lb_buf_free(&b2);
        return 0;
}
