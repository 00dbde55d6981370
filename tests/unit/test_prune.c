/* SPDX-License-Identifier: MIT */
/* Prune and deltas (codec 2) against the real directory backend in a temp
 * dir: every delta present after prune has its base present (docs/design.md
 * "Prune"). Snapshots are built here with lb_writer_add_like, one writer
 * session (one pack, one index file) per snapshot; a backup that runs
 * during prune is a child process prune waits for at its pause point. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/check.h"
#include "store/prune.h"
#include "store/repo.h"
#include "tests.h"

static char tmpl[] = "/tmp/lb-test-prune-XXXXXX";
static char *base;

/* Random bytes: stored whole they do not compress, so a delta against a
 * chunk that differs in a few bytes is far below half of them. */
#define CHUNK 65536

/* A chunk's content: the random bytes of seed, with a few bytes changed
 * when variant is not 0. A variant is stored against its seed's chunk. */
typedef struct Spec {
        uint64_t seed;
        uint32_t variant;
} Spec;

static void make(Spec s, uint8_t *p) {
        uint64_t x = s.seed * 0x9e3779b97f4a7c15ull + 1;
        for (size_t i = 0; i < CHUNK; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[i] = (uint8_t) x;
        }
        for (uint32_t i = 0; s.variant && i < 16; i++)
                p[(s.variant * 7919u + i * 4099u) % CHUNK] ^= (uint8_t) (s.variant + i + 1);
}

static LbId spec_id(LbRepo *r, Spec s) {
        static uint8_t buf[CHUNK];
        make(s, buf);
        LbId id;
        lb_chunk_id(&r->keys, buf, CHUNK, &id);
        return id;
}

static LbInitOptions fast_opts(void) {
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        o.pack_target = 1u << 20;
        return o;
}

static LbRepo *open_repo(const char *loc) {
        LbRepo *r;
        CHECK_OK(lb_repo_open(loc, NULL, "pw", &r));
        CHECK_OK(lb_repo_index_update(r));
        return r;
}

static char *new_repo(const char *name) {
        char *loc = lb_path_join(base, name);
        LbInitOptions o = fast_opts();
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        lb_repo_free(r);
        return loc;
}

/* One backup: the files (one chunk each; a variant stored against its
 * seed's chunk when that is indexed) in a snapshot of day `day`, and the
 * extra chunks stored but used by no snapshot. One pack and one index
 * file (the whole session stays under the 1 MiB pack target). */
static LbId backup(LbRepo *r, int day, const Spec *files, size_t n, const Spec *extra, size_t n_extra) {
        CHECK_OK(lb_repo_lock(r, false, 0));
        CHECK_OK(lb_repo_index_update(r));
        LbWriter *w;
        CHECK_OK(lb_writer_new(r, &w));
        static uint8_t buf[CHUNK];
        LbTree *t = calloc(1, sizeof *t);
        CHECK(t);
        for (size_t i = 0; i < n + n_extra; i++) {
                Spec s = i < n ? files[i] : extra[i - n];
                make(s, buf);
                LbId id, like = spec_id(r, (Spec) { s.seed, 0 });
                lb_chunk_id(&r->keys, buf, CHUNK, &id);
                CHECK_OK(lb_writer_add_like(w, &id, buf, CHUNK, s.variant ? &like : NULL));
                if (i >= n)
                        continue;
                LbContentRef *ref = calloc(1, sizeof *ref);
                CHECK(ref);
                *ref = (LbContentRef) { .id = id, .size = CHUNK };
                LbNode node = { .name = lb_strdup_printf("f%02zu", i), .type = LB_NODE_FILE, .mode = 0644 };
                CHECK_OK(lb_writer_set_content(w, &node, ref, 1));
                CHECK_OK(lb_tree_add(t, &node));
        }
        CHECK_OK(lb_tree_sort(t));
        _cleanup_buf_ LbBuf enc = {};
        CHECK_OK(lb_tree_encode(t, &enc));
        LbSnapshot s = { .time_ns = 1700000000000000000 + (int64_t) day * 86400000000000, .hostname = (char *) "h" };
        CHECK_OK(lb_writer_add(w, LB_BLOB_TREE, enc.data, enc.len, &s.tree));
        lb_tree_free(t);
        CHECK_OK(lb_writer_flush(w));
        lb_writer_free(w);
        LbId id;
        CHECK_OK(lb_repo_snapshot_save(r, &s, &id));
        CHECK_OK(lb_repo_unlock(r));
        return id;
}

/* The spec is stored as a delta against its seed's chunk. */
static void assert_delta(LbRepo *r, Spec s) {
        LbBlobLoc l;
        LbId id = spec_id(r, s), b = spec_id(r, (Spec) { s.seed, 0 });
        CHECK_OK(lb_repo_lookup(r, &id, &l));
        CHECK_EQ_INT(l.e.codec, LB_CODEC_DELTA);
        CHECK(lb_id_cmp(&l.e.base, &b) == 0);
}

static void assert_reads(LbRepo *r, Spec s) {
        static uint8_t want[CHUNK];
        make(s, want);
        LbId id = spec_id(r, s);
        _cleanup_buf_ LbBuf out = {};
        int k = lb_repo_read_blob(r, &id, &out);
        if (k < 0)
                fprintf(stderr, "# chunk %" PRIu64 "/%" PRIu32 " does not read: %s\n", s.seed, s.variant, strerror(-k));
        CHECK_OK(k);
        CHECK(out.len == CHUNK && memcmp(out.data, want, CHUNK) == 0);
}

static bool indexed(LbRepo *r, Spec s) {
        LbId id = spec_id(r, s);
        int k = lb_repo_lookup(r, &id, NULL);
        CHECK(k == 0 || k == -ENOENT);
        return k == 0;
}

/* The pack the index has the spec's chunk in. */
static LbId pack_of(LbRepo *r, Spec s) {
        LbBlobLoc l;
        LbId id = spec_id(r, s);
        CHECK_OK(lb_repo_lookup(r, &id, &l));
        return l.pack;
}

static bool pack_present(LbRepo *r, const LbId *pack) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(pack, hex);
        _cleanup_buf_ LbBuf b = {};
        int k = r->be->get(r->be, LB_OBJ_PACK, hex, 0, 16, &b);
        CHECK(k == 0 || k == -ENOENT);
        return k == 0;
}

static void on_report(void *ud, const char *m) {
        (void) ud;
        fprintf(stderr, "# check: %s\n", m);
}

/* longbox check [--read-data] */
static void assert_check_data(LbRepo *r, bool read_data) {
        LbCheckOptions o = { .read_data = read_data, .report = on_report };
        LbCheckResult res = {};
        CHECK_OK(lb_repo_lock(r, false, 0));
        CHECK_OK(lb_check_run(r, &o, &res));
        CHECK_OK(lb_repo_unlock(r));
        CHECK_EQ_INT(res.errors, 0);
        CHECK(!read_data || (res.packs_read > 0 && res.packs_read + res.unreferenced_packs == res.packs));
}

static void assert_check(LbRepo *r) {
        assert_check_data(r, true);
}

/* The invariant: every delta in every pack of the repository (the index
 * has it; a leftover no index file lists is not read) has its base,
 * readable. */
typedef struct Packs {
        char (*names)[2 * LB_ID_SIZE + 1];
        uint64_t *sizes;
        size_t n;
} Packs;

static int collect(const LbId *pack, uint64_t size, void *ud) {
        Packs *p = ud;
        p->names = realloc(p->names, (p->n + 1) * sizeof *p->names);
        p->sizes = realloc(p->sizes, (p->n + 1) * sizeof *p->sizes);
        CHECK(p->names && p->sizes);
        lb_id_hex(pack, p->names[p->n]);
        p->sizes[p->n++] = size;
        return 0;
}

static size_t assert_bases_present(LbRepo *r) {
        Packs p = {};
        CHECK_OK(lb_repo_index_packs(r, collect, &p));
        size_t deltas = 0;
        for (size_t i = 0; i < p.n; i++) {
                LbPackEntry *e;
                size_t n;
                CHECK_OK(lb_repo_read_pack_toc(r, p.names[i], p.sizes[i], &e, &n));
                for (size_t j = 0; j < n; j++) {
                        if (e[j].codec != LB_CODEC_DELTA)
                                continue;
                        _cleanup_buf_ LbBuf b = {};
                        int k = lb_repo_read_base(r, &e[j], &b);
                        if (k < 0)
                                fprintf(stderr, "# a delta in pack %.16s has no readable base: %s\n", p.names[i],
                                        strerror(-k));
                        CHECK_OK(k);
                        deltas++;
                }
                free(e);
        }
        free(p.names);
        free(p.sizes);
        return deltas;
}

static LbPruneResult prune(LbRepo *r, unsigned max_unused) {
        LbPruneOptions o = { .max_unused_percent = max_unused, .lock_wait_ns = 60ll * 1000000000 };
        LbPruneResult res = {};
        char *error = NULL;
        CHECK_OK(lb_repo_lock(r, false, 0));
        CHECK_OK(lb_repo_index_update(r));
        int k = lb_prune_run(r, &o, &res, &error);
        if (k < 0)
                fprintf(stderr, "# prune: %s\n", error ? error : strerror(-k));
        free(error);
        CHECK_OK(k);
        CHECK_OK(lb_repo_unlock(r)); /* prune ends holding the exclusive lock */
        return res;
}

/* Rebuilds the local index from the index files, then from the packs
 * alone, and reads the specs back each time. */
static void assert_rebuilds(const char *loc, const Spec *specs, size_t n) {
        for (int from_packs = 0; from_packs <= 1; from_packs++) {
                LbRepo *r = open_repo(loc);
                unsigned packs;
                CHECK_OK(lb_repo_lock(r, true, 0));
                CHECK_OK(lb_repo_index_rebuild(r, from_packs, &packs));
                CHECK_OK(lb_repo_unlock(r));
                for (size_t i = 0; i < n; i++)
                        assert_reads(r, specs[i]);
                assert_check(r);
                lb_repo_free(r);
        }
}

/* Snapshot 1 has A whole, snapshot 2 has A' stored against A (and not A).
 * Forgetting snapshot 1 leaves A in use as A''s base: its pack is
 * repacked (it holds dead blobs), never deleted with A. Both packs are
 * repacked, so A' moves: its base must be in the new TOC and index file. */
TEST(test_base_of_live_delta) {
        _cleanup_free_ char *loc = new_repo("live");
        LbRepo *r = open_repo(loc);
        const Spec a = { 1, 0 }, a2 = { 1, 1 }, f1 = { 2, 0 }, f2 = { 3, 0 }, dead = { 4, 0 };
        LbId s1 = backup(r, 1, (Spec[]) { a, f1 }, 2, NULL, 0);
        backup(r, 2, (Spec[]) { a2, f2 }, 2, (Spec[]) { dead }, 1);
        assert_delta(r, a2);
        LbId pack_a = pack_of(r, a), pack_a2 = pack_of(r, a2);
        CHECK(lb_id_cmp(&pack_a, &pack_a2) != 0);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));

        LbPruneResult res = prune(r, 0);
        CHECK_EQ_INT(res.packs_damaged, 0);
        CHECK_EQ_INT(res.packs_repacked, 2); /* A's pack (f1 dead) and A''s (the extra chunk dead) */
        CHECK_EQ_INT(res.packs_deleted, 0);
        CHECK(!pack_present(r, &pack_a) && !pack_present(r, &pack_a2));
        assert_reads(r, a2);
        assert_reads(r, a); /* kept as the base */
        assert_reads(r, f2);
        CHECK(!indexed(r, f1) && !indexed(r, dead));
        assert_delta(r, a2); /* the moved copy is still a delta */
        CHECK_EQ_INT(assert_bases_present(r), 1);
        assert_check(r);
        lb_repo_free(r);
        assert_rebuilds(loc, (Spec[]) { a2, f2 }, 2);

        /* The same with the default --max-unused: A's pack is repacked or kept. */
        _cleanup_free_ char *loc2 = new_repo("live-default");
        r = open_repo(loc2);
        s1 = backup(r, 1, (Spec[]) { a, f1 }, 2, NULL, 0);
        backup(r, 2, (Spec[]) { a2, f2 }, 2, NULL, 0);
        assert_delta(r, a2);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        res = prune(r, LB_PRUNE_MAX_UNUSED_DEFAULT);
        CHECK_EQ_INT(res.packs_deleted, 0);
        assert_reads(r, a2);
        CHECK_EQ_INT(assert_bases_present(r), 1);
        assert_check(r);
        lb_repo_free(r);
        assert_rebuilds(loc2, (Spec[]) { a2, f2 }, 2);
}

/* A dead delta in a pack that is otherwise live (below --max-unused), its
 * base dead in a pack of its own: the pack is repacked anyway, so the
 * delta does not outlive its base. */
TEST(test_dead_delta_in_live_pack) {
        _cleanup_free_ char *loc = new_repo("dead");
        LbRepo *r = open_repo(loc);
        const Spec b = { 10, 0 }, d = { 10, 1 };
        const Spec live[] = { { 11, 0 }, { 12, 0 }, { 13, 0 }, { 14, 0 }, { 15, 0 }, { 16, 0 } };
        LbId s1 = backup(r, 1, &b, 1, NULL, 0);
        Spec two[7] = { d };
        memcpy(two + 1, live, sizeof live);
        LbId s2 = backup(r, 2, two, 7, NULL, 0);
        backup(r, 3, live, 6, NULL, 0);
        assert_delta(r, d);
        LbId pack_b = pack_of(r, b), pack_d = pack_of(r, d);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        CHECK_OK(lb_repo_snapshot_remove(r, &s2));

        LbPruneResult res = prune(r, LB_PRUNE_MAX_UNUSED_DEFAULT);
        CHECK(!pack_present(r, &pack_b));
        /* Its dead bytes (the small delta and a tree) are far below 10%. */
        CHECK(!pack_present(r, &pack_d));
        CHECK_EQ_INT(res.packs_repacked, 1);
        CHECK(!indexed(r, b) && !indexed(r, d));
        for (size_t i = 0; i < 6; i++)
                assert_reads(r, live[i]);
        CHECK_EQ_INT(assert_bases_present(r), 0);
        assert_check(r);
        lb_repo_free(r);
}

/* A pack prune means to repack (it holds a dead delta) that turns out
 * damaged is kept whole: the dead delta stays, so its base does too. */
TEST(test_damaged_pack_keeps_bases) {
        _cleanup_free_ char *loc = new_repo("damaged");
        LbRepo *r = open_repo(loc);
        const Spec b = { 20, 0 }, d = { 20, 1 }, l = { 21, 0 };
        LbId s1 = backup(r, 1, &b, 1, NULL, 0);
        LbId s2 = backup(r, 2, (Spec[]) { d, l }, 2, NULL, 0);
        backup(r, 3, &l, 1, NULL, 0);
        assert_delta(r, d);
        LbId pack_b = pack_of(r, b), pack_d = pack_of(r, d);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        CHECK_OK(lb_repo_snapshot_remove(r, &s2));
        /* One flipped byte in l, the blob in use there. */
        LbBlobLoc ll;
        LbId lid = spec_id(r, l);
        CHECK_OK(lb_repo_lookup(r, &lid, &ll));
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&ll.pack, hex);
        _cleanup_free_ char *path = lb_strdup_printf("%s/packs/%.2s/%s", loc, hex, hex);
        FILE *f = fopen(path, "r+b");
        CHECK(f);
        CHECK(fseek(f, (long) ll.e.offset + 100, SEEK_SET) == 0);
        int c = fgetc(f);
        CHECK(c != EOF && fseek(f, (long) ll.e.offset + 100, SEEK_SET) == 0);
        CHECK(fputc(c ^ 1, f) != EOF);
        CHECK(fclose(f) == 0);

        LbPruneResult res = prune(r, LB_PRUNE_MAX_UNUSED_DEFAULT);
        CHECK_EQ_INT(res.packs_damaged, 1);
        CHECK(pack_present(r, &pack_d));
        CHECK(pack_present(r, &pack_b));
        assert_reads(r, d);
        CHECK_EQ_INT(assert_bases_present(r), 1);
        lb_repo_free(r);
}

/* ---- backups during prune ---- */

/* Runs prune in a child that pauses once it has planned (step 3) until
 * during() ran here (with the shared lock a backup holds); returns its
 * result. */
static LbPruneResult prune_during(const char *loc, void (*during)(LbRepo *r, void *ud), void *ud) {
        _cleanup_free_ char *pause = lb_path_join(base, "pause");
        _cleanup_free_ char *out = lb_path_join(base, "prune.result");
        (void) unlink(pause);
        (void) unlink(out);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                setenv("LONGBOX_TEST_PAUSE_AT", "prune:marked", 1);
                setenv("LONGBOX_TEST_PAUSE_FILE", pause, 1);
                LbRepo *r = open_repo(loc);
                LbPruneResult res = prune(r, LB_PRUNE_MAX_UNUSED_DEFAULT);
                lb_repo_free(r);
                FILE *f = fopen(out, "wb");
                _exit(f && fwrite(&res, sizeof res, 1, f) == 1 && fclose(f) == 0 ? 0 : 1);
        }
        struct timespec ts = { 0, 20 * 1000000L };
        for (int i = 0; i < 3000 && access(pause, F_OK) != 0; i++)
                nanosleep(&ts, NULL);
        CHECK(access(pause, F_OK) == 0);
        LbRepo *r = open_repo(loc);
        during(r, ud);
        lb_repo_free(r);
        CHECK(unlink(pause) == 0);
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        LbPruneResult res;
        FILE *f = fopen(out, "rb");
        CHECK(f && fread(&res, sizeof res, 1, f) == 1);
        fclose(f);
        return res;
}

static void backup_new_delta(LbRepo *r, void *ud) {
        (void) ud;
        /* Against b, which phase 1 found dead: a new delta, in a new pack. */
        backup(r, 4, (Spec[]) { { 30, 2 } }, 1, NULL, 0);
        assert_delta(r, (Spec) { 30, 2 });
}

/* A backup during prune stores a new delta against a base phase 1 found
 * dead: the base's pack is kept. */
TEST(test_new_delta_during_prune) {
        _cleanup_free_ char *loc = new_repo("new-delta");
        LbRepo *r = open_repo(loc);
        const Spec b = { 30, 0 }, l = { 31, 0 };
        LbId s1 = backup(r, 1, &b, 1, NULL, 0);
        backup(r, 2, &l, 1, NULL, 0);
        LbId pack_b = pack_of(r, b);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        lb_repo_free(r);

        LbPruneResult res = prune_during(loc, backup_new_delta, NULL);
        CHECK_EQ_INT(res.packs_busy, 1);
        CHECK_EQ_INT(res.packs_deleted, 0);
        r = open_repo(loc);
        CHECK(pack_present(r, &pack_b));
        assert_reads(r, (Spec) { 30, 2 });
        CHECK_EQ_INT(assert_bases_present(r), 1);
        assert_check(r);
        lb_repo_free(r);
}

static void failed_backup(LbRepo *r, void *ud) {
        (void) ud;
        /* A backup that stores a new delta against b, which phase 1 found
         * dead, then fails before its snapshot: pack and index file only. */
        static uint8_t buf[CHUNK];
        const Spec d = { 60, 3 };
        make(d, buf);
        LbId id = spec_id(r, d), like = spec_id(r, (Spec) { 60, 0 });
        CHECK_OK(lb_repo_lock(r, false, 0));
        LbWriter *w;
        CHECK_OK(lb_writer_new(r, &w));
        CHECK_OK(lb_writer_add_like(w, &id, buf, CHUNK, &like));
        CHECK_OK(lb_writer_flush(w));
        lb_writer_free(w);
        CHECK_OK(lb_repo_unlock(r));
        assert_delta(r, d);
}

/* The delta of a backup that failed during prune (no snapshot uses it)
 * keeps its base, which phase 1 found dead: check --read-data reads it. */
TEST(test_unused_new_delta_during_prune) {
        _cleanup_free_ char *loc = new_repo("failed");
        LbRepo *r = open_repo(loc);
        const Spec b = { 60, 0 }, l = { 61, 0 };
        LbId s1 = backup(r, 1, &b, 1, NULL, 0);
        backup(r, 2, &l, 1, NULL, 0);
        LbId pack_b = pack_of(r, b);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        lb_repo_free(r);

        LbPruneResult res = prune_during(loc, failed_backup, NULL);
        CHECK_EQ_INT(res.packs_busy, 1);
        r = open_repo(loc);
        CHECK(pack_present(r, &pack_b));
        assert_reads(r, (Spec) { 60, 3 });
        CHECK_EQ_INT(assert_bases_present(r), 1);
        assert_check(r);
        lb_repo_free(r);

        /* The next prune finds both dead and removes them together. */
        r = open_repo(loc);
        res = prune(r, LB_PRUNE_MAX_UNUSED_DEFAULT);
        CHECK_EQ_INT(res.packs_deleted, 2);
        CHECK(!pack_present(r, &pack_b) && !indexed(r, b) && !indexed(r, (Spec) { 60, 3 }));
        assert_reads(r, l);
        CHECK_EQ_INT(assert_bases_present(r), 0);
        assert_check(r);
        lb_repo_free(r);
}

static void backup_dead_whole(LbRepo *r, void *ud) {
        (void) ud;
        /* x, which phase 1 found dead, deduplicated: its pack stays. */
        backup(r, 4, (Spec[]) { { 42, 0 } }, 1, NULL, 0);
}

/* A backup during prune deduplicates against a blob phase 1 found dead,
 * in a pack that also holds a dead delta whose base is dead elsewhere:
 * the pack is kept whole, and so is the base's. */
TEST(test_kept_pack_keeps_bases) {
        _cleanup_free_ char *loc = new_repo("kept");
        LbRepo *r = open_repo(loc);
        const Spec b = { 40, 0 }, d = { 40, 1 }, x = { 42, 0 }, l = { 41, 0 };
        LbId s1 = backup(r, 1, &b, 1, NULL, 0);
        LbId s2 = backup(r, 2, (Spec[]) { d, x }, 2, NULL, 0);
        backup(r, 3, &l, 1, NULL, 0);
        assert_delta(r, d);
        LbId pack_b = pack_of(r, b), pack_d = pack_of(r, d);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        CHECK_OK(lb_repo_snapshot_remove(r, &s2));
        lb_repo_free(r);

        LbPruneResult res = prune_during(loc, backup_dead_whole, NULL);
        CHECK_EQ_INT(res.packs_busy, 2);
        r = open_repo(loc);
        CHECK(pack_present(r, &pack_d));
        CHECK(pack_present(r, &pack_b));
        assert_reads(r, x);
        assert_reads(r, d);
        CHECK_EQ_INT(assert_bases_present(r), 1);
        assert_check(r);
        lb_repo_free(r);
}

static void backup_dead_delta(LbRepo *r, void *ud) {
        (void) ud;
        backup(r, 4, (Spec[]) { { 50, 1 } }, 1, NULL, 0);
}

/* A backup during prune deduplicates against a delta phase 1 found dead:
 * its pack and its base's are kept. */
TEST(test_dead_delta_reused_during_prune) {
        _cleanup_free_ char *loc = new_repo("reused");
        LbRepo *r = open_repo(loc);
        const Spec b = { 50, 0 }, d = { 50, 1 }, l = { 51, 0 };
        LbId s1 = backup(r, 1, &b, 1, NULL, 0);
        LbId s2 = backup(r, 2, &d, 1, NULL, 0);
        backup(r, 3, &l, 1, NULL, 0);
        assert_delta(r, d);
        LbId pack_b = pack_of(r, b), pack_d = pack_of(r, d);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        CHECK_OK(lb_repo_snapshot_remove(r, &s2));
        lb_repo_free(r);

        LbPruneResult res = prune_during(loc, backup_dead_delta, NULL);
        CHECK_EQ_INT(res.packs_busy, 2);
        r = open_repo(loc);
        CHECK(pack_present(r, &pack_d) && pack_present(r, &pack_b));
        assert_reads(r, d);
        CHECK_EQ_INT(assert_bases_present(r), 1);
        assert_check(r);
        lb_repo_free(r);
}

/* Prune killed at each of its steps (LONGBOX_TEST_CRASH_AT) in a
 * repository with deltas: what the snapshots use reads back and check
 * passes; a second prune finishes the job, and then check --read-data
 * passes and every delta has its base. (Right after a kill in step 8, an
 * old index file may still list the dead delta while its base's is gone:
 * docs/design.md "Prune", crashes.) */
TEST(test_crash_with_deltas) {
        _cleanup_free_ char *loc = new_repo("crash");
        LbRepo *r = open_repo(loc);
        const Spec a = { 70, 0 }, a2 = { 70, 1 }, f1 = { 71, 0 }, f2 = { 72, 0 }, dead = { 73, 0 };
        const Spec b = { 74, 0 }, d = { 74, 1 };
        const Spec live[] = { { 75, 0 }, { 76, 0 }, { 77, 0 }, { 78, 0 } };
        Spec four[5] = { d };
        memcpy(four + 1, live, sizeof live);
        LbId s1 = backup(r, 1, (Spec[]) { a, f1 }, 2, NULL, 0);
        backup(r, 2, (Spec[]) { a2, f2 }, 2, (Spec[]) { dead }, 1);
        LbId s3 = backup(r, 3, &b, 1, NULL, 0);
        LbId s4 = backup(r, 4, four, 5, NULL, 0);
        backup(r, 5, live, 4, NULL, 0);
        assert_delta(r, a2);
        assert_delta(r, d);
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        CHECK_OK(lb_repo_snapshot_remove(r, &s3));
        CHECK_OK(lb_repo_snapshot_remove(r, &s4));
        /* A pack no index file lists, for the last step. */
        CHECK_OK(lb_repo_put_object(r, LB_OBJ_PACK, "leftover", 8, NULL));
        lb_repo_free(r);

        static const char *const steps[] = { LB_PRUNE_CRASH_STEPS };
        const Spec used[] = { a2, f2, live[0], live[1], live[2], live[3] };
        for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
                _cleanup_free_ char *copy = lb_strdup_printf("%s-%s", loc, steps[i]);
                _cleanup_free_ char *cmd = lb_strdup_printf("cp -a '%s' '%s'", loc, copy);
                CHECK(system(cmd) == 0);
                fflush(NULL);
                pid_t pid = fork();
                CHECK(pid >= 0);
                if (pid == 0) {
                        _cleanup_free_ char *at = lb_strdup_printf("prune:%s", steps[i]);
                        setenv("LONGBOX_TEST_CRASH_AT", at, 1);
                        r = open_repo(copy);
                        prune(r, 0);
                        _exit(0);
                }
                int status;
                CHECK(waitpid(pid, &status, 0) == pid);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                        fprintf(stderr, "# prune was not killed at %s\n", steps[i]);
                CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                for (int round = 0; round < 2; round++) {
                        r = open_repo(copy);
                        for (size_t j = 0; j < sizeof used / sizeof *used; j++)
                                assert_reads(r, used[j]);
                        assert_check_data(r, round == 1);
                        if (round == 0) {
                                prune(r, 0); /* finishes the job */
                        } else {
                                CHECK_EQ_INT(assert_bases_present(r), 1);
                                CHECK(!indexed(r, d) && !indexed(r, b) && !indexed(r, dead));
                        }
                        lb_repo_free(r);
                }
                free(cmd);
                cmd = lb_strdup_printf("rm -rf '%s'", copy);
                CHECK(system(cmd) == 0);
        }
}

/* With an argument, only the tests whose name contains it. */
#define RUN_IF(name)                                   \
        do {                                           \
                if (argc < 2 || strstr(#name, argv[1])) \
                        RUN(name);                     \
        } while (0)

static int first_name(const char *name, uint64_t size, void *ud) {
        (void) size;
        char **out = ud;
        if (!*out)
                *out = strdup(name);
        return 0;
}

/* A delta whose base is gone (a prune killed in step 8 can leave one):
 * check --read-data does not call it damage while no snapshot needs it;
 * a backup of the same chunk stores a new copy instead of deduplicating
 * against it, and the local index takes the new copy. */
TEST(test_orphan_delta) {
        _cleanup_free_ char *loc = new_repo("orphan");
        LbRepo *r = open_repo(loc);
        const Spec a = { 40, 0 }, a2 = { 40, 1 }, f = { 41, 0 };
        LbId s1 = backup(r, 1, &a, 1, NULL, 0);
        _cleanup_free_ char *index1 = NULL;
        CHECK_OK(r->be->list(r->be, LB_OBJ_INDEX, first_name, &index1));
        CHECK(index1);
        backup(r, 2, &f, 1, &a2, 1); /* a2 stored, used by no snapshot */
        assert_delta(r, a2);
        LbId pack_a = pack_of(r, a);
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&pack_a, hex);
        /* A's snapshot, pack and index file go, as a killed prune leaves them. */
        CHECK_OK(lb_repo_snapshot_remove(r, &s1));
        CHECK_OK(r->be->remove(r->be, LB_OBJ_INDEX, index1));
        CHECK_OK(r->be->remove(r->be, LB_OBJ_PACK, hex));
        lb_repo_free(r);
        r = open_repo(loc); /* the local index notices the file is gone and rebuilds */
        CHECK(!indexed(r, a) && indexed(r, a2));
        assert_check_data(r, true);

        backup(r, 3, &a2, 1, NULL, 0);
        LbBlobLoc l;
        LbId id = spec_id(r, a2);
        CHECK_OK(lb_repo_lookup(r, &id, &l));
        CHECK(l.e.codec != LB_CODEC_DELTA); /* the new, whole copy */
        assert_reads(r, a2);
        assert_check_data(r, true);
        lb_repo_free(r);
}

int main(int argc, char **argv) {
        CHECK_OK(lb_crypto_init());
        base = mkdtemp(tmpl);
        CHECK(base);
        RUN_IF(test_base_of_live_delta);
        RUN_IF(test_dead_delta_in_live_pack);
        RUN_IF(test_damaged_pack_keeps_bases);
        RUN_IF(test_new_delta_during_prune);
        RUN_IF(test_kept_pack_keeps_bases);
        RUN_IF(test_dead_delta_reused_during_prune);
        RUN_IF(test_unused_new_delta_during_prune);
        RUN_IF(test_crash_with_deltas);
        RUN_IF(test_orphan_delta);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        return system(cmd) == 0 ? 0 : 1;
}
