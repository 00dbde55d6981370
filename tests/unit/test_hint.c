/* SPDX-License-Identifier: MIT */
/* Read hints (LbBackend.hint, lb_repo_hint_blobs): range coalescing, the
 * directory backend's hint (it reads the hinted pages into the page cache
 * and nothing else), and the readers that give hints: a content stream
 * (store/walk.c, threaded and serial) and the chunk cache's read-ahead
 * (store/chunkcache.c), against a real repository in a temp dir whose
 * backend records the hints and reads it gets. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "store/chunkcache.h"
#include "store/repo.h"
#include "store/walk.h"
#include "tests.h"

static char tmpl[] = "/tmp/lb-test-hint-XXXXXX";
static char *base;
static LbRepo *repo;

/* ---- lb_ranges_coalesce ---- */

static void check_ranges(const LbRange *got, size_t n_got, const LbRange *want, size_t n_want) {
        CHECK_EQ_INT(n_got, n_want);
        for (size_t i = 0; i < n_want; i++) {
                if (got[i].off != want[i].off || got[i].len != want[i].len)
                        fprintf(stderr, "range %zu: got %" PRIu64 "+%" PRIu64 ", want %" PRIu64 "+%" PRIu64 "\n", i,
                                got[i].off, got[i].len, want[i].off, want[i].len);
                CHECK(got[i].off == want[i].off && got[i].len == want[i].len);
        }
}

TEST(test_coalesce) {
        CHECK_EQ_INT(lb_ranges_coalesce(NULL, 0, 4096), 0);

        /* Unsorted; overlapping, touching, within the gap, beyond it, one
         * inside another, empty ones. */
        LbRange v[] = {
                { 50000, 100 },         /* alone: 50000 - 49200 > 4096 */
                { 0, 1000 },
                { 1000, 500 },          /* touches the previous */
                { 10000, 0 },           /* empty: dropped */
                { 1200, 100 },          /* inside */
                { 5596, 10 },           /* 4096 after 1500: merged */
                { 9703, 1 },            /* 4097 after 5606: not merged */
                { 9704, 20 },
                { 9000000, 0 },         /* empty at the end: dropped */
                { 45000, 4200 },        /* 45000..49200, then 50000 is 800 away: merged */
        };
        LbRange want[] = { { 0, 5606 }, { 9703, 21 }, { 45000, 5100 } };
        check_ranges(v, lb_ranges_coalesce(v, LB_ARRAY_SIZE(v), 4096), want, LB_ARRAY_SIZE(want));

        /* Gap 0 merges only overlapping or touching ranges. */
        LbRange w[] = { { 100, 10 }, { 111, 5 }, { 110, 1 }, { 200, 50 }, { 220, 10 } };
        LbRange want_w[] = { { 100, 16 }, { 200, 50 } };
        check_ranges(w, lb_ranges_coalesce(w, LB_ARRAY_SIZE(w), 0), want_w, LB_ARRAY_SIZE(want_w));

        /* A length that would run past 2^64 is clamped, and what follows merges into it. */
        LbRange x[] = { { UINT64_MAX - 10, 100 }, { 5, 5 }, { UINT64_MAX - 5, 2 } };
        LbRange want_x[] = { { 5, 5 }, { UINT64_MAX - 10, 10 } };
        check_ranges(x, lb_ranges_coalesce(x, LB_ARRAY_SIZE(x), 4096), want_x, LB_ARRAY_SIZE(want_x));

        /* Only empty ranges. */
        LbRange y[] = { { 7, 0 }, { 3, 0 } };
        CHECK_EQ_INT(lb_ranges_coalesce(y, LB_ARRAY_SIZE(y), 4096), 0);
}

/* ---- the directory backend's hint ---- */

static bool page_resident(const unsigned char *vec, uint64_t off, long page) {
        return vec[off / (uint64_t) page] & 1;
}

TEST(test_dir_hint) {
        _cleanup_free_ char *root = lb_path_join(base, "dir");
        LbBackend *b = NULL;
        CHECK_OK(lb_backend_dir_open(root, &b));
        CHECK_OK(b->create(b));
        CHECK(b->hint);

        const size_t size = 4u << 20;
        uint8_t *data = malloc(size);
        CHECK(data);
        for (size_t i = 0; i < size; i++)
                data[i] = (uint8_t) (i * 31 + 7);
        const char *name = "ab00000000000000000000000000000000000000000000000000000000000001";
        CHECK_OK(b->put(b, LB_OBJ_PACK, name, data, size));
        free(data);

        /* Errors: a bad name, a missing object. Nothing asked: nothing done. */
        LbRange r1[] = { { 0, 10 } };
        CHECK_EQ_INT(b->hint(b, LB_OBJ_PACK, "../x", r1, 1), -EINVAL);
        CHECK_EQ_INT(b->hint(b, LB_OBJ_PACK, "ab00000000000000000000000000000000000000000000000000000000000002", r1, 1),
                     -ENOENT);
        CHECK_OK(b->hint(b, LB_OBJ_PACK, "ab00000000000000000000000000000000000000000000000000000000000002", r1, 0));

        /* The hinted pages, and only those, come into the page cache. That
         * needs a file system whose clean pages DONTNEED drops (not tmpfs). */
        _cleanup_free_ char *path = lb_strdup_printf("%s/packs/ab/%s", root, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        CHECK(m != MAP_FAILED);
        long page = sysconf(_SC_PAGESIZE);
        size_t pages = (size + (size_t) page - 1) / (size_t) page;
        unsigned char *vec = calloc(pages, 1);
        CHECK(vec);
        CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
        CHECK(mincore(m, size, vec) == 0);
        size_t resident = 0;
        for (size_t i = 0; i < pages; i++)
                resident += vec[i] & 1;
        /* Ranges past the end are ignored; a range running past it is cut. */
        LbRange r2[] = { { 3u << 20, 10000 }, { 1u << 20, 100 }, { size + 4096, 10 }, { size - 100, 1000 } };
        CHECK_OK(b->hint(b, LB_OBJ_PACK, name, r2, LB_ARRAY_SIZE(r2)));
        if (resident > 0)
                printf("# %zu of %zu pages stay cached after DONTNEED here: page cache not checked\n", resident, pages);
        else {
                /* The reads run in the background: wait for them. */
                int64_t deadline = lb_mono_ns() + 10 * (int64_t) 1000000000;
                for (;;) {
                        CHECK(mincore(m, size, vec) == 0);
                        bool all = page_resident(vec, 3u << 20, page) && page_resident(vec, (3u << 20) + 9999, page) &&
                                   page_resident(vec, 1u << 20, page) && page_resident(vec, size - 1, page);
                        if (all)
                                break;
                        CHECK(lb_mono_ns() < deadline);
                        usleep(10000);
                }
                /* Nothing else was read: not the start, not between the ranges. */
                CHECK(!page_resident(vec, 0, page));
                CHECK(!page_resident(vec, (1u << 20) + 2 * (uint64_t) page, page));
                CHECK(!page_resident(vec, 2u << 20, page));
                CHECK(!page_resident(vec, (3u << 20) + 20000, page));
                CHECK(!page_resident(vec, size - 200 * (uint64_t) page, page));
        }
        free(vec);
        munmap(m, size);
        close(fd);
        lb_backend_free(b);
}

/* ---- a backend that records hints and pack reads ---- */

typedef struct Rec {
        char pack[2 * LB_ID_SIZE + 1];
        uint64_t off, len;
        bool hint;
        size_t call;             /* hint call number */
} Rec;

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static Rec *recs;
static size_t n_recs, cap_recs, n_hint_calls;
static int (*orig_hint)(LbBackend *, LbObjType, const char *, LbRange *, size_t);
static int (*orig_get)(LbBackend *, LbObjType, const char *, uint64_t, size_t, LbBuf *);

static void record(const char *pack, uint64_t off, uint64_t len, bool hint, size_t call) {
        if (n_recs == cap_recs) {
                cap_recs = cap_recs ? 2 * cap_recs : 1024;
                recs = realloc(recs, cap_recs * sizeof *recs);
                CHECK(recs);
        }
        Rec *r = &recs[n_recs++];
        *r = (Rec) { .off = off, .len = len, .hint = hint, .call = call };
        snprintf(r->pack, sizeof r->pack, "%s", pack);
}

static int rec_hint(LbBackend *b, LbObjType t, const char *name, LbRange *v, size_t n) {
        CHECK_EQ_INT(t, LB_OBJ_PACK);
        pthread_mutex_lock(&rec_lock);
        size_t call = n_hint_calls++;
        for (size_t i = 0; i < n; i++)
                record(name, v[i].off, v[i].len, true, call);
        pthread_mutex_unlock(&rec_lock);
        return orig_hint(b, t, name, v, n);
}

static int rec_get(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out) {
        if (t == LB_OBJ_PACK) {
                pthread_mutex_lock(&rec_lock);
                record(name, off, len, false, 0);
                pthread_mutex_unlock(&rec_lock);
        }
        return orig_get(b, t, name, off, len, out);
}

static void rec_reset(void) {
        n_recs = 0;
        n_hint_calls = 0;
}

/* Deterministic bytes. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* A file of n distinct, incompressible chunks; ret_locs gets their blobs' locations. */
static void make_file(size_t n, LbNode *ret, LbBlobLoc **ret_locs) {
        LbWriter *w = NULL;
        CHECK_OK(lb_writer_new(repo, &w));
        LbContentRef *refs = calloc(n, sizeof *refs);
        uint8_t buf[2048];
        CHECK(refs);
        uint64_t size = 0;
        for (size_t i = 0; i < n; i++) {
                size_t len = 500 + (size_t) (rnd() % 1500);
                for (size_t j = 0; j < len; j++)
                        buf[j] = (uint8_t) rnd();
                CHECK_OK(lb_writer_add(w, LB_BLOB_DATA, buf, len, &refs[i].id));
                refs[i].size = len;
                size += len;
        }
        LbNode node = { .type = LB_NODE_FILE, .mode = 0644 };
        node.name = strdup("f");
        CHECK(node.name);
        LbBlobLoc *locs = calloc(n, sizeof *locs);
        CHECK(locs);
        LbId *ids = calloc(n, sizeof *ids);
        CHECK(ids);
        for (size_t i = 0; i < n; i++)
                ids[i] = refs[i].id;
        CHECK_OK(lb_writer_set_content(w, &node, refs, n));
        CHECK_OK(lb_writer_flush(w));
        lb_writer_free(w);
        CHECK_OK(lb_repo_index_update(repo));
        CHECK_EQ_INT(node.size, size);
        for (size_t i = 0; i < n; i++)
                CHECK_OK(lb_repo_lookup(repo, &ids[i], &locs[i]));
        free(ids);
        *ret = node;
        *ret_locs = locs;
}

/* The records of kind hint for blob l; *ret_call gets the last one's call number. */
static size_t count_recs(const LbBlobLoc *l, bool hint, size_t upto, size_t *ret_call) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&l->pack, hex);
        size_t c = 0;
        for (size_t i = 0; i < upto; i++)
                if (recs[i].hint == hint && recs[i].off == l->e.offset && recs[i].len == l->e.stored_len &&
                    strcmp(recs[i].pack, hex) == 0) {
                        c++;
                        if (ret_call)
                                *ret_call = recs[i].call;
                }
        return c;
}

static int sink(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        uint64_t *total = userdata;
        *total += n;
        return 0;
}

TEST(test_repo_hint) {
        LbNode f;
        LbBlobLoc *locs;
        make_file(1600, &f, &locs);   /* ~2 MB: two packs or more at a 1 MiB target */
        size_t packs = 1;
        for (size_t i = 1; i < 1600; i++)
                packs += lb_id_cmp(&locs[i].pack, &locs[i - 1].pack) != 0;   /* counts changes: at least the packs */
        CHECK(packs >= 2);

        /* Every known blob's range in one call per pack; unknown ids skipped. */
        LbId ids[1601];
        for (size_t i = 0; i < 1600; i++)
                ids[i] = locs[i].e.id;
        memset(&ids[1600], 0x5a, sizeof ids[1600]);
        rec_reset();
        CHECK_OK(lb_repo_hint_blobs(repo, ids, 1601));
        CHECK_EQ_INT(n_recs, 1600);
        for (size_t i = 0; i < 1600; i++)
                CHECK_EQ_INT(count_recs(&locs[i], true, n_recs, NULL), 1);
        /* One call per pack: a call names one pack, and no pack twice. */
        for (size_t i = 1; i < n_recs; i++)
                CHECK((recs[i].call == recs[i - 1].call) == (strcmp(recs[i].pack, recs[i - 1].pack) == 0));
        CHECK(n_hint_calls >= 2 && n_hint_calls <= packs);
        for (size_t i = 0; i < n_recs; i++)
                for (size_t j = i + 1; j < n_recs; j++)
                        CHECK(recs[j].call == recs[i].call || strcmp(recs[i].pack, recs[j].pack) != 0);

        /* No hint hook: nothing. */
        repo->be->hint = NULL;
        rec_reset();
        CHECK_OK(lb_repo_hint_blobs(repo, ids, 1601));
        CHECK_EQ_INT(n_recs, 0);
        repo->be->hint = rec_hint;

        lb_node_clear(&f);
        free(locs);
}

TEST(test_stream_hints) {
        const size_t n = 5000;
        LbNode f;
        LbBlobLoc *locs;
        make_file(n, &f, &locs);
        CHECK(f.indirect && f.n_content >= 2);
        /* Where each chunk list after the first starts. */
        size_t starts[64], n_starts = 0, at_chunk = 0;
        CHECK(f.n_content <= LB_ARRAY_SIZE(starts));
        for (size_t i = 0; i + 1 < f.n_content; i++) {
                LbBuf raw = {};
                LbContentRef *lr = NULL;
                size_t ln = 0;
                CHECK_OK(lb_repo_read_blob(repo, &f.content[i].id, &raw));
                CHECK_OK(lb_chunklist_decode(raw.data, raw.len, &lr, &ln));
                at_chunk += ln;
                starts[n_starts++] = at_chunk;
                free(lr);
                lb_buf_free(&raw);
        }

        /* Serial: each chunk's blob is announced once, before its read,
         * and at most 2048 chunks (HINT_AHEAD in store/walk.c) ahead of
         * the reads. */
        rec_reset();
        uint64_t total = 0;
        CHECK_OK(lb_content_foreach_serial(repo, &f, sink, &total, NULL));
        CHECK_EQ_INT(total, f.size);
        size_t *read_at = calloc(n, sizeof *read_at);
        CHECK(read_at);
        for (size_t i = 0; i < n; i++) {
                /* The position of the read of chunk i. */
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&locs[i].pack, hex);
                read_at[i] = SIZE_MAX;
                for (size_t j = 0; j < n_recs && read_at[i] == SIZE_MAX; j++)
                        if (!recs[j].hint && recs[j].off == locs[i].e.offset && strcmp(recs[j].pack, hex) == 0)
                                read_at[i] = j;
                CHECK(read_at[i] != SIZE_MAX);
                CHECK_EQ_INT(count_recs(&locs[i], true, read_at[i], NULL), 1);
                CHECK_EQ_INT(count_recs(&locs[i], true, n_recs, NULL), 1);
        }
        /* Hints run on across chunk lists: a list's first chunk is
         * announced before the last chunk of the list before it is read. */
        for (size_t i = 0; i < n_starts; i++)
                CHECK_EQ_INT(count_recs(&locs[starts[i]], true, read_at[starts[i] - 1], NULL), 1);
        free(read_at);
        /* Never far ahead: when a hint names chunk i, at least i - 2048 data chunks were read. */
        size_t data_reads = 0;
        for (size_t j = 0; j < n_recs; j++) {
                if (!recs[j].hint) {
                        data_reads++;
                        continue;
                }
                for (size_t i = 0; i < n; i++) {
                        char hex[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&locs[i].pack, hex);
                        if (recs[j].off == locs[i].e.offset && strcmp(recs[j].pack, hex) == 0) {
                                /* data_reads counts chunk-list reads too: a few more than data chunks. */
                                CHECK(i <= data_reads + 2048);
                                break;
                        }
                }
        }

        /* Threaded read-ahead: every blob announced exactly once. */
        rec_reset();
        total = 0;
        CHECK_OK(lb_content_foreach(repo, &f, sink, &total));
        CHECK_EQ_INT(total, f.size);
        for (size_t i = 0; i < n; i++)
                CHECK_EQ_INT(count_recs(&locs[i], true, n_recs, NULL), 1);

        /* The chunk cache's read-ahead announces the blobs it queues, not
         * the ones it holds already. */
        LbChunkCache *c = NULL;
        CHECK_OK(lb_chunk_cache_new(repo, 64u << 20, 1, &c));
        LbCachedBlob b;
        CHECK_OK(lb_chunk_cache_get(c, &locs[0].e.id, &b));
        lb_chunk_cache_release(c, &b);
        rec_reset();
        LbId ids[100];
        for (size_t i = 0; i < 100; i++)
                ids[i] = locs[i].e.id;
        lb_chunk_cache_prefetch(c, ids, 100);
        /* A worker gives the hint, ahead of its reads: wait for it. */
        int64_t deadline = lb_mono_ns() + 10 * (int64_t) 1000000000;
        for (;;) {
                pthread_mutex_lock(&rec_lock);
                size_t calls = n_hint_calls;
                pthread_mutex_unlock(&rec_lock);
                if (calls > 0)
                        break;
                CHECK(lb_mono_ns() < deadline);
                usleep(1000);
        }
        lb_chunk_cache_free(c);   /* waits for the workers */
        CHECK_EQ_INT(count_recs(&locs[0], true, n_recs, NULL), 0);
        for (size_t i = 1; i < 100; i++)
                CHECK_EQ_INT(count_recs(&locs[i], true, n_recs, NULL), 1);
        for (size_t i = 100; i < n; i++)
                CHECK_EQ_INT(count_recs(&locs[i], true, n_recs, NULL), 0);

        lb_node_clear(&f);
        free(locs);
}

int main(void) {
        CHECK_OK(lb_crypto_init());
        base = mkdtemp(tmpl);
        CHECK(base);
        RUN(test_coalesce);
        RUN(test_dir_hint);

        _cleanup_free_ char *loc = lb_path_join(base, "repo");
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        o.pack_target = 1u << 20;
        o.zstd_level = 0;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &repo));
        CHECK_OK(lb_repo_index_update(repo));
        orig_hint = repo->be->hint;
        orig_get = repo->be->get;
        CHECK(orig_hint);
        repo->be->hint = rec_hint;
        repo->be->get = rec_get;
        RUN(test_repo_hint);
        RUN(test_stream_hints);
        lb_repo_free(repo);
        free(recs);

        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        return system(cmd) == 0 ? 0 : 1;
}
