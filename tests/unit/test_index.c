/* SPDX-License-Identifier: MIT */
/*
 * The local index (store/index.c): lookups, merges, forgetting packs, the
 * remaps that let prune's copies stand in for blobs of forgotten packs
 * (docs/design.md "The local index"), and the version check that empties
 * an index of another layout.
 */
#include <lmdb.h>
#include <sys/stat.h>

#include "store/crypto.h"
#include "store/index.h"
#include "store/util.h"
#include "tests.h"

static char tmpl[] = "/tmp/lb-test-index-XXXXXX";
static const char *base;
static unsigned dirs;

static char *new_dir(void) {
        char *d = lb_strdup_printf("%s/%u", base, dirs++);
        CHECK(d);
        return d;
}

static LbId make_id(unsigned seed) {
        LbId id;
        uint8_t in[4];
        lb_put_le32(in, seed);
        lb_object_id(in, sizeof in, &id);
        return id;
}

static LbPackEntry entry(unsigned seed, uint64_t offset, uint32_t payload) {
        return (LbPackEntry) {
                .id = make_id(seed),
                .offset = offset,
                .stored_len = lb_pad_length(payload) + LB_SEAL_OVERHEAD,
                .payload_len = payload,
                .raw_len = payload * 2,
                .type = LB_BLOB_DATA,
                .codec = LB_CODEC_ZSTD,
        };
}

static LbIndexPack pack(unsigned seed, LbPackEntry *e, size_t n) {
        return (LbIndexPack) { .pack_id = make_id(1000000 + seed), .pack_size = 1u << 20, .entries = e, .n = n };
}

/* Checks that blob seed resolves to pack p at offset off (with e's lengths). */
static void check_at(LbIndex *x, const LbPackEntry *e, const LbIndexPack *p, uint64_t off) {
        LbBlobLoc l;
        CHECK_OK(lb_index_lookup(x, &e->id, &l));
        CHECK(lb_id_cmp(&l.pack, &p->pack_id) == 0);
        CHECK_EQ_INT(l.e.offset, off);
        CHECK(lb_id_cmp(&l.e.id, &e->id) == 0);
        CHECK_EQ_INT(l.e.stored_len, e->stored_len);
        CHECK_EQ_INT(l.e.payload_len, e->payload_len);
        CHECK_EQ_INT(l.e.raw_len, e->raw_len);
        CHECK_EQ_INT(l.e.type, e->type);
        CHECK_EQ_INT(l.e.codec, e->codec);
}

static void check_gone(LbIndex *x, const LbPackEntry *e) {
        LbBlobLoc l;
        CHECK(lb_index_lookup(x, &e->id, &l) == -ENOENT);
}

static int count_pack(const LbId *pack, uint64_t size, void *ud) {
        (*(unsigned *) ud)++;
        return 0;
}

TEST(test_add_lookup_forget) {
        _cleanup_free_ char *d = new_dir();
        LbIndex *x;
        CHECK_OK(lb_index_open(d, &x));
        LbPackEntry a[3] = { entry(1, 0, 100), entry(2, 200, 3000), entry(3, 5000, 7) };
        LbIndexPack A = pack(1, a, 3);
        LbId file = make_id(77);
        CHECK_EQ_INT(lb_index_has_file(x, &file), 0);
        CHECK_OK(lb_index_add(x, &file, &A, 1));
        for (int i = 0; i < 3; i++)
                check_at(x, &a[i], &A, a[i].offset);
        LbPackEntry unknown = entry(9, 0, 10);
        check_gone(x, &unknown);
        CHECK_EQ_INT(lb_index_has_pack(x, &A.pack_id), 1);
        CHECK_EQ_INT(lb_index_has_file(x, &file), 1);
        uint64_t blobs, stored;
        CHECK_OK(lb_index_totals(x, &blobs, &stored));
        CHECK(blobs == 3 && stored == A.pack_size);
        unsigned packs = 0;
        CHECK_OK(lb_index_foreach_pack(x, count_pack, &packs));
        CHECK_EQ_INT(packs, 1);

        /* Merging the same file again changes nothing. */
        CHECK_OK(lb_index_add(x, &file, &A, 1));
        CHECK_OK(lb_index_totals(x, &blobs, &stored));
        CHECK(blobs == 3);

        CHECK_OK(lb_index_forget(x, &A.pack_id, 1, &file, 1));
        for (int i = 0; i < 3; i++)
                check_gone(x, &a[i]);
        CHECK_EQ_INT(lb_index_has_pack(x, &A.pack_id), 0);
        CHECK_EQ_INT(lb_index_has_file(x, &file), 0);
        CHECK_OK(lb_index_totals(x, &blobs, &stored));
        CHECK(blobs == 0 && stored == 0);

        /* Reopened, the index keeps what it had. */
        CHECK_OK(lb_index_add(x, NULL, &A, 1));
        lb_index_free(x);
        CHECK_OK(lb_index_open(d, &x));
        check_at(x, &a[1], &A, a[1].offset);
        CHECK_OK(lb_index_clear(x));
        check_gone(x, &a[1]);
        lb_index_free(x);
}

/* A blob stored twice keeps its first location while that one resolves,
 * and takes the new one once it does not. */
TEST(test_duplicates) {
        _cleanup_free_ char *d = new_dir();
        LbIndex *x;
        CHECK_OK(lb_index_open(d, &x));
        LbPackEntry a[1] = { entry(1, 0, 100) }, b[2] = { entry(2, 0, 50), entry(1, 400, 100) };
        LbIndexPack A = pack(1, a, 1), B = pack(2, b, 2);
        CHECK_OK(lb_index_add(x, NULL, &A, 1));
        CHECK_OK(lb_index_add(x, NULL, &B, 1));
        check_at(x, &a[0], &A, 0);
        CHECK_OK(lb_index_forget(x, &A.pack_id, 1, NULL, 0));
        check_gone(x, &a[0]);
        CHECK_OK(lb_index_add(x, NULL, &B, 1));
        check_at(x, &b[1], &B, 400);

        /* relocate points a blob at a copy that stays. */
        LbPackEntry c[1] = { entry(2, 64, 50) };
        LbIndexPack C = pack(3, c, 1);
        CHECK_OK(lb_index_add(x, NULL, &C, 1));
        check_at(x, &b[0], &B, 0);
        CHECK_OK(lb_index_relocate(x, &C));
        check_at(x, &b[0], &C, 64);
        LbIndexPack unknown = pack(9, c, 1);
        CHECK(lb_index_relocate(x, &unknown) == -ENOENT);
        lb_index_free(x);
}

/* Prune's copies: blob entries are not touched; once the source pack is
 * forgotten, its blobs that were copied resolve to the copies, the others
 * to nothing. */
TEST(test_copies) {
        _cleanup_free_ char *d = new_dir();
        LbIndex *x;
        CHECK_OK(lb_index_open(d, &x));
        LbPackEntry a[3] = { entry(1, 100, 40), entry(2, 300, 40), entry(3, 500, 40) };
        LbIndexPack A = pack(1, a, 3);
        CHECK_OK(lb_index_add(x, NULL, &A, 1));

        LbPackEntry n[2] = { entry(3, 0, 40), entry(1, 1000, 40) };
        LbIndexPack N = pack(2, n, 2);
        LbIndexMove from[2] = { { A.pack_id, 500 }, { A.pack_id, 100 } };
        LbIndexMove *fromv[1] = { from };
        LbId file = make_id(88);
        CHECK_OK(lb_index_add_copies(x, &file, &N, 1, fromv));
        CHECK_EQ_INT(lb_index_has_file(x, &file), 1);
        CHECK_EQ_INT(lb_index_has_pack(x, &N.pack_id), 1);
        /* While the source stays, lookups find it. */
        check_at(x, &a[0], &A, 100);
        check_at(x, &a[2], &A, 500);

        CHECK_OK(lb_index_forget(x, &A.pack_id, 1, NULL, 0));
        check_at(x, &a[0], &N, 1000);
        check_at(x, &a[2], &N, 0);
        check_gone(x, &a[1]);
        uint64_t blobs, stored;
        CHECK_OK(lb_index_totals(x, &blobs, &stored));
        CHECK(blobs == 2);

        /* The source's index file merged again (a crash before its removal):
         * the source comes back under a new number; the copied blobs keep
         * their copies, the dead one points at the source again. */
        CHECK_OK(lb_index_add(x, NULL, &A, 1));
        check_at(x, &a[0], &N, 1000);
        check_at(x, &a[1], &A, 300);

        /* Survives a reopen. */
        lb_index_free(x);
        CHECK_OK(lb_index_open(d, &x));
        check_at(x, &a[2], &N, 0);
        lb_index_free(x);
}

/* A blob copied twice (Q -> P, then P -> M) resolves in one step: the
 * second copy rewrites Q's remap. Blobs of Q left in P when P goes (dead,
 * or second copies prune relocated) resolve to nothing. */
TEST(test_copies_twice) {
        _cleanup_free_ char *d = new_dir();
        LbIndex *x;
        CHECK_OK(lb_index_open(d, &x));
        LbPackEntry q[2] = { entry(1, 10, 40), entry(2, 90, 40) };
        LbIndexPack Q = pack(1, q, 2);
        CHECK_OK(lb_index_add(x, NULL, &Q, 1));

        LbPackEntry pe[3] = { entry(1, 0, 40), entry(2, 80, 40), entry(5, 160, 40) };
        LbIndexPack P = pack(2, pe, 3);
        LbIndexMove pf[3] = { { Q.pack_id, 10 }, { Q.pack_id, 90 }, { make_id(4242), 7 } };
        LbIndexMove *pfv[1] = { pf };
        CHECK_OK(lb_index_add_copies(x, NULL, &P, 1, pfv));
        CHECK_OK(lb_index_forget(x, &Q.pack_id, 1, NULL, 0));
        check_at(x, &q[0], &P, 0);
        check_at(x, &q[1], &P, 80);

        LbPackEntry m[1] = { entry(1, 4096, 40) };
        LbIndexPack M = pack(3, m, 1);
        LbIndexMove mf[1] = { { P.pack_id, 0 } };
        LbIndexMove *mfv[1] = { mf };
        CHECK_OK(lb_index_add_copies(x, NULL, &M, 1, mfv));
        /* Q's remap now points at M already (P still present). */
        check_at(x, &q[0], &M, 4096);
        check_at(x, &q[1], &P, 80);
        CHECK_OK(lb_index_forget(x, &P.pack_id, 1, NULL, 0));
        check_at(x, &q[0], &M, 4096);
        check_gone(x, &q[1]);

        /* Forgetting M too leaves nothing behind that resolves. */
        CHECK_OK(lb_index_forget(x, &M.pack_id, 1, NULL, 0));
        check_gone(x, &q[0]);
        lb_index_free(x);
}

/* Many copies from many packs, into several new packs, in two batches. */
TEST(test_copies_many) {
        _cleanup_free_ char *d = new_dir();
        LbIndex *x;
        CHECK_OK(lb_index_open(d, &x));
        enum { SRC = 20, PER = 500 };
        static LbPackEntry src[SRC][PER];
        LbIndexPack S[SRC];
        for (unsigned s = 0; s < SRC; s++) {
                for (unsigned i = 0; i < PER; i++)
                        src[s][i] = entry(s * PER + i, (uint64_t) i * 100, 40);
                S[s] = pack(s, src[s], PER);
        }
        CHECK_OK(lb_index_add(x, NULL, S, SRC));
        /* Every other blob of every source is copied: batch 1 takes sources
         * 0-9 into two packs, batch 2 the rest into one. */
        for (int batch = 0; batch < 2; batch++) {
                unsigned first = batch ? 10 : 0, nsrc = 10, npk = batch ? 1 : 2;
                static LbPackEntry out[2][SRC * PER / 2];
                static LbIndexMove mv[2][SRC * PER / 2];
                LbIndexPack O[2];
                LbIndexMove *fromv[2];
                size_t cnt[2] = {};
                for (unsigned s = first; s < first + nsrc; s++)
                        for (unsigned i = 0; i < PER; i += 2) {
                                unsigned k = (s + i / 2) % npk;
                                out[k][cnt[k]] = src[s][i];
                                out[k][cnt[k]].offset = cnt[k] * 64;
                                mv[k][cnt[k]] = (LbIndexMove) { S[s].pack_id, src[s][i].offset };
                                cnt[k]++;
                        }
                for (unsigned k = 0; k < npk; k++) {
                        O[k] = pack(100 + batch * 2 + k, out[k], cnt[k]);
                        fromv[k] = mv[k];
                }
                CHECK_OK(lb_index_add_copies(x, NULL, O, npk, fromv));
                LbId gone[SRC];
                for (unsigned s = 0; s < nsrc; s++)
                        gone[s] = S[first + s].pack_id;
                CHECK_OK(lb_index_forget(x, gone, nsrc, NULL, 0));
                for (unsigned s = first; s < first + nsrc; s++)
                        for (unsigned i = 0; i < PER; i++) {
                                LbBlobLoc l;
                                int k = lb_index_lookup(x, &src[s][i].id, &l);
                                if (i % 2) {
                                        CHECK(k == -ENOENT);
                                        continue;
                                }
                                CHECK_OK(k);
                                unsigned o = (s + i / 2) % npk;
                                CHECK(lb_id_cmp(&l.pack, &O[o].pack_id) == 0);
                                CHECK(l.e.offset % 64 == 0 && l.e.offset / 64 < cnt[o]);
                                CHECK(lb_id_cmp(&out[o][l.e.offset / 64].id, &src[s][i].id) == 0);
                        }
        }
        lb_index_free(x);
}

/* An index of another layout (version 1 had no version record) is emptied
 * on open, so the next update merges every index file again. */
TEST(test_version) {
        _cleanup_free_ char *d = new_dir();
        CHECK_OK(lb_mkdir_p(d, 0700));
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi blobs, files;
        CHECK(mdb_env_create(&env) == 0);
        CHECK(mdb_env_set_maxdbs(env, 8) == 0);
        CHECK(mdb_env_open(env, d, 0, 0600) == 0);
        CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
        CHECK(mdb_dbi_open(txn, "blobs", MDB_CREATE, &blobs) == 0);
        CHECK(mdb_dbi_open(txn, "files", MDB_CREATE, &files) == 0);
        LbPackEntry e = entry(1, 0, 10);
        LbId file = make_id(5);
        uint8_t v1[54] = { 0 };
        MDB_val k = { LB_ID_SIZE, e.id.b }, v = { sizeof v1, v1 }, fk = { LB_ID_SIZE, file.b }, fv = { 0, NULL };
        CHECK(mdb_put(txn, blobs, &k, &v, 0) == 0);
        CHECK(mdb_put(txn, files, &fk, &fv, 0) == 0);
        CHECK(mdb_txn_commit(txn) == 0);
        mdb_env_close(env);

        LbIndex *x;
        CHECK_OK(lb_index_open(d, &x));
        CHECK_EQ_INT(lb_index_has_file(x, &file), 0);
        check_gone(x, &e);
        LbIndexPack A = pack(1, &e, 1);
        CHECK_OK(lb_index_add(x, &file, &A, 1));
        lb_index_free(x);

        /* The current version is kept across opens... */
        CHECK_OK(lb_index_open(d, &x));
        CHECK_EQ_INT(lb_index_has_file(x, &file), 1);
        check_at(x, &e, &A, 0);
        lb_index_free(x);

        /* ... and another one is not. */
        MDB_dbi meta;
        CHECK(mdb_env_create(&env) == 0);
        CHECK(mdb_env_set_maxdbs(env, 16) == 0);
        CHECK(mdb_env_open(env, d, 0, 0600) == 0);
        CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
        CHECK(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
        uint8_t ver[4];
        lb_put_le32(ver, LB_INDEX_VERSION + 1);
        MDB_val mk = { 7, (void *) "version" }, mv = { sizeof ver, ver };
        CHECK(mdb_put(txn, meta, &mk, &mv, 0) == 0);
        CHECK(mdb_txn_commit(txn) == 0);
        mdb_env_close(env);
        CHECK_OK(lb_index_open(d, &x));
        CHECK_EQ_INT(lb_index_has_file(x, &file), 0);
        check_gone(x, &e);
        lb_index_free(x);
}

int main(void) {
        CHECK_OK(lb_crypto_init());
        base = mkdtemp(tmpl);
        CHECK(base);
        RUN(test_add_lookup_forget);
        RUN(test_duplicates);
        RUN(test_copies);
        RUN(test_copies_twice);
        RUN(test_copies_many);
        RUN(test_version);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        return system(cmd) == 0 ? 0 : 1;
}
