/* SPDX-License-Identifier: MIT */
/*
 * Test helper: makes a snapshot lie about one file, as a bug or a hostile
 * key holder could. Rewrites the trees from the file up to the root of
 * the latest snapshot with the file's recorded XXH3 changed (xxh3) or its
 * pg.rows metadata incremented (rows), saves that as a new snapshot and
 * removes the original. Every object stays properly sealed: only the
 * content checks of a restore (or drill) can find the lie.
 *
 * usage: lb-tamper REPO PASSPHRASE /PATH/IN/SNAPSHOT xxh3|rows
 */
#include <stdio.h>

#include "store/crypto.h"
#include "store/repo.h"

static int rewrite(LbRepo *r, LbWriter *w, const LbId *tree_id, char **parts, size_t n, const char *field, LbId *ret) {
        LbTree *t = NULL;
        int k = lb_repo_load_tree(r, tree_id, &t);
        if (k < 0)
                return k;
        LbNode *node = NULL;
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->nodes[i].name, parts[0]) == 0)
                        node = &t->nodes[i];
        if (!node) {
                lb_tree_free(t);
                return -ENOENT;
        }
        if (n == 1) {
                if (strcmp(field, "xxh3") == 0) {
                        if (!node->has_xxh3)
                                k = -ENODATA;
                        node->xxh3 ^= 1;
                } else {
                        k = -ENODATA;
                        for (size_t i = 0; i < node->n_meta; i++)
                                if (strcmp(node->meta[i].key, "pg.rows") == 0) {
                                        unsigned long long v = strtoull(node->meta[i].value, NULL, 10);
                                        free(node->meta[i].value);
                                        node->meta[i].value = lb_strdup_printf("%llu", v + 1);
                                        k = 0;
                                }
                }
        } else if (!node->has_subtree)
                k = -ENOTDIR;
        else
                k = rewrite(r, w, &node->subtree, parts + 1, n - 1, field, &node->subtree);
        LbBuf b = {};
        if (k == 0)
                k = lb_tree_encode(t, &b);
        if (k == 0)
                k = lb_writer_add(w, LB_BLOB_TREE, b.data, b.len, ret);
        lb_buf_free(&b);
        lb_tree_free(t);
        return k;
}

int main(int argc, char **argv) {
        if (argc != 5 || argv[3][0] != '/' || (strcmp(argv[4], "xxh3") != 0 && strcmp(argv[4], "rows") != 0)) {
                fprintf(stderr, "usage: lb-tamper REPO PASSPHRASE /PATH xxh3|rows\n");
                return 2;
        }
        if (lb_crypto_init() < 0)
                return 1;
        char *parts[64];
        size_t n = 0;
        char *path = strdup(argv[3]);
        for (char *s = strtok(path, "/"); s && n < 64; s = strtok(NULL, "/"))
                parts[n++] = s;
        LbRepo *r = NULL;
        LbWriter *w = NULL;
        LbSnapshot *s = NULL;
        int k = lb_repo_open(argv[1], NULL, argv[2], &r);
        if (k == 0)
                k = lb_repo_index_update(r);
        if (k == 0)
                k = lb_repo_snapshot_find(r, "latest", &s);
        if (k == 0)
                k = lb_writer_new(r, &w);
        LbId root;
        if (k == 0)
                k = rewrite(r, w, &s->tree, parts, n, argv[4], &root);
        if (k == 0)
                k = lb_writer_flush(w);
        LbId old = {}, new_id;
        if (k == 0) {
                old = s->id;
                s->tree = root;
                k = lb_repo_snapshot_save(r, s, &new_id);
        }
        if (k == 0)
                k = lb_repo_snapshot_remove(r, &old);
        lb_writer_free(w);
        lb_snapshot_free(s);
        lb_repo_free(r);
        free(path);
        if (k < 0) {
                fprintf(stderr, "lb-tamper: %s\n", strerror(-k));
                return 1;
        }
        return 0;
}
