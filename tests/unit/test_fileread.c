/* SPDX-License-Identifier: MIT */
/* Random-access reads (store/fileread.h) through the chunk cache
 * (store/chunkcache.h), against a real repository in a temp dir: inline
 * and indirect (several chunk lists) files, reads at every kind of
 * boundary, past the end, of an empty file, from several threads at once,
 * with read-ahead, a tiny cache (eviction), and missing or damaged blobs. */
#include <pthread.h>
#include <stdio.h>

#include "store/fileread.h"
#include "store/repo.h"
#include "tests.h"

static char tmpl[] = "/tmp/lb-test-fileread-XXXXXX";
static LbRepo *repo;

/* Deterministic bytes. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

typedef struct File {
        LbNode node;
        uint8_t *data;
        size_t size;
} File;

/* A file of n_chunks chunks of 1..max_chunk bytes; with repeat, every
 * other chunk repeats an earlier one (deduplicated blobs). */
static void make_file(File *f, size_t n_chunks, size_t max_chunk) {
        LbWriter *w = NULL;
        CHECK_OK(lb_writer_new(repo, &w));
        LbContentRef *refs = calloc(n_chunks ? n_chunks : 1, sizeof *refs);
        CHECK(refs);
        f->data = malloc(n_chunks * max_chunk + 1);
        CHECK(f->data);
        f->size = 0;
        for (size_t i = 0; i < n_chunks; i++) {
                size_t len = 1 + (size_t) (rnd() % max_chunk);
                uint8_t *p = f->data + f->size;
                if (i % 7 == 3 && i > 10) {
                        /* Same content as chunk i - 5: the same blob twice in one file. */
                        len = (size_t) refs[i - 5].size;
                        uint64_t at = 0;
                        for (size_t j = 0; j < i - 5; j++)
                                at += refs[j].size;
                        memmove(p, f->data + at, len);
                } else {
                        for (size_t j = 0; j < len; j++)
                                p[j] = (uint8_t) rnd();
                }
                CHECK_OK(lb_writer_add(w, LB_BLOB_DATA, p, len, &refs[i].id));
                refs[i].size = len;
                f->size += len;
        }
        f->node = (LbNode) { .type = LB_NODE_FILE, .mode = 0644 };
        f->node.name = strdup("f");
        if (n_chunks > 0)
                CHECK_OK(lb_writer_set_content(w, &f->node, refs, n_chunks));
        else
                free(refs);
        CHECK_EQ_INT(f->node.size, f->size);
        CHECK_OK(lb_writer_flush(w));
        lb_writer_free(w);
        CHECK_OK(lb_repo_index_update(repo));
}

static void free_file(File *f) {
        lb_node_clear(&f->node);
        free(f->data);
}

static void check_read(LbFileReader *r, const File *f, uint64_t off, size_t len) {
        uint8_t *buf = malloc(len + 1);
        CHECK(buf);
        size_t n = 12345;
        LbContentFailure fail = {};
        CHECK_OK(lb_file_reader_read(r, off, buf, len, &n, &fail));
        size_t want = off >= f->size ? 0 : (size_t) LB_MIN((uint64_t) len, f->size - off);
        if (n != want)
                fprintf(stderr, "read at %" PRIu64 " len %zu: got %zu bytes, want %zu\n", off, len, n, want);
        CHECK_EQ_INT(n, want);
        CHECK(n == 0 || memcmp(buf, f->data + off, n) == 0);
        free(buf);
}

static void random_reads(LbFileReader *r, const File *f, unsigned count) {
        for (unsigned i = 0; i < count; i++) {
                uint64_t off = rnd() % (f->size + 100);
                size_t len = (size_t) (rnd() % (i % 3 == 0 ? 300000 : 20000));
                check_read(r, f, off, len);
        }
}

TEST(test_inline) {
        File f;
        make_file(&f, 40, 5000);
        CHECK(!f.node.indirect);
        LbChunkCache *c = NULL;
        CHECK_OK(lb_chunk_cache_new(repo, 1 << 20, 0, &c));
        LbFileReader *r = NULL;
        CHECK_OK(lb_file_reader_new(c, &f.node, &r));
        /* Every chunk boundary, one byte either side, and across it. */
        uint64_t at = 0;
        for (size_t i = 0; i < f.node.n_content; i++) {
                at += f.node.content[i].size;
                if (at >= 1)
                        check_read(r, &f, at - 1, 2);
                check_read(r, &f, at, 1);
                if (at >= 3)
                        check_read(r, &f, at - 3, 10000);
        }
        check_read(r, &f, 0, f.size);           /* the whole file */
        check_read(r, &f, 0, f.size + 4096);    /* more than the whole file */
        check_read(r, &f, f.size - 1, 100);     /* the last byte */
        check_read(r, &f, f.size, 100);         /* at the end */
        check_read(r, &f, f.size + 1000, 100);  /* past the end */
        check_read(r, &f, UINT64_MAX - 10, 100);
        check_read(r, &f, 5, 0);                /* zero length */
        random_reads(r, &f, 300);
        lb_file_reader_free(r);
        lb_chunk_cache_free(c);
        free_file(&f);
}

TEST(test_empty) {
        File f;
        make_file(&f, 0, 1);
        LbChunkCache *c = NULL;
        CHECK_OK(lb_chunk_cache_new(repo, 1 << 20, 1, &c));
        LbFileReader *r = NULL;
        CHECK_OK(lb_file_reader_new(c, &f.node, &r));
        check_read(r, &f, 0, 100);
        check_read(r, &f, 1, 100);
        lb_file_reader_free(r);
        lb_chunk_cache_free(c);
        free_file(&f);
}

typedef struct ThreadArg {
        LbFileReader *r;
        const File *f;
        uint64_t seed;
        bool sequential;
} ThreadArg;

static void *reader_thread(void *userdata) {
        ThreadArg *a = userdata;
        uint64_t s = a->seed;
        size_t bufsz = 1 << 17;
        uint8_t *buf = malloc(bufsz);
        CHECK(buf);
        for (unsigned i = 0; i < 400; i++) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                uint64_t off = a->sequential ? (uint64_t) i * bufsz % (a->f->size + 1) : s % a->f->size;
                size_t len = a->sequential ? bufsz : (size_t) (s >> 40) % bufsz;
                size_t n;
                CHECK_OK(lb_file_reader_read(a->r, off, buf, len, &n, NULL));
                CHECK(n == (size_t) LB_MIN((uint64_t) len, a->f->size - off));
                CHECK(memcmp(buf, a->f->data + off, n) == 0);
        }
        free(buf);
        return NULL;
}

TEST(test_indirect_threads) {
        /* ~9000 chunks: more than 64, so chunk lists; several lists (a
         * list ends after ~1024 entries on average). */
        File f;
        make_file(&f, 9000, 3000);
        CHECK(f.node.indirect);
        CHECK(f.node.n_content >= 2);
        printf("# %zu bytes in %zu chunk lists\n", f.size, f.node.n_content);

        /* A cache much smaller than the file: reads evict constantly. */
        LbChunkCache *c = NULL;
        CHECK_OK(lb_chunk_cache_new(repo, 256 << 10, 2, &c));
        LbFileReader *r = NULL;
        CHECK_OK(lb_file_reader_new(c, &f.node, &r));
        lb_file_reader_set_readahead(r, 1 << 20);
        /* List boundaries, and reads spanning them. */
        uint64_t at = 0;
        for (size_t i = 0; i + 1 < f.node.n_content; i++) {
                at += f.node.content[i].size;
                check_read(r, &f, at - 1, 2);
                check_read(r, &f, at - 5000, 10000);
        }
        random_reads(r, &f, 300);
        check_read(r, &f, 0, f.size);

        pthread_t t[6];
        ThreadArg a[6];
        for (unsigned i = 0; i < 6; i++) {
                a[i] = (ThreadArg) { .r = r, .f = &f, .seed = 0x1234567ull * (i + 1), .sequential = i % 2 == 0 };
                CHECK(pthread_create(&t[i], NULL, reader_thread, &a[i]) == 0);
        }
        for (unsigned i = 0; i < 6; i++)
                pthread_join(t[i], NULL);

        LbChunkCacheStats st;
        lb_chunk_cache_stats(c, &st);
        printf("# cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " reads, %" PRIu64 " prefetched, %" PRIu64
               " evictions, %" PRIu64 " bytes held\n",
               st.hits, st.misses, st.reads, st.prefetched, st.evictions, st.bytes);
        CHECK(st.evictions > 0);
        CHECK(st.prefetched > 0);
        CHECK(st.bytes <= 256 << 10);
        lb_file_reader_free(r);
        lb_chunk_cache_free(c);
        free_file(&f);
}

TEST(test_missing_and_bad) {
        File f;
        make_file(&f, 30, 2000);
        LbChunkCache *c = NULL;
        CHECK_OK(lb_chunk_cache_new(repo, 1 << 20, 0, &c));

        /* A chunk the index does not know: -ENOENT, and the failure names it. */
        LbNode bad = {};
        CHECK_OK(lb_node_copy(&f.node, &bad));
        bad.content[10].id.b[0] ^= 0xff;
        LbFileReader *r = NULL;
        CHECK_OK(lb_file_reader_new(c, &bad, &r));
        uint64_t at = 0;
        for (size_t i = 0; i < 10; i++)
                at += bad.content[i].size;
        uint8_t buf[4096];
        size_t n;
        check_read(r, &f, 0, (size_t) at);    /* the chunks before it still read */
        LbContentFailure fail = {};
        CHECK(lb_file_reader_read(r, at > 10 ? at - 10 : 0, buf, 20, &n, &fail) == -ENOENT);
        CHECK(fail.has_id && !fail.is_list && fail.offset == at);
        CHECK(memcmp(fail.id.b, bad.content[10].id.b, LB_ID_SIZE) == 0);
        lb_file_reader_free(r);

        /* A chunk whose recorded size differs from its blob: -EBADMSG. */
        lb_node_clear(&bad);
        CHECK_OK(lb_node_copy(&f.node, &bad));
        bad.content[3].size += 1;
        bad.content[4].size -= 1;
        CHECK_OK(lb_file_reader_new(c, &bad, &r));
        fail = (LbContentFailure) {};
        CHECK(lb_file_reader_read(r, 0, buf, sizeof buf, &n, &fail) == -EBADMSG ||
              lb_file_reader_read(r, bad.content[0].size + bad.content[1].size + bad.content[2].size, buf, 1, &n,
                                  &fail) == -EBADMSG);
        CHECK(fail.has_id && memcmp(fail.id.b, bad.content[3].id.b, LB_ID_SIZE) == 0);
        lb_file_reader_free(r);

        /* Sizes that do not add up are refused at open. */
        bad.content[4].size += 2;
        CHECK(lb_file_reader_new(c, &bad, &r) == -EBADMSG);
        lb_node_clear(&bad);

        /* Not a regular file. */
        LbNode dir = { .type = LB_NODE_DIR };
        CHECK(lb_file_reader_new(c, &dir, &r) == -EINVAL);

        lb_chunk_cache_free(c);
        free_file(&f);
}

TEST(test_bad_list) {
        File f;
        make_file(&f, 3000, 500);
        CHECK(f.node.indirect);
        LbChunkCache *c = NULL;
        CHECK_OK(lb_chunk_cache_new(repo, 1 << 20, 0, &c));
        /* A list reference that says it covers one byte more than its chunks
         * (and the next one byte less, so the sizes still add up). */
        if (f.node.n_content >= 2) {
                LbNode bad = {};
                CHECK_OK(lb_node_copy(&f.node, &bad));
                bad.content[0].size += 1;
                bad.content[1].size -= 1;
                LbFileReader *r = NULL;
                CHECK_OK(lb_file_reader_new(c, &bad, &r));
                uint8_t buf[100];
                size_t n;
                LbContentFailure fail = {};
                CHECK(lb_file_reader_read(r, 0, buf, sizeof buf, &n, &fail) == -EBADMSG);
                CHECK(fail.has_id && fail.is_list && memcmp(fail.id.b, bad.content[0].id.b, LB_ID_SIZE) == 0);
                lb_file_reader_free(r);
                lb_node_clear(&bad);
        }
        lb_chunk_cache_free(c);
        free_file(&f);
}

int main(void) {
        char *base = mkdtemp(tmpl);
        CHECK(base);
        _cleanup_free_ char *loc = lb_path_join(base, "repo");
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        o.pack_target = 1u << 20;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &repo));
        CHECK_OK(lb_repo_index_update(repo));

        RUN(test_inline);
        RUN(test_empty);
        RUN(test_indirect_threads);
        RUN(test_missing_and_bad);
        RUN(test_bad_list);

        lb_repo_free(repo);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
        return 0;
}
