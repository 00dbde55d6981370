/* SPDX-License-Identifier: MIT */
/*
 * Index file tests, plus tests/data/index-v1.idx and tests/data/bad/index-*.idx.
 *
 * `test-indexfile --write-golden DIR` regenerates DIR/index-v1.idx (from
 * DIR/pack-v1.pack, written by `test-pack --write-golden DIR`) and
 * DIR/bad/index-*.idx. Golden files are found as in test_pack.c.
 */
#include "store/crypto.h"
#include "store/indexfile.h"
#include "store/pack.h"
#include "store/util.h"
#include "tests.h"

static LbKeys K; /* master = 32 x 0x42 */
static LbKeys K_OTHER;

static void keys_init(void) {
        uint8_t m[LB_KEY_SIZE];
        CHECK_OK(lb_crypto_init());
        memset(m, 0x42, sizeof m);
        lb_keys_derive(&K, m);
        memset(m, 0x43, sizeof m);
        lb_keys_derive(&K_OTHER, m);
}

static char *data_path(const char *name) {
        const char *dir = getenv("LB_TEST_DATA");
        if (dir)
                return lb_path_join(dir, name);
        const char *f = __FILE__;
        const char *slash = strrchr(f, '/');
        CHECK(slash);
        return lb_strdup_printf("%.*s/../data/%s", (int) (slash - f), f, name);
}

static void read_path(const char *p, LbBuf *ret) {
        int r = lb_read_file(p, 1u << 20, ret);
        if (r < 0) {
                fprintf(stderr, "Failed to read %s: %s (set LB_TEST_DATA to the tests/data directory)\n", p,
                        strerror(-r));
                exit(1);
        }
}

static void read_data(const char *name, LbBuf *ret) {
        _cleanup_free_ char *p = data_path(name);
        CHECK(p);
        read_path(p, ret);
}

/* A pack record of n synthetic entries laid out back to back, with the exact pack size. */
static LbIndexPack fake_pack(size_t n, uint32_t seed) {
        LbIndexPack p = { .n = n };
        p.entries = calloc(LB_MAX(n, (size_t) 1), sizeof *p.entries);
        CHECK(p.entries);
        uint64_t off = 0;
        for (size_t i = 0; i < n; i++) {
                LbPackEntry *e = &p.entries[i];
                uint32_t raw = (uint32_t) (i * 131 + seed) % 5000;
                e->codec = i % 2 ? LB_CODEC_ZSTD : LB_CODEC_RAW;
                e->raw_len = raw;
                e->payload_len = e->codec == LB_CODEC_RAW ? raw : raw / 3;
                e->stored_len = lb_pad_length(e->payload_len) + LB_SEAL_OVERHEAD;
                e->type = (uint8_t) (LB_BLOB_DATA + i % 3);
                e->offset = off;
                off += e->stored_len;
                for (int j = 0; j < LB_ID_SIZE; j++)
                        e->id.b[j] = (uint8_t) (i + j * seed);
        }
        for (int j = 0; j < LB_ID_SIZE; j++)
                p.pack_id.b[j] = (uint8_t) (seed * 3 + (uint32_t) j);
        p.pack_size = off + LB_SEAL_OVERHEAD + 8 + n * LB_ENTRY_SIZE + LB_PACK_FOOTER_SIZE;
        return p;
}

static bool entry_eq(const LbPackEntry *a, const LbPackEntry *b) {
        return lb_id_cmp(&a->id, &b->id) == 0 && a->offset == b->offset && a->stored_len == b->stored_len &&
               a->payload_len == b->payload_len && a->raw_len == b->raw_len && a->type == b->type &&
               a->codec == b->codec;
}

static void check_packs_eq(const LbIndexPack *a, const LbIndexPack *b, size_t n) {
        for (size_t i = 0; i < n; i++) {
                CHECK(lb_id_cmp(&a[i].pack_id, &b[i].pack_id) == 0);
                CHECK(a[i].pack_size == b[i].pack_size);
                CHECK(a[i].n == b[i].n);
                for (size_t j = 0; j < a[i].n; j++)
                        CHECK(entry_eq(&a[i].entries[j], &b[i].entries[j]));
        }
}

static void free_fake(LbIndexPack *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(p[i].entries);
}

TEST(test_roundtrip) {
        LbIndexPack packs[] = { fake_pack(0, 1), fake_pack(1, 2), fake_pack(3, 3), fake_pack(50, 4), fake_pack(7, 5) };
        size_t n = LB_ARRAY_SIZE(packs);
        _cleanup_buf_ LbBuf out = {};
        CHECK_OK(lb_indexfile_encode(&K, packs, n, &out));
        size_t plain = 8;
        for (size_t i = 0; i < n; i++)
                plain += 44 + packs[i].n * LB_ENTRY_SIZE;
        CHECK(out.len == plain + LB_SEAL_OVERHEAD);

        LbIndexPack *d = NULL;
        size_t dn = 0;
        CHECK_OK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn));
        CHECK(dn == n);
        check_packs_eq(packs, d, n);
        lb_index_packs_free(d, dn);

        /* out is replaced, not appended to */
        CHECK_OK(lb_indexfile_encode(&K, packs, 1, &out));
        CHECK(out.len == 8 + 44 + LB_SEAL_OVERHEAD);
        CHECK_OK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn));
        CHECK(dn == 1 && d[0].n == 0);
        lb_index_packs_free(d, dn);

        /* no packs at all */
        CHECK_OK(lb_indexfile_encode(&K, NULL, 0, &out));
        CHECK_OK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn));
        CHECK(dn == 0);
        lb_index_packs_free(d, dn);
        lb_index_packs_free(NULL, 0);
        free_fake(packs, n);
}

TEST(test_real_packs) {
        /* Index records taken from real packs round-trip too. */
        LbIndexPack packs[3] = {};
        _cleanup_buf_ LbBuf s = {};
        LbBuf bytes[3] = {};
        for (size_t i = 0; i < 3; i++) {
                LbPackWriter *w = NULL;
                CHECK_OK(lb_pack_writer_new(&K, &w));
                for (size_t j = 0; j < 4 + i; j++) {
                        char text[64];
                        int len = snprintf(text, sizeof text, "blob %zu of pack %zu", j, i);
                        LbId id;
                        LbPackEntry e;
                        lb_chunk_id(&K, text, (size_t) len, &id);
                        lb_buf_clear(&s);
                        CHECK_OK(lb_blob_encode(&K, LB_BLOB_DATA, &id, text, (size_t) len, 3, &s, &e));
                        CHECK_OK(lb_pack_writer_add(w, &e, s.data, s.len));
                }
                CHECK_OK(lb_pack_writer_finish(w, &bytes[i], &packs[i].entries, &packs[i].n));
                lb_pack_writer_free(w);
                lb_object_id(bytes[i].data, bytes[i].len, &packs[i].pack_id);
                packs[i].pack_size = bytes[i].len;
        }
        _cleanup_buf_ LbBuf out = {};
        CHECK_OK(lb_indexfile_encode(&K, packs, 3, &out));
        LbIndexPack *d = NULL;
        size_t dn;
        CHECK_OK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn));
        CHECK(dn == 3);
        check_packs_eq(packs, d, 3);
        /* and the entries still open their blobs */
        _cleanup_buf_ LbBuf o = {};
        for (size_t i = 0; i < 3; i++)
                for (size_t j = 0; j < d[i].n; j++) {
                        const LbPackEntry *e = &d[i].entries[j];
                        CHECK_OK(lb_blob_decode(&K, e, bytes[i].data + e->offset, e->stored_len, &o));
                        CHECK(o.len == e->raw_len && memcmp(o.data, "blob ", 5) == 0);
                }
        lb_index_packs_free(d, dn);
        free_fake(packs, 3);
        for (size_t i = 0; i < 3; i++)
                lb_buf_free(&bytes[i]);
}

TEST(test_corruption) {
        LbIndexPack packs[] = { fake_pack(2, 7), fake_pack(1, 8) };
        _cleanup_buf_ LbBuf out = {};
        CHECK_OK(lb_indexfile_encode(&K, packs, 2, &out));
        for (size_t i = 0; i < out.len; i++)
                for (int bit = 0; bit < 8; bit++) {
                        LbIndexPack *d = NULL;
                        size_t dn;
                        out.data[i] ^= (uint8_t) (1u << bit);
                        CHECK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn) == -EBADMSG);
                        CHECK(!d);
                        out.data[i] ^= (uint8_t) (1u << bit);
                }
        for (size_t len = 0; len < out.len; len++) {
                LbIndexPack *d = NULL;
                size_t dn;
                CHECK(lb_indexfile_decode(&K, out.data, len, &d, &dn) == -EBADMSG);
        }
        LbIndexPack *d = NULL;
        size_t dn;
        CHECK(lb_indexfile_decode(&K_OTHER, out.data, out.len, &d, &dn) == -EBADMSG);
        CHECK(lb_indexfile_decode(&K, out.data, LB_INDEX_MAX_SIZE + 1ull, &d, &dn) == -EBADMSG);
        CHECK_OK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn));
        lb_index_packs_free(d, dn);
        free_fake(packs, 2);
}

TEST(test_encode_invalid) {
        LbIndexPack p = fake_pack(3, 9);
        _cleanup_buf_ LbBuf out = {};
        CHECK_OK(lb_buf_append(&out, "keep", 4));

        p.pack_size -= 1; /* last entry now overlaps the TOC */
        CHECK(lb_indexfile_encode(&K, &p, 1, &out) == -EINVAL);
        p.pack_size = 10; /* smaller than footer + TOC */
        CHECK(lb_indexfile_encode(&K, &p, 1, &out) == -EINVAL);
        p.pack_size = LB_PACK_MAX_SIZE + 1;
        CHECK(lb_indexfile_encode(&K, &p, 1, &out) == -EINVAL);
        p.pack_size = LB_PACK_MAX_SIZE;
        CHECK_OK(lb_indexfile_encode(&K, &p, 1, &out));
        p.entries[1].type = 0;
        CHECK(lb_indexfile_encode(&K, &p, 1, &out) == -EINVAL);
        p.entries[1].type = LB_BLOB_DATA;
        p.entries[1].stored_len += 1;
        CHECK(lb_indexfile_encode(&K, &p, 1, &out) == -EINVAL);
        /* out is untouched by a failed encode */
        LbIndexPack *d = NULL;
        size_t dn;
        CHECK_OK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn));
        lb_index_packs_free(d, dn);

        LbIndexPack huge = { .n = LB_PACK_MAX_ENTRIES + 1, .pack_size = LB_PACK_MAX_SIZE };
        CHECK(lb_indexfile_encode(&K, &huge, 1, &out) == -EINVAL);
        free_fake(&p, 1);
}

TEST(test_encode_too_big) {
        /* Five full packs exceed LB_INDEX_MAX_SIZE; all share one entry array. */
        size_t n = LB_PACK_MAX_ENTRIES;
        LbIndexPack p = { .n = n };
        p.entries = calloc(n, sizeof *p.entries);
        CHECK(p.entries);
        for (size_t i = 0; i < n; i++)
                p.entries[i] = (LbPackEntry) { .offset = i * LB_SEAL_OVERHEAD, .stored_len = LB_SEAL_OVERHEAD,
                                               .type = LB_BLOB_DATA };
        p.pack_size = (uint64_t) n * LB_SEAL_OVERHEAD + LB_SEAL_OVERHEAD + 8 + n * LB_ENTRY_SIZE + 16;
        LbIndexPack packs[5] = { p, p, p, p, p };
        _cleanup_buf_ LbBuf out = {};
        CHECK(lb_indexfile_encode(&K, packs, 5, &out) == -EFBIG);
        CHECK(out.len == 0);
        /* one full pack is fine */
        CHECK_OK(lb_indexfile_encode(&K, packs, 1, &out));
        LbIndexPack *d = NULL;
        size_t dn;
        CHECK_OK(lb_indexfile_decode(&K, out.data, out.len, &d, &dn));
        CHECK(dn == 1 && d[0].n == n && d[0].entries[n - 1].offset == (n - 1) * LB_SEAL_OVERHEAD);
        lb_index_packs_free(d, dn);
        free(p.entries);
}

/* ---- hand-made plaintexts, sealed with the right key -------------------- */

static void seal_plain(const LbKeys *k, const LbBuf *plain, LbBuf *out) {
        CHECK_OK(lb_seal_buf(k->meta_key, LB_INDEX_AD, plain->data, plain->len, out));
}

/* "LBIX" || npacks || one pack record of p (count field overridable). */
static void plain_one(const char *magic, uint32_t npacks, const LbIndexPack *p, uint32_t count, LbBuf *out) {
        lb_buf_clear(out);
        CHECK_OK(lb_buf_append(out, magic, 4));
        CHECK_OK(lb_buf_append_le32(out, npacks));
        CHECK_OK(lb_buf_append(out, p->pack_id.b, LB_ID_SIZE));
        CHECK_OK(lb_buf_append_le64(out, p->pack_size));
        CHECK_OK(lb_buf_append_le32(out, count));
        for (size_t i = 0; i < p->n; i++) {
                uint8_t *b;
                CHECK_OK(lb_buf_grow(out, LB_ENTRY_SIZE, &b));
                lb_entry_encode(&p->entries[i], b);
        }
}

typedef void (*BadMaker)(const LbIndexPack *p, LbBuf *plain);

static void bad_magic(const LbIndexPack *p, LbBuf *plain) { plain_one("LBIY", 1, p, (uint32_t) p->n, plain); }
static void bad_npacks_huge(const LbIndexPack *p, LbBuf *plain) { plain_one(LB_INDEX_MAGIC, UINT32_MAX, p, (uint32_t) p->n, plain); }
static void bad_npacks_more(const LbIndexPack *p, LbBuf *plain) { plain_one(LB_INDEX_MAGIC, 2, p, (uint32_t) p->n, plain); }
static void bad_count_huge(const LbIndexPack *p, LbBuf *plain) { plain_one(LB_INDEX_MAGIC, 1, p, UINT32_MAX, plain); }
static void bad_count_exceeds(const LbIndexPack *p, LbBuf *plain) { plain_one(LB_INDEX_MAGIC, 1, p, 1000, plain); }
static void bad_trailing(const LbIndexPack *p, LbBuf *plain) {
        plain_one(LB_INDEX_MAGIC, 1, p, (uint32_t) p->n, plain);
        CHECK_OK(lb_buf_append_u8(plain, 0));
}
static void bad_entry_oob(const LbIndexPack *p, LbBuf *plain) {
        LbIndexPack q = *p;
        q.pack_size -= 1;
        plain_one(LB_INDEX_MAGIC, 1, &q, (uint32_t) q.n, plain);
}
static void bad_pack_too_small(const LbIndexPack *p, LbBuf *plain) {
        LbIndexPack q = *p;
        q.pack_size = LB_PACK_FOOTER_SIZE + LB_SEAL_OVERHEAD + 8 + q.n * LB_ENTRY_SIZE - 1;
        plain_one(LB_INDEX_MAGIC, 1, &q, (uint32_t) q.n, plain);
}
static void bad_entry(const LbIndexPack *p, LbBuf *plain) {
        plain_one(LB_INDEX_MAGIC, 1, p, (uint32_t) p->n, plain);
        plain->data[8 + 44 + 55] = 1; /* reserved of the first entry */
}
static void bad_short(const LbIndexPack *p, LbBuf *plain) {
        plain_one(LB_INDEX_MAGIC, 1, p, (uint32_t) p->n, plain);
        plain->len = 7;
}

static const struct {
        const char *name;
        BadMaker make; /* NULL: made from the golden bytes, see write_golden() */
        int error;
} BAD_INDEXES[] = {
        { "bad/index-short.idx", NULL, -EBADMSG },
        { "bad/index-truncated.idx", NULL, -EBADMSG },
        { "bad/index-flipped.idx", NULL, -EBADMSG },
        { "bad/index-wrong-key.idx", NULL, -EBADMSG },
        { "bad/index-bad-magic.idx", bad_magic, -EBADMSG },
        { "bad/index-npacks-huge.idx", bad_npacks_huge, -EBADMSG },
        { "bad/index-npacks-more.idx", bad_npacks_more, -EBADMSG },
        { "bad/index-count-huge.idx", bad_count_huge, -EBADMSG },
        { "bad/index-count-exceeds-input.idx", bad_count_exceeds, -EBADMSG },
        { "bad/index-trailing-bytes.idx", bad_trailing, -EBADMSG },
        { "bad/index-entry-out-of-bounds.idx", bad_entry_oob, -EBADMSG },
        { "bad/index-pack-too-small.idx", bad_pack_too_small, -EBADMSG },
        { "bad/index-entry-reserved.idx", bad_entry, -EBADMSG },
        { "bad/index-plaintext-short.idx", bad_short, -EBADMSG },
};

TEST(test_decode_crafted) {
        LbIndexPack p = fake_pack(3, 11);
        _cleanup_buf_ LbBuf plain = {}, sealed = {};
        LbIndexPack *d = NULL;
        size_t dn;
        plain_one(LB_INDEX_MAGIC, 1, &p, 3, &plain);
        seal_plain(&K, &plain, &sealed);
        CHECK_OK(lb_indexfile_decode(&K, sealed.data, sealed.len, &d, &dn));
        check_packs_eq(&p, d, 1);
        lb_index_packs_free(d, dn);
        for (size_t i = 0; i < LB_ARRAY_SIZE(BAD_INDEXES); i++) {
                if (!BAD_INDEXES[i].make)
                        continue;
                BAD_INDEXES[i].make(&p, &plain);
                seal_plain(&K, &plain, &sealed);
                d = NULL;
                int r = lb_indexfile_decode(&K, sealed.data, sealed.len, &d, &dn);
                if (r != BAD_INDEXES[i].error) {
                        fprintf(stderr, "%s: got %d, expected %d\n", BAD_INDEXES[i].name, r, BAD_INDEXES[i].error);
                        exit(1);
                }
                CHECK(!d);
        }
        free_fake(&p, 1);
}

/* ---- golden files --------------------------------------------------------- */

/* The second pack of index-v1.idx holds these two blobs. */
static const char *const SECOND[] = { "second pack, first blob", "second pack, second blob" };

TEST(test_golden_index) {
        _cleanup_buf_ LbBuf idx = {}, pack = {};
        read_data("index-v1.idx", &idx);
        read_data("pack-v1.pack", &pack);
        LbIndexPack *d = NULL;
        size_t dn;
        CHECK_OK(lb_indexfile_decode(&K, idx.data, idx.len, &d, &dn));
        CHECK_EQ_INT(dn, 2);

        /* pack 0 is tests/data/pack-v1.pack: same id, size and TOC */
        LbId id;
        lb_object_id(pack.data, pack.len, &id);
        CHECK(lb_id_cmp(&d[0].pack_id, &id) == 0);
        CHECK(d[0].pack_size == pack.len);
        _cleanup_free_ LbPackEntry *toc = NULL;
        size_t nt;
        CHECK_OK(lb_pack_parse(&K, pack.data, pack.len, &toc, &nt));
        CHECK(d[0].n == 3 && nt == 3);
        for (size_t i = 0; i < nt; i++)
                CHECK(entry_eq(&d[0].entries[i], &toc[i]));

        /* pack 1: two raw data blobs */
        CHECK_EQ_INT(d[1].n, 2);
        for (size_t i = 0; i < 2; i++) {
                LbId want;
                lb_chunk_id(&K, SECOND[i], strlen(SECOND[i]), &want);
                bool found = false;
                for (size_t j = 0; j < 2; j++) {
                        const LbPackEntry *e = &d[1].entries[j];
                        if (lb_id_cmp(&e->id, &want) != 0)
                                continue;
                        found = true;
                        CHECK(e->type == LB_BLOB_DATA && e->codec == LB_CODEC_RAW);
                        CHECK(e->raw_len == strlen(SECOND[i]) && e->payload_len == e->raw_len);
                }
                CHECK(found);
        }
        CHECK(d[1].pack_size == d[1].entries[0].stored_len + d[1].entries[1].stored_len + 48 + 2 * 56 + 16);
        lb_index_packs_free(d, dn);
}

TEST(test_golden_bad_indexes) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(BAD_INDEXES); i++) {
                _cleanup_buf_ LbBuf b = {};
                read_data(BAD_INDEXES[i].name, &b);
                LbIndexPack *d = NULL;
                size_t dn;
                int r = lb_indexfile_decode(&K, b.data, b.len, &d, &dn);
                if (r != BAD_INDEXES[i].error) {
                        fprintf(stderr, "%s: got %d (%s), expected %d\n", BAD_INDEXES[i].name, r,
                                r < 0 ? strerror(-r) : "success", BAD_INDEXES[i].error);
                        exit(1);
                }
                CHECK(!d);
        }
}

/* ---- generator -------------------------------------------------------------- */

static int write_golden(const char *dir) {
        _cleanup_free_ char *bad_dir = lb_path_join(dir, "bad");
        _cleanup_free_ char *pack_path = lb_path_join(dir, "pack-v1.pack");
        CHECK(bad_dir && pack_path);
        CHECK_OK(lb_mkdir_p(bad_dir, 0755));

        LbIndexPack packs[2] = {};
        _cleanup_buf_ LbBuf pack = {}, second = {}, s = {};
        read_path(pack_path, &pack);
        lb_object_id(pack.data, pack.len, &packs[0].pack_id);
        packs[0].pack_size = pack.len;
        CHECK_OK(lb_pack_parse(&K, pack.data, pack.len, &packs[0].entries, &packs[0].n));

        LbPackWriter *w = NULL;
        CHECK_OK(lb_pack_writer_new(&K, &w));
        for (size_t i = 0; i < 2; i++) {
                LbId id;
                LbPackEntry e;
                lb_chunk_id(&K, SECOND[i], strlen(SECOND[i]), &id);
                lb_buf_clear(&s);
                CHECK_OK(lb_blob_encode(&K, LB_BLOB_DATA, &id, SECOND[i], strlen(SECOND[i]), 0, &s, &e));
                CHECK_OK(lb_pack_writer_add(w, &e, s.data, s.len));
        }
        CHECK_OK(lb_pack_writer_finish(w, &second, &packs[1].entries, &packs[1].n));
        lb_pack_writer_free(w);
        lb_object_id(second.data, second.len, &packs[1].pack_id);
        packs[1].pack_size = second.len;

        _cleanup_buf_ LbBuf idx = {}, bad = {}, plain = {};
        CHECK_OK(lb_indexfile_encode(&K, packs, 2, &idx));
        CHECK_OK(lb_write_file_atomic(dir, "index-v1.idx", idx.data, idx.len, 0644));

        CHECK_OK(lb_write_file_atomic(bad_dir, "index-short.idx", idx.data, 40, 0644));
        CHECK_OK(lb_write_file_atomic(bad_dir, "index-truncated.idx", idx.data, idx.len - 1, 0644));
        CHECK_OK(lb_buf_append(&bad, idx.data, idx.len));
        bad.data[bad.len / 2] ^= 0x04;
        CHECK_OK(lb_write_file_atomic(bad_dir, "index-flipped.idx", bad.data, bad.len, 0644));
        CHECK_OK(lb_indexfile_encode(&K_OTHER, packs, 2, &bad));
        CHECK_OK(lb_write_file_atomic(bad_dir, "index-wrong-key.idx", bad.data, bad.len, 0644));

        for (size_t i = 0; i < LB_ARRAY_SIZE(BAD_INDEXES); i++) {
                if (!BAD_INDEXES[i].make)
                        continue;
                BAD_INDEXES[i].make(&packs[1], &plain);
                seal_plain(&K, &plain, &bad);
                CHECK_OK(lb_write_file_atomic(bad_dir, BAD_INDEXES[i].name + 4, bad.data, bad.len, 0644));
        }
        free_fake(packs, 2);
        return 0;
}

int main(int argc, char **argv) {
        keys_init();
        if (argc == 3 && strcmp(argv[1], "--write-golden") == 0)
                return write_golden(argv[2]);

        RUN(test_roundtrip);
        RUN(test_real_packs);
        RUN(test_corruption);
        RUN(test_encode_invalid);
        RUN(test_encode_too_big);
        RUN(test_decode_crafted);
        RUN(test_golden_index);
        RUN(test_golden_bad_indexes);
        return 0;
}
