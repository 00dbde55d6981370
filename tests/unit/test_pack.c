/* SPDX-License-Identifier: MIT */
/*
 * Pack and blob codec tests, plus the golden files in tests/data/.
 *
 * The golden files are read from $LB_TEST_DATA, or else from tests/data
 * found through __FILE__ (relative to the build root, where `meson test`
 * runs). `test-pack --write-golden DIR` regenerates DIR/pack-v1.pack and
 * DIR/bad/pack-*.pack; nonces are random, so new files differ byte for byte
 * but must still pass this test.
 */
#include <pthread.h>
#include <sys/uio.h>
#include <zstd.h>

#include "store/crypto.h"
#include "store/pack.h"
#include "store/util.h"
#include "tests.h"

static LbKeys K;      /* master = 32 x 0x42, as in the golden files and fuzzers */
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
        /* __FILE__ is ".../tests/unit/test_pack.c". */
        const char *f = __FILE__;
        const char *slash = strrchr(f, '/');
        CHECK(slash);
        return lb_strdup_printf("%.*s/../data/%s", (int) (slash - f), f, name);
}

static void read_data(const char *name, LbBuf *ret) {
        _cleanup_free_ char *p = data_path(name);
        CHECK(p);
        int r = lb_read_file(p, 1u << 20, ret);
        if (r < 0) {
                fprintf(stderr, "Failed to read %s: %s (set LB_TEST_DATA to the tests/data directory)\n", p,
                        strerror(-r));
                exit(1);
        }
}

/* Deterministic pseudo-random bytes (xorshift), incompressible for zstd. */
static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[i] = (uint8_t) (x >> 32);
        }
}

static void fill_text(uint8_t *p, size_t n, uint64_t seed) {
        static const char words[] = "the quick brown fox jumps over the lazy dog ";
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) words[(i + seed) % (sizeof words - 1)];
}

static void encode(const void *raw, size_t n, uint8_t type, int level, LbBuf *out, LbPackEntry *e) {
        LbId id;
        lb_chunk_id(&K, raw, n, &id);
        lb_buf_clear(out);
        CHECK_OK(lb_blob_encode(&K, type, &id, raw, n, level, out, e));
        CHECK(out->len == e->stored_len);
}

static void check_roundtrip(const void *raw, size_t n, int level, uint8_t want_codec) {
        _cleanup_buf_ LbBuf s = {}, o = {};
        LbPackEntry e;
        encode(raw, n, LB_BLOB_DATA, level, &s, &e);
        CHECK_EQ_INT(e.codec, want_codec);
        CHECK_EQ_INT(e.raw_len, n);
        CHECK_EQ_INT(e.stored_len, lb_pad_length(e.payload_len) + LB_SEAL_OVERHEAD);
        if (want_codec == LB_CODEC_ZSTD)
                CHECK(e.payload_len < e.raw_len);
        else
                CHECK_EQ_INT(e.payload_len, n);
        CHECK_OK(lb_blob_decode(&K, &e, s.data, s.len, &o));
        CHECK(o.len == n);
        CHECK(n == 0 || memcmp(o.data, raw, n) == 0);
}

/* Seals an arbitrary plaintext as a blob of entry e (the AD layout of format.h),
 * to reach the checks that sit behind the AEAD. */
static void seal_blob(const LbPackEntry *e, const void *plain, size_t n, LbBuf *out) {
        uint8_t ad[LB_BLOB_AD_SIZE];
        memcpy(ad, "LBBLOB1\0", 8);
        ad[8] = e->type;
        ad[9] = e->codec;
        memcpy(ad + 10, e->id.b, LB_ID_SIZE);
        lb_put_le32(ad + 42, e->payload_len);
        lb_put_le32(ad + 46, e->raw_len);
        lb_buf_clear(out);
        uint8_t *p;
        CHECK_OK(lb_buf_grow(out, n + LB_SEAL_OVERHEAD, &p));
        lb_seal(K.data_key, ad, sizeof ad, plain, n, p);
}

/* Seals a TOC with the given magic, count field and entries. */
static void seal_toc(const LbKeys *k, const char *magic, uint32_t count, const LbPackEntry *e, size_t n, LbBuf *out) {
        _cleanup_buf_ LbBuf t = {};
        CHECK_OK(lb_buf_append(&t, magic, 4));
        CHECK_OK(lb_buf_append_le32(&t, count));
        for (size_t i = 0; i < n; i++) {
                uint8_t *p;
                CHECK_OK(lb_buf_grow(&t, LB_ENTRY_SIZE, &p));
                lb_entry_encode(&e[i], p);
        }
        lb_buf_clear(out);
        uint8_t *p;
        CHECK_OK(lb_buf_grow(out, t.len + LB_SEAL_OVERHEAD, &p));
        lb_seal(k->meta_key, LB_TOC_AD, strlen(LB_TOC_AD), t.data, t.len, p);
}

/* Replaces the TOC of pack (blobs_end bytes of blobs) with a freshly sealed one. */
static void rebuild_pack(const LbBuf *pack, uint64_t blobs_end, const char *magic, uint32_t count,
                         const LbPackEntry *e, size_t n, LbBuf *out) {
        _cleanup_buf_ LbBuf toc = {};
        seal_toc(&K, magic, count, e, n, &toc);
        lb_buf_clear(out);
        CHECK_OK(lb_buf_append(out, pack->data, (size_t) blobs_end));
        CHECK_OK(lb_buf_append(out, toc.data, toc.len));
        uint8_t f[LB_PACK_FOOTER_SIZE];
        lb_put_le32(f, (uint32_t) toc.len);
        lb_put_le32(f + 4, LB_FORMAT_VERSION);
        memcpy(f + 8, LB_PACK_MAGIC, 8);
        CHECK_OK(lb_buf_append(out, f, sizeof f));
}

typedef struct Blob {
        uint8_t type;
        int level;
        size_t len;
        uint8_t *raw;
} Blob;

static void make_pack(Blob *blobs, size_t n, LbBuf *ret, LbPackEntry **ret_e, size_t *ret_n) {
        LbPackWriter *w = NULL;
        CHECK_OK(lb_pack_writer_new(&K, &w));
        _cleanup_buf_ LbBuf s = {};
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
                LbPackEntry e;
                encode(blobs[i].raw, blobs[i].len, blobs[i].type, blobs[i].level, &s, &e);
                CHECK_OK(lb_pack_writer_add(w, &e, s.data, s.len));
                total += s.len;
        }
        CHECK(lb_pack_writer_count(w) == n);
        CHECK(lb_pack_writer_size(w) == total);
        CHECK_OK(lb_pack_writer_finish(w, ret, ret_e, ret_n));
        CHECK(*ret_n == n);
        CHECK(lb_pack_writer_count(w) == 0);
        lb_pack_writer_free(w);
}

static Blob *make_blobs(size_t n) {
        Blob *b = calloc(n, sizeof *b);
        CHECK(b);
        for (size_t i = 0; i < n; i++) {
                b[i].type = (uint8_t) (LB_BLOB_DATA + i % 3);
                b[i].level = i % 2 ? 3 : 0;
                b[i].len = 100 + i * 37;
                b[i].raw = malloc(b[i].len);
                CHECK(b[i].raw);
                if (i % 4 == 0)
                        fill_random(b[i].raw, b[i].len, i);
                else
                        fill_text(b[i].raw, b[i].len, i);
        }
        return b;
}

static void free_blobs(Blob *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(b[i].raw);
        free(b);
}

static const Blob *find_blob(const Blob *b, size_t n, const LbId *id) {
        for (size_t i = 0; i < n; i++) {
                LbId x;
                lb_chunk_id(&K, b[i].raw, b[i].len, &x);
                if (lb_id_cmp(&x, id) == 0)
                        return &b[i];
        }
        return NULL;
}

static bool entry_eq(const LbPackEntry *a, const LbPackEntry *b) {
        return lb_id_cmp(&a->id, &b->id) == 0 && a->offset == b->offset && a->stored_len == b->stored_len &&
               a->payload_len == b->payload_len && a->raw_len == b->raw_len && a->type == b->type &&
               a->codec == b->codec && lb_id_cmp(&a->base, &b->base) == 0;
}

/* ---- entries ------------------------------------------------------------ */

static LbPackEntry valid_entry(uint8_t type, uint8_t codec, uint32_t payload, uint32_t raw) {
        LbPackEntry e = {
                .offset = 0x0102030405060708ull,
                .stored_len = lb_pad_length(payload) + LB_SEAL_OVERHEAD,
                .payload_len = payload,
                .raw_len = raw,
                .type = type,
                .codec = codec,
        };
        for (int i = 0; i < LB_ID_SIZE; i++)
                e.id.b[i] = (uint8_t) (i * 7 + type);
        return e;
}

static int decode_mut(const LbPackEntry *e, void (*mut)(uint8_t *b)) {
        uint8_t b[LB_ENTRY_SIZE];
        LbPackEntry d;
        lb_entry_encode(e, b);
        if (mut)
                mut(b);
        return lb_entry_decode(b, &d);
}

static void mut_reserved(uint8_t *b) { b[55] = 1; }
static void mut_type0(uint8_t *b) { b[52] = 0; }
static void mut_type4(uint8_t *b) { b[52] = 4; }
static void mut_codec3(uint8_t *b) { b[53] = 3; }
static void mut_codec2(uint8_t *b) { b[53] = 2; }

TEST(test_entry_roundtrip) {
        static const uint8_t types[] = { LB_BLOB_DATA, LB_BLOB_TREE, LB_BLOB_CHUNKLIST };
        for (size_t t = 0; t < LB_ARRAY_SIZE(types); t++) {
                LbPackEntry es[] = {
                        valid_entry(types[t], LB_CODEC_RAW, 0, 0),
                        valid_entry(types[t], LB_CODEC_RAW, 1000, 1000),
                        valid_entry(types[t], LB_CODEC_RAW, LB_BLOB_RAW_MAX, LB_BLOB_RAW_MAX),
                        valid_entry(types[t], LB_CODEC_ZSTD, 17, 4096),
                        valid_entry(types[t], LB_CODEC_ZSTD, 12345, LB_BLOB_RAW_MAX),
                };
                for (size_t i = 0; i < LB_ARRAY_SIZE(es); i++) {
                        uint8_t b[LB_ENTRY_SIZE], b2[LB_ENTRY_SIZE];
                        LbPackEntry d;
                        lb_entry_encode(&es[i], b);
                        CHECK_OK(lb_entry_decode(b, &d));
                        CHECK(entry_eq(&es[i], &d));
                        lb_entry_encode(&d, b2);
                        CHECK(memcmp(b, b2, LB_ENTRY_SIZE) == 0);
                }
        }
        /* Byte layout: id || offset || stored || payload || raw || type || codec || reserved. */
        LbPackEntry e = valid_entry(LB_BLOB_TREE, LB_CODEC_ZSTD, 17, 4096);
        uint8_t b[LB_ENTRY_SIZE];
        lb_entry_encode(&e, b);
        CHECK(memcmp(b, e.id.b, 32) == 0);
        CHECK(lb_get_le64(b + 32) == e.offset);
        CHECK(lb_get_le32(b + 40) == e.stored_len);
        CHECK(lb_get_le32(b + 44) == 17 && lb_get_le32(b + 48) == 4096);
        CHECK(b[52] == LB_BLOB_TREE && b[53] == LB_CODEC_ZSTD && b[54] == 0 && b[55] == 0);
}

TEST(test_entry_invalid) {
        LbPackEntry e = valid_entry(LB_BLOB_DATA, LB_CODEC_RAW, 1000, 1000);
        CHECK_OK(decode_mut(&e, NULL));
        CHECK(decode_mut(&e, mut_reserved) == -EBADMSG);
        CHECK(decode_mut(&e, mut_type0) == -EBADMSG);
        CHECK(decode_mut(&e, mut_type4) == -EBADMSG);
        CHECK(decode_mut(&e, mut_codec3) == -EBADMSG);
        CHECK_OK(decode_mut(&e, mut_codec2)); /* a data chunk may be a delta */
        LbPackEntry t = valid_entry(LB_BLOB_TREE, LB_CODEC_ZSTD, 17, 4096);
        CHECK(decode_mut(&t, mut_codec2) == -EBADMSG); /* a tree may not */

        LbPackEntry x = e;
        x.raw_len = 999; /* raw: payload_len must equal raw_len */
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
        x = valid_entry(LB_BLOB_DATA, LB_CODEC_ZSTD, 100, LB_BLOB_RAW_MAX + 1);
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
        x = e;
        x.stored_len = LB_SEAL_OVERHEAD - 1;
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
        x = e;
        x.stored_len = 1000 + LB_SEAL_OVERHEAD - 1; /* payload does not fit */
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
        x = e;
        x.stored_len += 1; /* not the Padmé length */
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
        x = e;
        x.stored_len = 1000 + LB_SEAL_OVERHEAD; /* unpadded */
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
        /* A payload whose padded length wraps past 2^32. */
        x = valid_entry(LB_BLOB_DATA, LB_CODEC_ZSTD, 0, 10);
        x.payload_len = UINT32_MAX - LB_SEAL_OVERHEAD;
        x.stored_len = UINT32_MAX;
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
        x.stored_len = LB_SEAL_OVERHEAD;
        CHECK(decode_mut(&x, NULL) == -EBADMSG);
}

/* ---- blobs -------------------------------------------------------------- */

TEST(test_blob_roundtrip) {
        uint8_t buf[20000];
        fill_random(buf, sizeof buf, 1);
        check_roundtrip(buf, sizeof buf, 0, LB_CODEC_RAW);
        check_roundtrip(buf, sizeof buf, 3, LB_CODEC_RAW); /* incompressible: stays raw */
        check_roundtrip(buf, 1, 3, LB_CODEC_RAW);
        fill_text(buf, sizeof buf, 0);
        check_roundtrip(buf, sizeof buf, 0, LB_CODEC_RAW);
        check_roundtrip(buf, sizeof buf, 3, LB_CODEC_ZSTD);
        check_roundtrip(buf, sizeof buf, 19, LB_CODEC_ZSTD);
        check_roundtrip(buf, sizeof buf, 1000, LB_CODEC_ZSTD); /* clamped to the maximum level */
        check_roundtrip(buf, 0, 0, LB_CODEC_RAW);
        check_roundtrip(buf, 0, 3, LB_CODEC_RAW);

        /* An empty blob is just the seal overhead. */
        _cleanup_buf_ LbBuf s = {}, o = {};
        LbPackEntry e;
        encode("", 0, LB_BLOB_TREE, 3, &s, &e);
        CHECK(e.stored_len == LB_SEAL_OVERHEAD && e.payload_len == 0 && e.type == LB_BLOB_TREE);

        /* encode appends to out */
        CHECK_OK(lb_buf_append(&s, "xyz", 3));
        LbId id;
        lb_chunk_id(&K, buf, 100, &id);
        CHECK_OK(lb_blob_encode(&K, LB_BLOB_DATA, &id, buf, 100, 0, &s, &e));
        CHECK(s.len == LB_SEAL_OVERHEAD + 3 + e.stored_len);
        CHECK_OK(lb_blob_decode(&K, &e, s.data + LB_SEAL_OVERHEAD + 3, e.stored_len, &o));
        CHECK(o.len == 100 && memcmp(o.data, buf, 100) == 0);

        CHECK(lb_blob_encode(&K, 0, &id, buf, 100, 0, &s, &e) == -EINVAL);
        CHECK(lb_blob_encode(&K, 4, &id, buf, 100, 0, &s, &e) == -EINVAL);
}

TEST(test_blob_max_size) {
        size_t n = LB_BLOB_RAW_MAX;
        _cleanup_free_ uint8_t *raw = malloc(n + 1);
        CHECK(raw);
        fill_random(raw, n, 7);
        raw[n] = 0;
        check_roundtrip(raw, n, 0, LB_CODEC_RAW);
        check_roundtrip(raw, n, 1, LB_CODEC_RAW);
        memset(raw, 0, n);
        check_roundtrip(raw, n, 1, LB_CODEC_ZSTD);

        LbId id;
        LbPackEntry e;
        _cleanup_buf_ LbBuf s = {};
        lb_chunk_id(&K, raw, n + 1, &id);
        CHECK(lb_blob_encode(&K, LB_BLOB_DATA, &id, raw, n + 1, 0, &s, &e) == -E2BIG);
        CHECK(s.len == 0);
}

TEST(test_blob_padding_hides_size) {
        uint8_t a[1010];
        fill_random(a, sizeof a, 3);
        _cleanup_buf_ LbBuf s1 = {}, s2 = {};
        LbPackEntry e1, e2;
        encode(a, 1000, LB_BLOB_DATA, 0, &s1, &e1);
        encode(a, 1010, LB_BLOB_DATA, 0, &s2, &e2);
        CHECK(e1.payload_len == 1000 && e2.payload_len == 1010);
        CHECK_EQ_INT(e1.stored_len, e2.stored_len);
        CHECK_EQ_INT(e1.stored_len, 1024 + LB_SEAL_OVERHEAD);
}

static void check_bitflips(const void *raw, size_t n, int level) {
        _cleanup_buf_ LbBuf s = {}, o = {};
        LbPackEntry e;
        encode(raw, n, LB_BLOB_DATA, level, &s, &e);
        for (size_t i = 0; i < s.len; i++)
                for (int bit = 0; bit < 8; bit++) {
                        s.data[i] ^= (uint8_t) (1u << bit);
                        CHECK(lb_blob_decode(&K, &e, s.data, s.len, &o) == -EBADMSG);
                        CHECK(o.len == 0);
                        s.data[i] ^= (uint8_t) (1u << bit);
                }
        CHECK_OK(lb_blob_decode(&K, &e, s.data, s.len, &o));

        /* Every entry field is authenticated (the AD) or checked. */
        LbPackEntry x = e;
        x.id.b[5] ^= 1;
        CHECK(lb_blob_decode(&K, &x, s.data, s.len, &o) == -EBADMSG);
        x = e;
        x.type = x.type == LB_BLOB_DATA ? LB_BLOB_TREE : LB_BLOB_DATA;
        CHECK(lb_blob_decode(&K, &x, s.data, s.len, &o) == -EBADMSG);
        x = e;
        x.raw_len += 1;
        CHECK(lb_blob_decode(&K, &x, s.data, s.len, &o) == -EBADMSG);
        x = e;
        x.payload_len -= 1;
        CHECK(lb_blob_decode(&K, &x, s.data, s.len, &o) == -EBADMSG);
        x = e;
        x.codec ^= 1;
        CHECK(lb_blob_decode(&K, &x, s.data, s.len, &o) == -EBADMSG);
        x = e;
        x.raw_len = LB_BLOB_RAW_MAX + 1;
        CHECK(lb_blob_decode(&K, &x, s.data, s.len, &o) == -EBADMSG);

        /* wrong key */
        CHECK(lb_blob_decode(&K_OTHER, &e, s.data, s.len, &o) == -EBADMSG);
        /* truncation and extension */
        for (size_t len = 0; len < s.len; len += 1 + len / 4)
                CHECK(lb_blob_decode(&K, &e, s.data, len, &o) == -EBADMSG);
        CHECK_OK(lb_buf_append_u8(&s, 0));
        CHECK(lb_blob_decode(&K, &e, s.data, s.len, &o) == -EBADMSG);
}

/* lb_blob_verify: what prune checks before it moves sealed bytes. */
static void check_verify(const void *raw, size_t n, int level) {
        _cleanup_buf_ LbBuf s = {};
        LbPackEntry e;
        encode(raw, n, LB_BLOB_DATA, level, &s, &e);
        CHECK_OK(lb_blob_verify(&K, &e, s.data, s.len));
        for (size_t i = 0; i < s.len; i += 1 + i / 8) {
                s.data[i] ^= 0x20;
                CHECK(lb_blob_verify(&K, &e, s.data, s.len) == -EBADMSG);
                s.data[i] ^= 0x20;
        }
        /* Every field of the entry is bound by the AD or checked. */
        LbPackEntry x = e;
        x.id.b[31] ^= 1;
        CHECK(lb_blob_verify(&K, &x, s.data, s.len) == -EBADMSG);
        x = e;
        x.type = LB_BLOB_TREE;
        CHECK(lb_blob_verify(&K, &x, s.data, s.len) == -EBADMSG);
        x = e;
        x.raw_len += 1;
        CHECK(lb_blob_verify(&K, &x, s.data, s.len) == -EBADMSG);
        CHECK(lb_blob_verify(&K_OTHER, &e, s.data, s.len) == -EBADMSG);
        CHECK(lb_blob_verify(&K, &e, s.data, s.len - 1) == -EBADMSG);
        CHECK(lb_blob_verify(&K, &e, s.data, 10) == -EBADMSG);
        CHECK_OK(lb_blob_verify(&K, &e, s.data, s.len));
}

TEST(test_blob_verify) {
        uint8_t buf[3000];
        fill_random(buf, sizeof buf, 11);
        check_verify(buf, sizeof buf, 0);
        fill_text(buf, sizeof buf, 12);
        check_verify(buf, sizeof buf, 3);
        check_verify(buf, 0, 3);
}

TEST(test_blob_corruption) {
        uint8_t buf[300];
        fill_random(buf, sizeof buf, 9);
        check_bitflips(buf, sizeof buf, 0);
        fill_text(buf, sizeof buf, 0);
        check_bitflips(buf, sizeof buf, 3);
}

/* The checks behind the AEAD: a validly sealed but wrong plaintext is refused. */
TEST(test_blob_inner_checks) {
        _cleanup_buf_ LbBuf s = {}, o = {};
        uint8_t raw[1001], plain[1024];
        fill_text(raw, sizeof raw, 0);

        /* nonzero padding */
        LbPackEntry e = valid_entry(LB_BLOB_DATA, LB_CODEC_RAW, 1000, 1000);
        lb_chunk_id(&K, raw, 1000, &e.id);
        memset(plain, 0, sizeof plain);
        memcpy(plain, raw, 1000);
        seal_blob(&e, plain, sizeof plain, &s);
        CHECK_OK(lb_blob_decode(&K, &e, s.data, s.len, &o));
        plain[1023] = 1;
        seal_blob(&e, plain, sizeof plain, &s);
        CHECK(lb_blob_decode(&K, &e, s.data, s.len, &o) == -EBADMSG);
        CHECK(o.len == 0);

        /* id that does not match the bytes */
        plain[1023] = 0;
        e.id.b[0] ^= 1;
        seal_blob(&e, plain, sizeof plain, &s);
        CHECK(lb_blob_decode(&K, &e, s.data, s.len, &o) == -EBADMSG);
        e.id.b[0] ^= 1;

        /* zstd frame whose output is shorter or longer than raw_len */
        uint8_t z[1024];
        size_t zn = ZSTD_compress(z, sizeof z, raw, 1000, 3);
        CHECK(!ZSTD_isError(zn) && zn < 512);
        for (int delta = -1; delta <= 1; delta++) {
                uint32_t raw_len = (uint32_t) (1000 + delta);
                LbPackEntry c = valid_entry(LB_BLOB_DATA, LB_CODEC_ZSTD, (uint32_t) zn, raw_len);
                lb_chunk_id(&K, raw, raw_len, &c.id);
                memset(plain, 0, sizeof plain);
                memcpy(plain, z, zn);
                seal_blob(&c, plain, lb_pad_length((uint32_t) zn), &s);
                int r = lb_blob_decode(&K, &c, s.data, s.len, &o);
                if (delta == 0) {
                        CHECK_OK(r);
                        CHECK(o.len == 1000 && memcmp(o.data, raw, 1000) == 0);
                } else
                        CHECK(r == -EBADMSG);
        }

        /* zstd payload that is not a frame */
        LbPackEntry c = valid_entry(LB_BLOB_DATA, LB_CODEC_ZSTD, 100, 1000);
        lb_chunk_id(&K, raw, 1000, &c.id);
        memset(plain, 0, sizeof plain);
        memcpy(plain, raw, 100);
        seal_blob(&c, plain, lb_pad_length(100), &s);
        CHECK(lb_blob_decode(&K, &c, s.data, s.len, &o) == -EBADMSG);
}

static void *blob_worker(void *arg) {
        uint64_t seed = (uint64_t) (uintptr_t) arg;
        uint8_t buf[8192];
        _cleanup_buf_ LbBuf s = {}, o = {};
        for (int i = 0; i < 50; i++) {
                LbPackEntry e;
                fill_text(buf, sizeof buf, seed + (uint64_t) i);
                encode(buf, sizeof buf - (size_t) i, LB_BLOB_DATA, 1 + i % 5, &s, &e);
                CHECK(e.codec == LB_CODEC_ZSTD);
                CHECK_OK(lb_blob_decode(&K, &e, s.data, s.len, &o));
                CHECK(o.len == sizeof buf - (size_t) i && memcmp(o.data, buf, o.len) == 0);
        }
        return NULL;
}

/* The codec keeps per-thread zstd contexts: several threads at once must work
 * (and, under ASan, the contexts of exited threads must be freed). */
TEST(test_blob_threads) {
        pthread_t t[6];
        for (size_t i = 0; i < LB_ARRAY_SIZE(t); i++)
                CHECK(pthread_create(&t[i], NULL, blob_worker, (void *) (uintptr_t) (i * 1000)) == 0);
        for (size_t i = 0; i < LB_ARRAY_SIZE(t); i++)
                CHECK(pthread_join(t[i], NULL) == 0);
}

/* ---- packs -------------------------------------------------------------- */

TEST(test_pack_roundtrip) {
        size_t n = 50;
        Blob *b = make_blobs(n);
        _cleanup_buf_ LbBuf pack = {}, o = {};
        _cleanup_free_ LbPackEntry *e = NULL, *p = NULL;
        size_t ne, np;
        make_pack(b, n, &pack, &e, &ne);

        CHECK_OK(lb_pack_parse(&K, pack.data, pack.len, &p, &np));
        CHECK(np == n);
        uint64_t off = 0;
        for (size_t i = 0; i < n; i++) {
                /* every entry round-trips through the TOC, in layout order */
                CHECK(entry_eq(&e[i], &p[i]));
                CHECK(p[i].offset == off);
                off += p[i].stored_len;
                const Blob *x = find_blob(b, n, &p[i].id);
                CHECK(x);
                CHECK(p[i].type == x->type && p[i].raw_len == x->len);
                CHECK_OK(lb_blob_decode(&K, &p[i], pack.data + p[i].offset, p[i].stored_len, &o));
                CHECK(o.len == x->len && memcmp(o.data, x->raw, o.len) == 0);
        }
        uint32_t toc_len;
        CHECK_OK(lb_pack_parse_footer(pack.data + pack.len - LB_PACK_FOOTER_SIZE, pack.len, &toc_len));
        CHECK(toc_len == LB_SEAL_OVERHEAD + 8 + n * LB_ENTRY_SIZE);
        CHECK(off + toc_len + LB_PACK_FOOTER_SIZE == pack.len);
        CHECK(memcmp(pack.data + pack.len - 8, "LBPACK\0\1", 8) == 0);
        CHECK(lb_get_le32(pack.data + pack.len - 12) == 1);

        /* wrong key */
        free(p);
        p = NULL;
        CHECK(lb_pack_parse(&K_OTHER, pack.data, pack.len, &p, &np) == -EBADMSG);
        CHECK(!p);
        free_blobs(b, n);
}

TEST(test_pack_empty) {
        _cleanup_buf_ LbBuf pack = {};
        _cleanup_free_ LbPackEntry *e = NULL, *p = NULL;
        size_t ne = 1, np = 1;
        make_pack(NULL, 0, &pack, &e, &ne);
        CHECK(ne == 0);
        CHECK(pack.len == LB_SEAL_OVERHEAD + 8 + LB_PACK_FOOTER_SIZE);
        CHECK_OK(lb_pack_parse(&K, pack.data, pack.len, &p, &np));
        CHECK(np == 0);
}

TEST(test_pack_shuffled) {
        size_t n = 50;
        Blob *b = make_blobs(n);
        LbId ids[50];
        for (size_t i = 0; i < n; i++)
                lb_chunk_id(&K, b[i].raw, b[i].len, &ids[i]);
        bool shuffled = false;
        for (int attempt = 0; attempt < 5 && !shuffled; attempt++) {
                _cleanup_buf_ LbBuf pack = {};
                _cleanup_free_ LbPackEntry *e = NULL;
                size_t ne;
                make_pack(b, n, &pack, &e, &ne);
                for (size_t i = 0; i < n; i++)
                        if (lb_id_cmp(&e[i].id, &ids[i]) != 0)
                                shuffled = true;
        }
        CHECK(shuffled);
        free_blobs(b, n);
}

/* finish_iov gives the bytes finish copies together, without copying;
 * the order says where each entry was added. */
TEST(test_pack_finish_iov) {
        size_t n = 300;
        Blob *b = make_blobs(n);
        LbPackWriter *w = NULL;
        CHECK_OK(lb_pack_writer_new(&K, &w));
        _cleanup_buf_ LbBuf s = {}, pack = {}, o = {};
        LbId added[300];
        for (int round = 0; round < 2; round++) {
                for (size_t i = 0; i < n; i++) {
                        LbPackEntry e;
                        encode(b[i].raw, b[i].len, b[i].type, b[i].level, &s, &e);
                        CHECK_OK(lb_pack_writer_add(w, &e, s.data, s.len));
                        added[i] = e.id;
                }
                const struct iovec *iov;
                size_t n_iov, ne;
                uint64_t size;
                _cleanup_free_ LbPackEntry *e = NULL, *p = NULL;
                _cleanup_free_ uint32_t *order = NULL;
                CHECK_OK(lb_pack_writer_finish_iov(w, &iov, &n_iov, &size, &e, &ne, &order));
                CHECK(ne == n && n_iov == n + 1);
                /* Nothing may be added to a finished pack. */
                CHECK(lb_pack_writer_add(w, &e[0], s.data, s.len) == -EINVAL);
                lb_buf_clear(&pack);
                for (size_t i = 0; i < n_iov; i++)
                        CHECK_OK(lb_buf_append(&pack, iov[i].iov_base, iov[i].iov_len));
                CHECK(pack.len == size);
                size_t np;
                CHECK_OK(lb_pack_parse(&K, pack.data, pack.len, &p, &np));
                CHECK(np == n);
                for (size_t i = 0; i < n; i++) {
                        CHECK(entry_eq(&e[i], &p[i]));
                        CHECK(order[i] < n && lb_id_cmp(&added[order[i]], &e[i].id) == 0);
                        CHECK_OK(lb_blob_decode(&K, &p[i], pack.data + p[i].offset, p[i].stored_len, &o));
                }
                lb_pack_writer_reset(w);
                CHECK(lb_pack_writer_count(w) == 0 && lb_pack_writer_size(w) == 0);
        }
        lb_pack_writer_free(w);
        free_blobs(b, n);
}

TEST(test_rng_uniform) {
        LbRng g;
        lb_rng_init(&g);
        unsigned counts[7] = {};
        for (int i = 0; i < 70000; i++) {
                uint32_t v = lb_rng_uniform(&g, 7);
                CHECK(v < 7);
                counts[v]++;
        }
        for (int i = 0; i < 7; i++)
                CHECK(counts[i] > 9000 && counts[i] < 11000);
        CHECK(lb_rng_uniform(&g, 1) == 0);
        /* Two streams differ. */
        LbRng h;
        lb_rng_init(&h);
        bool differ = false;
        for (int i = 0; i < 8; i++)
                differ |= lb_rng_uniform(&g, UINT32_MAX) != lb_rng_uniform(&h, UINT32_MAX);
        CHECK(differ);
        lb_rng_wipe(&g);
        lb_rng_wipe(&h);
}

TEST(test_pack_writer_invalid) {
        LbPackWriter *w = NULL;
        CHECK_OK(lb_pack_writer_new(&K, &w));
        _cleanup_buf_ LbBuf s = {};
        LbPackEntry e;
        encode("hello", 5, LB_BLOB_DATA, 0, &s, &e);
        CHECK(lb_pack_writer_add(w, &e, s.data, s.len - 1) == -EINVAL);
        LbPackEntry x = e;
        x.type = 7;
        CHECK(lb_pack_writer_add(w, &x, s.data, s.len) == -EINVAL);
        x = e;
        x.payload_len = 4;
        CHECK(lb_pack_writer_add(w, &x, s.data, s.len) == -EINVAL);
        CHECK(lb_pack_writer_count(w) == 0);
        CHECK_OK(lb_pack_writer_add(w, &e, s.data, s.len));
        CHECK(lb_pack_writer_count(w) == 1 && lb_pack_writer_size(w) == s.len);
        CHECK(lb_pack_writer_free(w) == NULL);
        CHECK(lb_pack_writer_free(NULL) == NULL);
}

TEST(test_pack_corruption) {
        size_t n = 3;
        Blob *b = make_blobs(n);
        _cleanup_buf_ LbBuf pack = {}, o = {};
        _cleanup_free_ LbPackEntry *e = NULL;
        size_t ne;
        make_pack(b, n, &pack, &e, &ne);
        uint64_t blobs_end = e[n - 1].offset + e[n - 1].stored_len;

        for (size_t i = 0; i < pack.len; i++)
                for (int bit = 0; bit < 8; bit++) {
                        LbPackEntry *p = NULL;
                        size_t np = 0;
                        pack.data[i] ^= (uint8_t) (1u << bit);
                        int r = lb_pack_parse(&K, pack.data, pack.len, &p, &np);
                        if (i < blobs_end) {
                                /* a flipped blob: the TOC is fine, that blob fails */
                                CHECK_OK(r);
                                for (size_t j = 0; j < np; j++) {
                                        bool hit = i >= p[j].offset && i < p[j].offset + p[j].stored_len;
                                        r = lb_blob_decode(&K, &p[j], pack.data + p[j].offset, p[j].stored_len, &o);
                                        CHECK(hit ? r == -EBADMSG : r == 0);
                                }
                                free(p);
                        } else if (i >= pack.len - 12 && i < pack.len - 8)
                                CHECK(r == -EPROTONOSUPPORT);
                        else {
                                CHECK(r == -EBADMSG); /* TOC, toc_len or magic */
                                CHECK(!p);
                        }
                        pack.data[i] ^= (uint8_t) (1u << bit);
                }

        /* every truncation */
        for (size_t len = 0; len < pack.len; len++) {
                LbPackEntry *p = NULL;
                size_t np;
                CHECK(lb_pack_parse(&K, pack.data, len, &p, &np) == -EBADMSG);
        }
        free_blobs(b, n);
}

TEST(test_pack_footer) {
        uint8_t f[LB_PACK_FOOTER_SIZE];
        uint32_t t = 0;
        lb_put_le32(f + 4, 1);
        memcpy(f + 8, LB_PACK_MAGIC, 8);
        lb_put_le32(f, 48);
        CHECK_OK(lb_pack_parse_footer(f, 64, &t));
        CHECK(t == 48);
        CHECK(lb_pack_parse_footer(f, 63, &t) == -EBADMSG);   /* toc_len > pack_size - 16 */
        CHECK(lb_pack_parse_footer(f, 15, &t) == -EBADMSG);
        CHECK(lb_pack_parse_footer(f, LB_PACK_MAX_SIZE + 1, &t) == -EBADMSG);
        lb_put_le32(f, 47); /* below the smallest TOC */
        CHECK(lb_pack_parse_footer(f, 1000, &t) == -EBADMSG);
        lb_put_le32(f, 48 + LB_ENTRY_SIZE + 1); /* records are multiples of 8 bytes */
        CHECK(lb_pack_parse_footer(f, 1000, &t) == -EBADMSG);
        lb_put_le32(f, 48 + LB_RECORD_MAX_SIZE * (LB_PACK_MAX_ENTRIES + 1)); /* above the largest TOC */
        CHECK(lb_pack_parse_footer(f, LB_PACK_MAX_SIZE, &t) == -EBADMSG);
        lb_put_le32(f, 48 + LB_RECORD_MAX_SIZE * LB_PACK_MAX_ENTRIES); /* all deltas */
        CHECK_OK(lb_pack_parse_footer(f, LB_PACK_MAX_SIZE, &t));
        lb_put_le32(f, UINT32_MAX);
        CHECK(lb_pack_parse_footer(f, LB_PACK_MAX_SIZE, &t) == -EBADMSG);
        lb_put_le32(f, 48);
        lb_put_le32(f + 4, 2);
        CHECK(lb_pack_parse_footer(f, 64, &t) == -EPROTONOSUPPORT);
        lb_put_le32(f + 4, 1);
        f[8] = 'X';
        CHECK(lb_pack_parse_footer(f, 64, &t) == -EBADMSG);
}

TEST(test_pack_toc_checks) {
        size_t n = 3;
        Blob *b = make_blobs(n);
        _cleanup_buf_ LbBuf pack = {}, bad = {};
        _cleanup_free_ LbPackEntry *e = NULL;
        size_t ne;
        make_pack(b, n, &pack, &e, &ne);
        uint64_t end = e[n - 1].offset + e[n - 1].stored_len;
        LbPackEntry x[3];
        LbPackEntry *p = NULL;
        size_t np;

        /* the same TOC, resealed, parses */
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, e, 3, &bad);
        CHECK_OK(lb_pack_parse(&K, bad.data, bad.len, &p, &np));
        free(p);
        p = NULL;

        /* wrong magic, count */
        rebuild_pack(&pack, end, "LBTX", 3, e, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 2, e, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 4, e, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);
        rebuild_pack(&pack, end, LB_TOC_MAGIC, UINT32_MAX, e, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);

        /* past the blob area (which ends where the TOC starts) */
        memcpy(x, e, sizeof x);
        x[2].offset += 1;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);
        memcpy(x, e, sizeof x);
        x[0].offset = UINT64_MAX - 10;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);

        /* overlapping (listed out of order, so the check must sort) */
        memcpy(x, e, sizeof x);
        x[0] = e[2];
        x[2] = e[0];
        x[0].offset = e[2].offset - 1;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);
        /* out of order but disjoint is fine */
        x[0] = e[2];
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        CHECK_OK(lb_pack_parse(&K, bad.data, bad.len, &p, &np));
        CHECK(np == 3 && entry_eq(&p[0], &e[2]) && entry_eq(&p[2], &e[0]));
        free(p);
        p = NULL;

        /* an invalid entry */
        memcpy(x, e, sizeof x);
        x[1].type = 0;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);
        memcpy(x, e, sizeof x);
        x[1].stored_len += 1;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        CHECK(lb_pack_parse(&K, bad.data, bad.len, &p, &np) == -EBADMSG);

        /* a TOC sealed with the data key instead of the meta key */
        _cleanup_buf_ LbBuf toc = {};
        LbKeys swapped = K;
        memcpy(swapped.meta_key, K.data_key, LB_KEY_SIZE);
        seal_toc(&swapped, LB_TOC_MAGIC, 3, e, 3, &toc);
        CHECK(lb_pack_parse_toc(&K, toc.data, toc.len, end, &p, &np) == -EBADMSG);
        seal_toc(&K, LB_TOC_MAGIC, 3, e, 3, &toc);
        CHECK_OK(lb_pack_parse_toc(&K, toc.data, toc.len, end, &p, &np));
        free(p);
        p = NULL;
        CHECK(lb_pack_parse_toc(&K, toc.data, toc.len, end - 1, &p, &np) == -EBADMSG);
        CHECK(lb_pack_parse_toc(&K, toc.data, toc.len - 1, end, &p, &np) == -EBADMSG);
        free_blobs(b, n);
}

/* ---- golden files --------------------------------------------------------- */

/* The three blobs of tests/data/pack-v1.pack. */
#define GOLDEN_TEXT "longbox golden blob 1: stored raw\n"
static const uint8_t GOLDEN_TREE[] = { 'L', 'B', 'T', 'R', 0, 0, 0, 0 };

static void golden_blobs(Blob b[3], uint8_t *zbuf /* 4096 */) {
        for (size_t i = 0; i < 4096; i++)
                zbuf[i] = (uint8_t) "longbox compresses this "[i % 24];
        b[0] = (Blob) { LB_BLOB_DATA, 0, strlen(GOLDEN_TEXT), (uint8_t *) GOLDEN_TEXT };
        b[1] = (Blob) { LB_BLOB_DATA, 3, 4096, zbuf };
        b[2] = (Blob) { LB_BLOB_TREE, 0, sizeof GOLDEN_TREE, (uint8_t *) GOLDEN_TREE };
}

TEST(test_golden_pack) {
        _cleanup_buf_ LbBuf pack = {}, o = {};
        read_data("pack-v1.pack", &pack);
        _cleanup_free_ LbPackEntry *p = NULL;
        size_t np;
        CHECK_OK(lb_pack_parse(&K, pack.data, pack.len, &p, &np));
        CHECK_EQ_INT(np, 3);
        CHECK(memcmp(pack.data + pack.len - 16, "\xd8\0\0\0\1\0\0\0LBPACK\0\1", 16) == 0); /* toc_len 216 */

        uint8_t zbuf[4096];
        Blob b[3];
        golden_blobs(b, zbuf);
        bool seen[3] = {};
        uint64_t off = 0;
        for (size_t i = 0; i < np; i++) {
                CHECK(p[i].offset == off);
                off += p[i].stored_len;
                const Blob *x = find_blob(b, 3, &p[i].id);
                CHECK(x);
                size_t k = (size_t) (x - b);
                CHECK(!seen[k]);
                seen[k] = true;
                CHECK(p[i].type == x->type);
                CHECK(p[i].raw_len == x->len);
                CHECK(p[i].stored_len == lb_pad_length(p[i].payload_len) + LB_SEAL_OVERHEAD);
                if (k == 1)
                        CHECK(p[i].codec == LB_CODEC_ZSTD && p[i].payload_len < 4096);
                else
                        CHECK(p[i].codec == LB_CODEC_RAW && p[i].payload_len == x->len);
                CHECK_OK(lb_blob_decode(&K, &p[i], pack.data + p[i].offset, p[i].stored_len, &o));
                CHECK(o.len == x->len && memcmp(o.data, x->raw, x->len) == 0);
        }
        CHECK(off + 216 + 16 == pack.len);
        /* the fixed ids pin the id key derivation */
        char hex[2 * LB_ID_SIZE + 1];
        LbId id;
        lb_chunk_id(&K, GOLDEN_TREE, sizeof GOLDEN_TREE, &id);
        lb_id_hex(&id, hex);
        CHECK(strcmp(hex, "d1285e954ce68be33927226001857f9beabeb658e6e61ff65defa8e28fd9d7e2") == 0);
}

/* tests/data/pack-delta-v1.pack: a base chunk (zstd) and a chunk stored
 * as a delta against it (the base with a few bytes changed). */
static void golden_delta_chunks(uint8_t base[4096], uint8_t changed[4096]) {
        /* rows of an inventory table: id, issue, quantity (xorshift digits) */
        uint64_t x = 88172645463325252ull;
        size_t at = 0;
        for (unsigned row = 1; at < 4096; row++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char line[64];
                int n = snprintf(line, sizeof line, "%u\t%u\t%u\n", row, (unsigned) (x % 100000),
                                 (unsigned) (x >> 40) % 50);
                for (int i = 0; i < n && at < 4096; i++)
                        base[at++] = (uint8_t) line[i];
        }
        memcpy(changed, base, 4096);
        changed[100] = '7';
        changed[2000] = '8';
        changed[4000] = '9';
}

static void make_delta_pack(LbBuf *pack) {
        uint8_t base[4096], changed[4096];
        golden_delta_chunks(base, changed);
        LbId bid, cid;
        lb_chunk_id(&K, base, sizeof base, &bid);
        lb_chunk_id(&K, changed, sizeof changed, &cid);
        _cleanup_buf_ LbBuf s = {};
        LbPackEntry e;
        LbPackWriter *w;
        CHECK_OK(lb_pack_writer_new(&K, &w));
        CHECK_OK(lb_blob_encode(&K, LB_BLOB_DATA, &bid, base, sizeof base, 3, &s, &e));
        CHECK_OK(lb_pack_writer_add(w, &e, s.data, s.len));
        lb_buf_clear(&s);
        CHECK_OK(lb_blob_encode_base(&K, &cid, changed, sizeof changed, &bid, base, sizeof base, 3, &s, &e));
        CHECK(e.codec == LB_CODEC_DELTA);
        CHECK_OK(lb_pack_writer_add(w, &e, s.data, s.len));
        _cleanup_free_ LbPackEntry *pe = NULL;
        size_t n;
        CHECK_OK(lb_pack_writer_finish(w, pack, &pe, &n));
        lb_pack_writer_free(w);
}

/* A delta's codec, base and AD survive the TOC; reading it needs the base. */
TEST(test_golden_delta_pack) {
        _cleanup_buf_ LbBuf pack = {}, o = {}, b = {};
        read_data("pack-delta-v1.pack", &pack);
        _cleanup_free_ LbPackEntry *p = NULL;
        size_t np;
        CHECK_OK(lb_pack_parse(&K, pack.data, pack.len, &p, &np));
        CHECK_EQ_INT(np, 2);
        /* toc_len = 40 + 8 + 56 (the base) + 88 (the delta and its base id) */
        CHECK_EQ_INT(lb_get_le32(pack.data + pack.len - 16), 192);
        uint8_t base[4096], changed[4096];
        golden_delta_chunks(base, changed);
        LbId bid;
        lb_chunk_id(&K, base, sizeof base, &bid);
        const LbPackEntry *be = NULL, *de = NULL;
        for (size_t i = 0; i < np; i++)
                *(p[i].codec == LB_CODEC_DELTA ? &de : &be) = &p[i];
        CHECK(be && de);
        CHECK(be->codec == LB_CODEC_ZSTD && lb_id_cmp(&be->id, &bid) == 0);
        CHECK(lb_id_cmp(&de->base, &bid) == 0 && de->type == LB_BLOB_DATA && de->raw_len == 4096);
        CHECK(de->payload_len < 64); /* three changed bytes, not the page */
        CHECK_OK(lb_blob_decode(&K, be, pack.data + be->offset, be->stored_len, &b));
        CHECK(b.len == 4096 && memcmp(b.data, base, 4096) == 0);
        /* without its base a delta cannot be decoded; with another base, or
         * another base id in its entry (the AD), it fails verification */
        CHECK(lb_blob_decode(&K, de, pack.data + de->offset, de->stored_len, &o) == -EINVAL);
        static const uint8_t zeros[4096];
        CHECK(lb_blob_decode_base(&K, de, pack.data + de->offset, de->stored_len, zeros, 4096, &o) == -EBADMSG);
        CHECK(o.len == 0);
        LbPackEntry x = *de;
        x.base.b[0] ^= 1;
        CHECK(lb_blob_decode_base(&K, &x, pack.data + de->offset, de->stored_len, b.data, b.len, &o) == -EBADMSG);
        CHECK(lb_blob_verify(&K, &x, pack.data + de->offset, de->stored_len) == -EBADMSG);
        CHECK_OK(lb_blob_verify(&K, de, pack.data + de->offset, de->stored_len));
        CHECK_OK(lb_blob_decode_base(&K, de, pack.data + de->offset, de->stored_len, b.data, b.len, &o));
        CHECK(o.len == 4096 && memcmp(o.data, changed, 4096) == 0);
}

/* The writer keeps a delta only when it at most halves the payload. */
TEST(test_blob_delta_choice) {
        _cleanup_free_ uint8_t *a = malloc(65536), *c = malloc(65536), *r = malloc(65536);
        CHECK(a && c && r);
        fill_random(a, 65536, 7);
        memcpy(c, a, 65536);
        for (size_t i = 0; i < 65536; i += 4096)
                c[i] ^= 0x5a;
        fill_random(r, 65536, 8);
        LbId aid, cid, rid;
        lb_chunk_id(&K, a, 65536, &aid);
        lb_chunk_id(&K, c, 65536, &cid);
        lb_chunk_id(&K, r, 65536, &rid);
        _cleanup_buf_ LbBuf s = {}, o = {};
        LbPackEntry e;
        /* random data against a near copy: a delta of a few hundred bytes */
        CHECK_OK(lb_blob_encode_base(&K, &cid, c, 65536, &aid, a, 65536, 3, &s, &e));
        CHECK(e.codec == LB_CODEC_DELTA && e.payload_len < 1024 && lb_id_cmp(&e.base, &aid) == 0);
        CHECK_OK(lb_blob_decode_base(&K, &e, s.data, s.len, a, 65536, &o));
        CHECK(o.len == 65536 && memcmp(o.data, c, 65536) == 0);
        /* against unrelated bytes: stored whole (raw, as random data does not compress) */
        lb_buf_clear(&s);
        CHECK_OK(lb_blob_encode_base(&K, &rid, r, 65536, &aid, a, 65536, 3, &s, &e));
        CHECK(e.codec == LB_CODEC_RAW);
        CHECK_OK(lb_blob_decode(&K, &e, s.data, s.len, &o));
        CHECK(o.len == 65536 && memcmp(o.data, r, 65536) == 0);
        /* level 0 never makes deltas; a base over the limit is refused */
        lb_buf_clear(&s);
        CHECK_OK(lb_blob_encode_base(&K, &cid, c, 65536, &aid, a, 65536, 0, &s, &e));
        CHECK(e.codec == LB_CODEC_RAW);
        CHECK(lb_blob_encode_base(&K, &cid, c, 65536, &aid, a, LB_DELTA_BASE_MAX + 1, 3, &s, &e) == -EINVAL);
        /* a delta's record is 88 bytes and round-trips through a TOC record */
        lb_buf_clear(&s);
        CHECK_OK(lb_blob_encode_base(&K, &cid, c, 65536, &aid, a, 65536, 3, &s, &e));
        uint8_t rec[LB_RECORD_MAX_SIZE];
        CHECK_EQ_INT(lb_entry_record_size(&e), LB_RECORD_MAX_SIZE);
        lb_entry_encode(&e, rec);
        LbReader rd = lb_reader(rec, sizeof rec);
        LbPackEntry d;
        CHECK_OK(lb_record_read(&rd, &d));
        CHECK(lb_reader_left(&rd) == 0 && entry_eq(&d, &e) && lb_id_cmp(&d.base, &aid) == 0);
        rd = lb_reader(rec, LB_ENTRY_SIZE + 31); /* truncated base id */
        CHECK(lb_record_read(&rd, &d) == -EBADMSG);
}

static const struct {
        const char *name;
        int error;
} BAD_PACKS[] = {
        { "bad/pack-short.pack", -EBADMSG },
        { "bad/pack-truncated-footer.pack", -EBADMSG },
        { "bad/pack-bad-magic.pack", -EBADMSG },
        { "bad/pack-bad-version.pack", -EPROTONOSUPPORT },
        { "bad/pack-toc-len-too-large.pack", -EBADMSG },
        { "bad/pack-toc-len-huge.pack", -EBADMSG },
        { "bad/pack-toc-len-odd.pack", -EBADMSG },
        { "bad/pack-toc-flipped.pack", -EBADMSG },
        { "bad/pack-toc-wrong-key.pack", -EBADMSG },
        { "bad/pack-toc-count-mismatch.pack", -EBADMSG },
        { "bad/pack-entry-out-of-bounds.pack", -EBADMSG },
        { "bad/pack-entry-overlap.pack", -EBADMSG },
        { "bad/pack-entry-bad-type.pack", -EBADMSG },
        { "bad/pack-entry-bad-padding.pack", -EBADMSG },
};

TEST(test_golden_bad_packs) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(BAD_PACKS); i++) {
                _cleanup_buf_ LbBuf pack = {};
                read_data(BAD_PACKS[i].name, &pack);
                LbPackEntry *p = NULL;
                size_t np = 0;
                int r = lb_pack_parse(&K, pack.data, pack.len, &p, &np);
                if (r != BAD_PACKS[i].error) {
                        fprintf(stderr, "%s: got %d (%s), expected %d\n", BAD_PACKS[i].name, r,
                                r < 0 ? strerror(-r) : "success", BAD_PACKS[i].error);
                        exit(1);
                }
                CHECK(!p);
        }
}

/* ---- generator -------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
        CHECK_OK(lb_write_file_atomic(dir, name, p, n, 0644));
}

static int write_golden(const char *dir) {
        _cleanup_free_ char *bad_dir = lb_path_join(dir, "bad");
        CHECK(bad_dir);
        CHECK_OK(lb_mkdir_p(bad_dir, 0755));

        uint8_t zbuf[4096];
        Blob b[3];
        golden_blobs(b, zbuf);
        _cleanup_buf_ LbBuf pack = {}, bad = {};
        _cleanup_free_ LbPackEntry *e = NULL;
        size_t ne;
        make_pack(b, 3, &pack, &e, &ne);
        write_file(dir, "pack-v1.pack", pack.data, pack.len);
        _cleanup_buf_ LbBuf delta = {};
        make_delta_pack(&delta);
        write_file(dir, "pack-delta-v1.pack", delta.data, delta.len);

        size_t len = pack.len;
        uint64_t end = len - LB_PACK_FOOTER_SIZE - lb_get_le32(pack.data + len - 16);

        write_file(bad_dir, "pack-short.pack", pack.data + len - 10, 10);
        write_file(bad_dir, "pack-truncated-footer.pack", pack.data, len - 3);

#define MUTATE(name, stmt)                                           \
        do {                                                 \
                lb_buf_clear(&bad);                          \
                CHECK_OK(lb_buf_append(&bad, pack.data, len)); \
                uint8_t *d = bad.data;                       \
                stmt;                                        \
                write_file(bad_dir, name, bad.data, bad.len); \
        } while (0)
        MUTATE("pack-bad-magic.pack", d[len - 1] = 2);
        MUTATE("pack-bad-version.pack", lb_put_le32(d + len - 12, 2));
        /* a whole number of entries, but more than the pack holds */
        uint32_t too_large = LB_SEAL_OVERHEAD + 8 + 3 * LB_ENTRY_SIZE;
        while (too_large <= len - LB_PACK_FOOTER_SIZE)
                too_large += LB_ENTRY_SIZE;
        MUTATE("pack-toc-len-too-large.pack", lb_put_le32(d + len - 16, too_large));
        MUTATE("pack-toc-len-huge.pack", lb_put_le32(d + len - 16, UINT32_MAX));
        MUTATE("pack-toc-len-odd.pack", lb_put_le32(d + len - 16, lb_get_le32(d + len - 16) - 1));
        MUTATE("pack-toc-flipped.pack", d[end + 100] ^= 0x10);
#undef MUTATE

        {
                _cleanup_buf_ LbBuf toc = {};
                seal_toc(&K_OTHER, LB_TOC_MAGIC, 3, e, 3, &toc);
                lb_buf_clear(&bad);
                CHECK_OK(lb_buf_append(&bad, pack.data, end));
                CHECK_OK(lb_buf_append(&bad, toc.data, toc.len));
                CHECK_OK(lb_buf_append(&bad, pack.data + len - 16, 16));
                write_file(bad_dir, "pack-toc-wrong-key.pack", bad.data, bad.len);
        }

        LbPackEntry x[3];
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 4, e, 3, &bad);
        write_file(bad_dir, "pack-toc-count-mismatch.pack", bad.data, bad.len);
        memcpy(x, e, sizeof x);
        x[2].offset += 8;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        write_file(bad_dir, "pack-entry-out-of-bounds.pack", bad.data, bad.len);
        memcpy(x, e, sizeof x);
        x[1].offset -= 8;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        write_file(bad_dir, "pack-entry-overlap.pack", bad.data, bad.len);
        memcpy(x, e, sizeof x);
        x[0].type = 9;
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        write_file(bad_dir, "pack-entry-bad-type.pack", bad.data, bad.len);
        memcpy(x, e, sizeof x);
        x[2].stored_len -= 1; /* in bounds, but not lb_pad_length(payload_len) + overhead */
        rebuild_pack(&pack, end, LB_TOC_MAGIC, 3, x, 3, &bad);
        write_file(bad_dir, "pack-entry-bad-padding.pack", bad.data, bad.len);
        return 0;
}

int main(int argc, char **argv) {
        keys_init();
        if (argc == 3 && strcmp(argv[1], "--write-golden") == 0)
                return write_golden(argv[2]);

        RUN(test_entry_roundtrip);
        RUN(test_entry_invalid);
        RUN(test_blob_roundtrip);
        RUN(test_blob_max_size);
        RUN(test_blob_padding_hides_size);
        RUN(test_blob_verify);
        RUN(test_blob_corruption);
        RUN(test_blob_inner_checks);
        RUN(test_blob_threads);
        RUN(test_pack_roundtrip);
        RUN(test_pack_empty);
        RUN(test_pack_shuffled);
        RUN(test_pack_finish_iov);
        RUN(test_rng_uniform);
        RUN(test_pack_writer_invalid);
        RUN(test_pack_corruption);
        RUN(test_pack_footer);
        RUN(test_pack_toc_checks);
        RUN(test_golden_pack);
        RUN(test_golden_delta_pack);
        RUN(test_blob_delta_choice);
        RUN(test_golden_bad_packs);
        return 0;
}
