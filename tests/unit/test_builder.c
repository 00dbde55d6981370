/* SPDX-License-Identifier: MIT */
/* The snapshot builder: concurrent producers, implicit parents, checksums,
 * read back through the walker. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <xxhash.h>

#include "store/builder.h"
#include "store/tree.h"
#include "store/walk.h"
#include "tests.h"

static char tmpl[] = "/tmp/lb-test-builder-XXXXXX";

typedef struct Producer {
        LbBuilder *b;
        const char *path;
        uint64_t seed;
        size_t size;
        int result;
} Producer;

static void fill(uint8_t *p, size_t n, uint64_t seed) {
        for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                /* Text-like bytes so zstd has something to do. */
                p[i] = (uint8_t) ('a' + (seed >> 60));
        }
}

static void *produce(void *userdata) {
        Producer *pr = userdata;
        uint8_t *data = malloc(pr->size);
        fill(data, pr->size, pr->seed);
        LbBuilderFile *f;
        pr->result = lb_builder_file_open(pr->b, pr->path, NULL, &f);
        /* Odd write sizes, so chunk cuts cross write boundaries. */
        for (size_t off = 0; pr->result == 0 && off < pr->size;) {
                size_t n = LB_MIN(pr->size - off, (size_t) 7777 + off % 5000);
                pr->result = lb_builder_file_write(f, data + off, n);
                off += n;
        }
        LbMeta meta[] = { { (char *) "rows", (char *) "42" } };
        if (pr->result == 0)
                pr->result = lb_builder_file_close(f, meta, 1);
        free(data);
        return NULL;
}

typedef struct Sink {
        uint8_t *p;
        size_t len;
} Sink;

static int collect(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        Sink *s = userdata;
        if (offset != s->len)
                return -EINVAL;
        s->p = realloc(s->p, s->len + n);
        memcpy(s->p + s->len, p, n);
        s->len += n;
        return 0;
}

TEST(test_concurrent_files) {
        char *base = mkdtemp(tmpl);
        CHECK(base);
        _cleanup_free_ char *loc = lb_path_join(base, "repo");
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        CHECK_OK(lb_repo_index_update(r));
        LbBuilder *b;
        CHECK_OK(lb_builder_new(r, &b));
        Producer pr[] = {
                { b, "/shop/data/public.orders", 1, 3u << 20, 0 },
                { b, "/shop/data/public.customers", 2, 700000, 0 },
                { b, "/shop/data/public.empty", 3, 0, 0 },
        };
        pthread_t t[LB_ARRAY_SIZE(pr)];
        for (size_t i = 0; i < LB_ARRAY_SIZE(pr); i++)
                CHECK(pthread_create(&t[i], NULL, produce, &pr[i]) == 0);
        for (size_t i = 0; i < LB_ARRAY_SIZE(pr); i++) {
                pthread_join(t[i], NULL);
                CHECK_OK(pr[i].result);
        }
        /* Directory metadata after an implicit creation; a clash. */
        LbNode dir = { .type = LB_NODE_DIR, .mode = 0700, .mtime_ns = 123 };
        CHECK_OK(lb_builder_add_node(b, "/shop", &dir));
        LbNode link = { .type = LB_NODE_SYMLINK, .mode = 0777, .link = (char *) "data/public.orders" };
        CHECK_OK(lb_builder_add_node(b, "/shop/latest", &link));
        CHECK(lb_builder_add_node(b, "/shop/latest", &link) == -EEXIST);
        CHECK(lb_builder_add_node(b, "relative", &link) == -EINVAL);
        CHECK(lb_builder_add_node(b, "/shop/../x", &link) == -EINVAL);
        LbBuilderFile *f;
        CHECK_OK(lb_builder_file_open(b, "/shop/latest/x", NULL, &f));
        CHECK(lb_builder_file_close(f, NULL, 0) == -ENOTDIR);
        CHECK_OK(lb_builder_file_open(b, "/dropped", NULL, &f));
        CHECK_OK(lb_builder_file_write(f, "abc", 3));
        lb_builder_file_abort(f);

        LbSnapshot tmpl_snap = { .hostname = (char *) "h", .source = (char *) "test" };
        LbId id;
        LbSnapshotStats st;
        CHECK_OK(lb_builder_commit(b, &tmpl_snap, &id, &st, NULL));
        CHECK(st.files == 3);
        CHECK(st.bytes_read == (3u << 20) + 700000);

        LbSnapshot *s;
        CHECK_OK(lb_repo_snapshot_load(r, &id, &s));
        for (size_t i = 0; i < LB_ARRAY_SIZE(pr); i++) {
                LbNode n;
                CHECK_OK(lb_snapshot_lookup_path(r, s, pr[i].path, &n));
                CHECK(n.size == pr[i].size && n.has_xxh3);
                CHECK(n.n_meta == 1 && strcmp(n.meta[0].key, "rows") == 0 && strcmp(n.meta[0].value, "42") == 0);
                Sink sink = {};
                CHECK_OK(lb_content_foreach(r, &n, collect, &sink));
                uint8_t *want = malloc(pr[i].size + 1);
                fill(want, pr[i].size, pr[i].seed);
                CHECK(sink.len == pr[i].size && (pr[i].size == 0 || memcmp(sink.p, want, sink.len) == 0));
                CHECK(n.xxh3 == XXH3_64bits(want, pr[i].size));
                free(want);
                free(sink.p);
                lb_node_clear(&n);
        }
        LbNode n;
        CHECK_OK(lb_snapshot_lookup_path(r, s, "/shop", &n));
        CHECK(n.type == LB_NODE_DIR && n.mode == 0700 && n.mtime_ns == 123);
        lb_node_clear(&n);
        CHECK_OK(lb_snapshot_lookup_path(r, s, "/shop/latest", &n));
        CHECK(n.type == LB_NODE_SYMLINK && strcmp(n.link, "data/public.orders") == 0);
        lb_node_clear(&n);
        CHECK(lb_snapshot_lookup_path(r, s, "/dropped", &n) == -ENOENT);
        lb_snapshot_free(s);
        lb_repo_free(r);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
}

static int write_file(LbBuilder *b, const char *path, const char *content, int64_t mtime) {
        LbNode t = { .mode = 0600, .mtime_ns = mtime };
        LbBuilderFile *f;
        int k = lb_builder_file_open(b, path, &t, &f);
        if (k < 0)
                return k;
        k = lb_builder_file_write(f, content, strlen(content));
        if (k < 0) {
                lb_builder_file_abort(f);
                return k;
        }
        return lb_builder_file_close(f, NULL, 0);
}

TEST(test_parent) {
        char t2[] = "/tmp/lb-test-builder2-XXXXXX";
        char *base = mkdtemp(t2);
        CHECK(base);
        _cleanup_free_ char *loc = lb_path_join(base, "repo");
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        CHECK_OK(lb_repo_index_update(r));

        LbBuilder *b;
        LbId first, second;
        LbChangeCounts c;
        CHECK_OK(lb_builder_new(r, &b));
        CHECK_OK(write_file(b, "/db/data/a", "same rows\n", 1000));
        CHECK_OK(write_file(b, "/db/data/b", "old rows\n", 1000));
        CHECK_OK(write_file(b, "/db/other/c", "stays\n", 1000));
        LbSnapshot s = { .time_ns = 1000 };
        CHECK_OK(lb_builder_commit(b, &s, &first, NULL, &c));
        CHECK(c.files_new == 3 && c.files_unmodified == 0 && c.dirs_new == 3);

        CHECK_OK(lb_builder_new(r, &b));
        CHECK_OK(write_file(b, "/db/data/a", "same rows\n", 2000));
        CHECK_OK(write_file(b, "/db/data/b", "new rows\n", 2000));
        CHECK_OK(write_file(b, "/db/other/c", "stays\n", 2000));
        CHECK_OK(write_file(b, "/db/data/d", "a new table\n", 2000));
        s = (LbSnapshot) { .time_ns = 2000, .has_parent = true, .parent = first };
        CHECK_OK(lb_builder_commit(b, &s, &second, NULL, &c));
        CHECK_EQ_INT(c.files_new, 1);
        CHECK_EQ_INT(c.files_changed, 1);
        CHECK_EQ_INT(c.files_unmodified, 2);
        CHECK_EQ_INT(c.dirs_unmodified, 1); /* /db/other */
        CHECK_EQ_INT(c.dirs_changed, 2);    /* /db, /db/data */

        LbSnapshot *snap;
        CHECK_OK(lb_repo_snapshot_load(r, &second, &snap));
        struct { const char *path; int64_t mtime; } want[] = {
                { "/db/data/a", 1000 },   /* unchanged content keeps its time */
                { "/db/data/b", 2000 },
                { "/db/data/d", 2000 },
                { "/db/other/c", 1000 },
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(want); i++) {
                LbNode n;
                CHECK_OK(lb_snapshot_lookup_path(r, snap, want[i].path, &n));
                CHECK_EQ_INT(n.mtime_ns, want[i].mtime);
                lb_node_clear(&n);
        }
        /* An unchanged implicit directory keeps its parent's tree: same id. */
        LbSnapshot *old;
        CHECK_OK(lb_repo_snapshot_load(r, &first, &old));
        LbNode x, y;
        CHECK_OK(lb_snapshot_lookup_path(r, old, "/db/other", &x));
        CHECK_OK(lb_snapshot_lookup_path(r, snap, "/db/other", &y));
        CHECK(lb_id_cmp(&x.subtree, &y.subtree) == 0 && x.mtime_ns == y.mtime_ns);
        lb_node_clear(&x);
        lb_node_clear(&y);
        lb_snapshot_free(old);
        lb_snapshot_free(snap);
        lb_repo_free(r);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
}

/* ---- deltas against the previous version -------------------------------- */

/* A table dump: rows "id<TAB>issue<TAB>quantity\n"; night n changes the
 * quantity of about one row in twenty, as a shop's inventory does. */
static size_t table_night(char *out, size_t cap, unsigned rows, unsigned night) {
        size_t at = 0;
        for (unsigned id = 1; id <= rows; id++) {
                uint64_t h = id * 0x9e3779b97f4a7c15ull;
                unsigned qty = (unsigned) (h >> 40) % 50;
                for (unsigned d = 1; d <= night; d++)
                        if (((h >> 8) + d * 7919u) % 20 == 0)
                                qty += d;
                int n = snprintf(out + at, cap - at, "%u\t%u\t%u\n", id, (unsigned) (h >> 20) % 100000, qty);
                CHECK(n > 0 && (size_t) n < cap - at);
                at += (size_t) n;
        }
        return at;
}

typedef struct Collect {
        LbBuf b;
} Collect;

static int collect_bytes(const uint8_t *p, size_t n, uint64_t offset, void *ud) {
        Collect *c = ud;
        CHECK(offset == c->b.len);
        return lb_buf_append(&c->b, p, n);
}

/* Counts the file's chunks stored as deltas; checks every delta's base is
 * a chunk stored whole. */
static size_t count_deltas(LbRepo *r, const LbNode *n) {
        size_t deltas = 0;
        for (size_t i = 0; i < n->n_content; i++) {
                _cleanup_buf_ LbBuf b = {};
                LbContentRef *refs = NULL;
                size_t nr = 0;
                CHECK(n->indirect);
                CHECK_OK(lb_repo_read_blob(r, &n->content[i].id, &b));
                CHECK_OK(lb_chunklist_decode(b.data, b.len, &refs, &nr));
                for (size_t j = 0; j < nr; j++) {
                        LbBlobLoc l, bl;
                        CHECK_OK(lb_repo_lookup(r, &refs[j].id, &l));
                        if (l.e.codec != LB_CODEC_DELTA)
                                continue;
                        deltas++;
                        CHECK_OK(lb_repo_lookup(r, &l.e.base, &bl));
                        CHECK(bl.e.codec != LB_CODEC_DELTA && bl.e.type == LB_BLOB_DATA);
                }
                free(refs);
        }
        return deltas;
}

TEST(test_deltas) {
        char t2[] = "/tmp/lb-test-builder3-XXXXXX";
        char *base = mkdtemp(t2);
        CHECK(base);
        _cleanup_free_ char *loc = lb_path_join(base, "repo");
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        CHECK_OK(lb_repo_index_update(r));

        size_t cap = 8u << 20;
        _cleanup_free_ char *table = malloc(cap);
        CHECK(table);
        LbSnapshotStats st[3];
        LbId ids[3];
        for (unsigned night = 0; night < 3; night++) {
                size_t len = table_night(table, cap, 200000, night);
                LbBuilder *b;
                LbBuilderFile *f;
                CHECK_OK(lb_builder_new(r, &b));
                CHECK_OK(lb_builder_file_open(b, "/db/data/public.inventory", NULL, &f));
                if (night > 0) {
                        LbSnapshot *prev;
                        LbNode pn;
                        CHECK_OK(lb_repo_snapshot_load(r, &ids[night - 1], &prev));
                        CHECK_OK(lb_snapshot_lookup_path(r, prev, "/db/data/public.inventory", &pn));
                        CHECK_OK(lb_builder_file_set_prev(f, &pn));
                        lb_node_clear(&pn);
                        lb_snapshot_free(prev);
                }
                CHECK_OK(lb_builder_file_write(f, table, len));
                CHECK_OK(lb_builder_file_close(f, NULL, 0));
                LbSnapshot s = { .time_ns = 1000 + night };
                CHECK_OK(lb_builder_commit(b, &s, &ids[night], &st[night], NULL));

                /* every night reads back exactly */
                LbSnapshot *snap;
                LbNode n;
                CHECK_OK(lb_repo_snapshot_load(r, &ids[night], &snap));
                CHECK_OK(lb_snapshot_lookup_path(r, snap, "/db/data/public.inventory", &n));
                Collect c = {};
                CHECK_OK(lb_content_foreach(r, &n, collect_bytes, &c));
                CHECK(c.b.len == len && memcmp(c.b.data, table, len) == 0);
                lb_buf_free(&c.b);
                size_t deltas = count_deltas(r, &n);
                fprintf(stderr, "night %u: %zu bytes, %" PRIu64 " chunks, %" PRIu64 " new, %zu deltas, %" PRIu64
                        " bytes stored\n", night, len, st[night].chunks, st[night].chunks_new, deltas,
                        st[night].bytes_stored);
                if (night == 0)
                        CHECK(deltas == 0);
                else {
                        /* nearly every chunk has a changed row, and most become deltas */
                        CHECK(st[night].chunks_new * 10 > st[night].chunks * 9);
                        CHECK(deltas * 10 > st[night].chunks_new * 8);
                        CHECK(st[night].bytes_stored * 3 < st[0].bytes_stored);
                }
                lb_node_clear(&n);
                lb_snapshot_free(snap);
        }
        lb_repo_free(r);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
}

int main(void) {
        CHECK_OK(lb_crypto_init());
        RUN(test_concurrent_files);
        RUN(test_parent);
        RUN(test_deltas);
        return 0;
}
