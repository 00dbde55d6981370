/* SPDX-License-Identifier: MIT */
/*
 * Packs and the blob codec. Format: store/format.h.
 *
 * The only place that calls zstd; its error convention (size_t results
 * tested with ZSTD_isError) is translated in zstd_errno().
 */
#include "store/pack.h"

#include <pthread.h>
#include <sys/uio.h>
#include <zstd.h>
#include <zstd_errors.h>

#define BLOB_AD_MAGIC "LBBLOB1\0"

/* Smallest and largest sealed TOC: "LBTC" || count u32 || count * record, sealed. */
#define TOC_MIN_SIZE ((uint64_t) LB_SEAL_OVERHEAD + 8)
#define TOC_MAX_SIZE (TOC_MIN_SIZE + (uint64_t) LB_PACK_MAX_ENTRIES * LB_RECORD_MAX_SIZE)

_Static_assert(sizeof(BLOB_AD_MAGIC) - 1 == 8, "blob ad magic");
_Static_assert(sizeof(LB_PACK_MAGIC) - 1 == 8, "pack magic");
_Static_assert(LB_PACK_FOOTER_SIZE == 4 + 4 + 8, "footer layout");
_Static_assert(LB_ENTRY_SIZE == LB_ID_SIZE + 8 + 4 + 4 + 4 + 1 + 1 + 2, "entry layout");
_Static_assert(LB_RECORD_MAX_SIZE == LB_ENTRY_SIZE + LB_ID_SIZE, "delta record layout");
_Static_assert(LB_ENTRY_SIZE % 8 == 0 && LB_ID_SIZE % 8 == 0, "TOC lengths are multiples of 8");
_Static_assert(TOC_MAX_SIZE <= UINT32_MAX, "toc_len must fit u32");
_Static_assert((uint64_t) LB_BLOB_RAW_MAX + LB_SEAL_OVERHEAD <= UINT32_MAX, "stored_len must fit u32");

static int zstd_errno(size_t r) {
        switch (ZSTD_getErrorCode(r)) {
        case ZSTD_error_memory_allocation:
        case ZSTD_error_workSpace_tooSmall:
                return -ENOMEM;
        case ZSTD_error_dstSize_tooSmall:
                return -ENOBUFS;
        case ZSTD_error_parameter_unsupported:
        case ZSTD_error_parameter_combination_unsupported:
        case ZSTD_error_parameter_outOfBound:
                return -EINVAL;
        default:
                /* Every other zstd error means the input is not a valid frame. */
                return -EBADMSG;
        }
}

/* Per-thread compression and decompression contexts: blobs are encoded by
 * several worker threads, so nothing here is shared. A pthread key (rather
 * than a bare __thread pointer) frees the contexts when a thread exits. */
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static pthread_key_t cctx_key, dctx_key;
static int ctx_key_error;

static void free_cctx(void *p) {
        ZSTD_freeCCtx(p);
}

static void free_dctx(void *p) {
        ZSTD_freeDCtx(p);
}

static void make_ctx_keys(void) {
        int r = pthread_key_create(&cctx_key, free_cctx);
        if (r != 0) {
                ctx_key_error = -r;
                return;
        }
        r = pthread_key_create(&dctx_key, free_dctx);
        if (r != 0)
                ctx_key_error = -r;
}

static int get_cctx(ZSTD_CCtx **ret) {
        (void) pthread_once(&ctx_once, make_ctx_keys);
        if (ctx_key_error < 0)
                return ctx_key_error;
        ZSTD_CCtx *c = pthread_getspecific(cctx_key);
        if (!c) {
                c = ZSTD_createCCtx();
                if (!c)
                        return -ENOMEM;
                int r = pthread_setspecific(cctx_key, c);
                if (r != 0) {
                        ZSTD_freeCCtx(c);
                        return -r;
                }
        }
        *ret = c;
        return 0;
}

static int get_dctx(ZSTD_DCtx **ret) {
        (void) pthread_once(&ctx_once, make_ctx_keys);
        if (ctx_key_error < 0)
                return ctx_key_error;
        ZSTD_DCtx *d = pthread_getspecific(dctx_key);
        if (!d) {
                d = ZSTD_createDCtx();
                if (!d)
                        return -ENOMEM;
                int r = pthread_setspecific(dctx_key, d);
                if (r != 0) {
                        ZSTD_freeDCtx(d);
                        return -r;
                }
        }
        *ret = d;
        return 0;
}

/* ---- entries ------------------------------------------------------------ */

/* The checks shared by lb_entry_decode and every function that takes an entry
 * from a caller. Offsets are checked by whoever knows the pack size. */
static int entry_check(const LbPackEntry *e) {
        if (e->type != LB_BLOB_DATA && e->type != LB_BLOB_TREE && e->type != LB_BLOB_CHUNKLIST)
                return -EBADMSG;
        if (e->codec != LB_CODEC_RAW && e->codec != LB_CODEC_ZSTD && e->codec != LB_CODEC_DELTA)
                return -EBADMSG;
        if (e->codec == LB_CODEC_DELTA && e->type != LB_BLOB_DATA)
                return -EBADMSG; /* only data chunks are stored against a base */
        if (e->raw_len > LB_BLOB_RAW_MAX)
                return -EBADMSG;
        if (e->stored_len < LB_SEAL_OVERHEAD || e->payload_len > e->stored_len - LB_SEAL_OVERHEAD)
                return -EBADMSG;
        if (e->codec == LB_CODEC_RAW && e->payload_len != e->raw_len)
                return -EBADMSG;
        /* The payload is padded to exactly lb_pad_length(payload_len); a
         * padded length below payload_len means it wrapped past 2^32. */
        uint32_t padded = lb_pad_length(e->payload_len);
        if (padded < e->payload_len || (uint64_t) padded + LB_SEAL_OVERHEAD != e->stored_len)
                return -EBADMSG;
        return 0;
}

size_t lb_entry_record_size(const LbPackEntry *e) {
        return e->codec == LB_CODEC_DELTA ? LB_RECORD_MAX_SIZE : LB_ENTRY_SIZE;
}

void lb_entry_encode(const LbPackEntry *e, uint8_t *out) {
        memcpy(out, e->id.b, LB_ID_SIZE);
        lb_put_le64(out + 32, e->offset);
        lb_put_le32(out + 40, e->stored_len);
        lb_put_le32(out + 44, e->payload_len);
        lb_put_le32(out + 48, e->raw_len);
        out[52] = e->type;
        out[53] = e->codec;
        lb_put_le16(out + 54, 0);
        if (e->codec == LB_CODEC_DELTA)
                memcpy(out + LB_ENTRY_SIZE, e->base.b, LB_ID_SIZE);
}

int lb_entry_decode(const uint8_t in[LB_ENTRY_SIZE], LbPackEntry *ret) {
        LbPackEntry e;
        memcpy(e.id.b, in, LB_ID_SIZE);
        e.offset = lb_get_le64(in + 32);
        e.stored_len = lb_get_le32(in + 40);
        e.payload_len = lb_get_le32(in + 44);
        e.raw_len = lb_get_le32(in + 48);
        e.type = in[52];
        e.codec = in[53];
        e.base = (LbId) {};
        if (lb_get_le16(in + 54) != 0)
                return -EBADMSG;
        int r = entry_check(&e);
        if (r < 0)
                return r;
        *ret = e;
        return 0;
}

int lb_record_read(LbReader *rd, LbPackEntry *ret) {
        const uint8_t *p;
        int r = lb_reader_bytes(rd, LB_ENTRY_SIZE, &p);
        if (r < 0)
                return r;
        LbPackEntry e;
        r = lb_entry_decode(p, &e);
        if (r < 0)
                return r;
        if (e.codec == LB_CODEC_DELTA) {
                r = lb_reader_bytes(rd, LB_ID_SIZE, &p);
                if (r < 0)
                        return r;
                memcpy(e.base.b, p, LB_ID_SIZE);
        }
        *ret = e;
        return 0;
}

/* ---- blobs -------------------------------------------------------------- */

/* Writes the blob's AD; returns its length (a delta's names its base). */
static size_t blob_ad(const LbPackEntry *e, uint8_t ad[LB_BLOB_AD_MAX_SIZE]) {
        memcpy(ad, BLOB_AD_MAGIC, 8);
        ad[8] = e->type;
        ad[9] = e->codec;
        memcpy(ad + 10, e->id.b, LB_ID_SIZE);
        lb_put_le32(ad + 42, e->payload_len);
        lb_put_le32(ad + 46, e->raw_len);
        if (e->codec != LB_CODEC_DELTA)
                return LB_BLOB_AD_SIZE;
        memcpy(ad + LB_BLOB_AD_SIZE, e->base.b, LB_ID_SIZE);
        return LB_BLOB_AD_MAX_SIZE;
}

/* Compresses raw into dst (capacity cap). Returns the compressed length,
 * or -ENOBUFS when the result would not fit (i.e. compression does not pay). */
static int compress_into(const void *raw, size_t raw_len, int level, uint8_t *dst, size_t cap, size_t *ret_len) {
        ZSTD_CCtx *c = NULL;
        int r = get_cctx(&c);
        if (r < 0)
                return r;
        size_t z = ZSTD_compressCCtx(c, dst, cap, raw, raw_len, LB_MIN(level, ZSTD_maxCLevel()));
        if (ZSTD_isError(z))
                return zstd_errno(z);
        *ret_len = z;
        return 0;
}

/* Compresses raw into dst (capacity cap) with base as its raw-content
 * prefix. -ENOBUFS when the result would not fit. */
static int compress_delta(const void *raw, size_t raw_len, const void *base, size_t base_len, int level,
                          uint8_t *dst, size_t cap, size_t *ret_len) {
        ZSTD_CCtx *c = NULL;
        int r = get_cctx(&c);
        if (r < 0)
                return r;
        size_t z = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, LB_MIN(level, ZSTD_maxCLevel()));
        if (!ZSTD_isError(z))
                z = ZSTD_CCtx_refPrefix(c, base, base_len);
        if (!ZSTD_isError(z))
                z = ZSTD_compress2(c, dst, cap, raw, raw_len);
        /* The prefix is for one frame only; the parameters go back to the
         * defaults so compress_into() starts from a clean context. */
        (void) ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
        if (ZSTD_isError(z))
                return zstd_errno(z);
        *ret_len = z;
        return 0;
}

/* Pads the payload in plain (which has room for the padding), seals it
 * and appends it to out; n gets its stored length. */
static int blob_seal(const LbKeys *k, LbPackEntry *n, uint8_t *plain, LbBuf *out) {
        size_t padded = lb_pad_length(n->payload_len);
        memset(plain + n->payload_len, 0, padded - n->payload_len);
        n->stored_len = (uint32_t) (padded + LB_SEAL_OVERHEAD);
        uint8_t ad[LB_BLOB_AD_MAX_SIZE];
        size_t ad_len = blob_ad(n, ad);
        uint8_t *p;
        int r = lb_buf_grow(out, n->stored_len, &p);
        if (r < 0)
                return r;
        lb_seal(k->data_key, ad, ad_len, plain, padded, p);
        return 0;
}

/* Puts raw's whole encoding in plain (capacity lb_pad_length(raw_len)):
 * zstd when strictly smaller, else raw. Sets n's codec and payload_len. */
static int encode_whole(const void *raw, size_t raw_len, int zstd_level, uint8_t *plain, LbPackEntry *n) {
        n->codec = LB_CODEC_RAW;
        n->payload_len = (uint32_t) raw_len;
        if (zstd_level > 0 && raw_len > 1) {
                size_t z = 0;
                /* Capacity raw_len - 1: zstd is kept only when strictly smaller. */
                int r = compress_into(raw, raw_len, zstd_level, plain, raw_len - 1, &z);
                if (r >= 0) {
                        n->codec = LB_CODEC_ZSTD;
                        n->payload_len = (uint32_t) z;
                } else if (r != -ENOBUFS)
                        return r;
        }
        if (n->codec == LB_CODEC_RAW && raw_len > 0)
                memcpy(plain, raw, raw_len);
        return 0;
}

int lb_blob_encode(const LbKeys *k, uint8_t type, const LbId *id, const void *raw, size_t raw_len,
                   int zstd_level, LbBuf *out, LbPackEntry *e) {
        if (type != LB_BLOB_DATA && type != LB_BLOB_TREE && type != LB_BLOB_CHUNKLIST)
                return -EINVAL;
        if (raw_len > LB_BLOB_RAW_MAX)
                return -E2BIG;

        /* Padding is monotonic, so pad(raw_len) holds any payload we keep. */
        _cleanup_free_ uint8_t *plain = malloc(LB_MAX((size_t) lb_pad_length((uint32_t) raw_len), (size_t) 1));
        if (!plain)
                return -ENOMEM;
        LbPackEntry n = { .id = *id, .raw_len = (uint32_t) raw_len, .type = type };
        int r = encode_whole(raw, raw_len, zstd_level, plain, &n);
        if (r == 0)
                r = blob_seal(k, &n, plain, out);
        if (r < 0)
                return r;
        *e = n;
        return 0;
}

int lb_blob_encode_base(const LbKeys *k, const LbId *id, const void *raw, size_t raw_len, const LbId *base_id,
                        const void *base, size_t base_len, int zstd_level, LbBuf *out, LbPackEntry *e) {
        if (raw_len > LB_BLOB_RAW_MAX)
                return -E2BIG;
        if (base_len > LB_DELTA_BASE_MAX)
                return -EINVAL;
        _cleanup_free_ uint8_t *plain = malloc(LB_MAX((size_t) lb_pad_length((uint32_t) raw_len), (size_t) 1));
        if (!plain)
                return -ENOMEM;
        LbPackEntry n = { .id = *id, .raw_len = (uint32_t) raw_len, .type = LB_BLOB_DATA };
        int r = encode_whole(raw, raw_len, zstd_level, plain, &n);
        if (r < 0)
                return r;
        /* A delta must at most halve the whole payload to be worth the
         * second read it costs every reader. */
        size_t cap = n.payload_len / 2;
        if (zstd_level > 0 && cap > 0 && base_len > 0) {
                _cleanup_free_ uint8_t *delta = malloc(cap);
                if (!delta)
                        return -ENOMEM;
                size_t z = 0;
                r = compress_delta(raw, raw_len, base, base_len, zstd_level, delta, cap, &z);
                if (r == 0) {
                        memcpy(plain, delta, z);
                        n.codec = LB_CODEC_DELTA;
                        n.payload_len = (uint32_t) z;
                        n.base = *base_id;
                } else if (r != -ENOBUFS)
                        return r;
        }
        r = blob_seal(k, &n, plain, out);
        if (r < 0)
                return r;
        *e = n;
        return 0;
}

static int blob_decode(const LbKeys *k, const LbPackEntry *e, const uint8_t *stored, size_t stored_len,
                       const void *base, size_t base_len, LbBuf *out) {
        int r = entry_check(e);
        if (r < 0)
                return r;
        if (stored_len != e->stored_len)
                return -EBADMSG;
        if (e->codec == LB_CODEC_DELTA && !base)
                return -EINVAL;
        if (e->codec == LB_CODEC_DELTA && base_len > LB_DELTA_BASE_MAX)
                return -EBADMSG;

        uint8_t ad[LB_BLOB_AD_MAX_SIZE];
        size_t ad_len = blob_ad(e, ad);
        size_t padded = stored_len - LB_SEAL_OVERHEAD;

        /* At least one byte, so out->data is never NULL, even for an empty blob. */
        r = lb_buf_reserve(out, LB_MAX(e->codec == LB_CODEC_RAW ? padded : (size_t) e->raw_len, (size_t) 1));
        if (r < 0)
                return r;

        /* Raw blobs open straight into out; compressed ones into a scratch buffer. */
        _cleanup_free_ uint8_t *scratch = NULL;
        uint8_t *plain;
        if (e->codec == LB_CODEC_RAW) {
                r = lb_buf_grow(out, padded, &plain);
                if (r < 0)
                        return r;
        } else {
                plain = scratch = malloc(LB_MAX(padded, (size_t) 1));
                if (!scratch)
                        return -ENOMEM;
        }
        r = lb_unseal(k->data_key, ad, ad_len, stored, stored_len, plain);
        if (r < 0)
                return r;
        for (size_t i = e->payload_len; i < padded; i++)
                if (plain[i] != 0)
                        return -EBADMSG;

        if (e->codec == LB_CODEC_RAW)
                out->len = e->raw_len;
        else {
                ZSTD_DCtx *d = NULL;
                r = get_dctx(&d);
                if (r < 0)
                        return r;
                uint8_t *dst;
                r = lb_buf_grow(out, e->raw_len, &dst);
                if (r < 0)
                        return r;
                size_t z;
                if (e->codec == LB_CODEC_DELTA) {
                        z = ZSTD_DCtx_refPrefix(d, base, base_len);
                        if (!ZSTD_isError(z))
                                z = ZSTD_decompressDCtx(d, dst, e->raw_len, plain, e->payload_len);
                        /* Back to no prefix, whatever happened. */
                        (void) ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
                } else
                        z = ZSTD_decompressDCtx(d, dst, e->raw_len, plain, e->payload_len);
                if (ZSTD_isError(z)) {
                        r = zstd_errno(z);
                        /* The output is sized from an authenticated raw_len: a frame
                         * that does not fit it is corrupt, not a lack of space. */
                        return r == -ENOBUFS ? -EBADMSG : r;
                }
                if (z != e->raw_len)
                        return -EBADMSG;
        }

        LbId id;
        lb_chunk_id(k, out->data, out->len, &id);
        if (lb_id_cmp(&id, &e->id) != 0)
                return -EBADMSG;
        return 0;
}

int lb_blob_decode(const LbKeys *k, const LbPackEntry *e, const uint8_t *stored, size_t stored_len, LbBuf *out) {
        return lb_blob_decode_base(k, e, stored, stored_len, NULL, 0, out);
}

int lb_blob_decode_base(const LbKeys *k, const LbPackEntry *e, const uint8_t *stored, size_t stored_len,
                        const void *base, size_t base_len, LbBuf *out) {
        lb_buf_clear(out);
        int r = blob_decode(k, e, stored, stored_len, base, base_len, out);
        if (r < 0) {
                /* Never hand back bytes that failed verification. */
                if (out->data)
                        memset(out->data, 0, out->len);
                lb_buf_clear(out);
        }
        return r;
}

int lb_blob_verify(const LbKeys *k, const LbPackEntry *e, const uint8_t *stored, size_t stored_len) {
        int r = entry_check(e);
        if (r < 0)
                return r;
        if (stored_len != e->stored_len)
                return -EBADMSG;
        uint8_t ad[LB_BLOB_AD_MAX_SIZE];
        size_t ad_len = blob_ad(e, ad);
        return lb_unseal_verify(k->data_key, ad, ad_len, stored, stored_len);
}

/* ---- pack writer -------------------------------------------------------- */

struct LbPackWriter {
        LbKeys keys;            /* a copy, wiped on free */
        LbBuf blobs;            /* sealed blobs in insertion order */
        LbPackEntry *entries;   /* offset = position in blobs */
        size_t n, cap;
        /* A finished pack: blobs in pack order, then tail. */
        bool finished;
        LbBuf tail;             /* sealed TOC and footer */
        struct iovec *iov;
        size_t iov_cap;
};

int lb_pack_writer_new(const LbKeys *k, LbPackWriter **ret) {
        LbPackWriter *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->keys = *k;
        *ret = w;
        return 0;
}

LbPackWriter *lb_pack_writer_free(LbPackWriter *w) {
        if (!w)
                return NULL;
        lb_keys_wipe(&w->keys);
        lb_buf_free(&w->blobs);
        lb_buf_free(&w->tail);
        free(w->entries);
        free(w->iov);
        free(w);
        return NULL;
}

int lb_pack_writer_add(LbPackWriter *w, const LbPackEntry *e, const void *stored, size_t stored_len) {
        if (entry_check(e) < 0 || stored_len != e->stored_len || w->finished)
                return -EINVAL;
        if (w->n >= LB_PACK_MAX_ENTRIES)
                return -E2BIG;
        /* Leave room for the largest TOC and the footer within LB_PACK_MAX_SIZE. */
        if ((uint64_t) w->blobs.len + stored_len > LB_PACK_MAX_SIZE - TOC_MAX_SIZE - LB_PACK_FOOTER_SIZE)
                return -EFBIG;
        if (w->n == w->cap) {
                size_t cap = w->cap ? w->cap * 2 : 64;
                LbPackEntry *a = reallocarray(w->entries, cap, sizeof *a);
                if (!a)
                        return -ENOMEM;
                w->entries = a;
                w->cap = cap;
        }
        uint64_t off = w->blobs.len;
        int r = lb_buf_append(&w->blobs, stored, stored_len);
        if (r < 0)
                return r;
        w->entries[w->n] = *e;
        w->entries[w->n].offset = off;
        w->n++;
        return 0;
}

size_t lb_pack_writer_count(const LbPackWriter *w) {
        return w->n;
}

uint64_t lb_pack_writer_size(const LbPackWriter *w) {
        return w->blobs.len;
}

void lb_pack_writer_reset(LbPackWriter *w) {
        lb_buf_clear(&w->blobs);
        lb_buf_clear(&w->tail);
        w->n = 0;
        w->finished = false;
}

int lb_pack_writer_finish_iov(LbPackWriter *w, const struct iovec **ret_iov, size_t *ret_n_iov, uint64_t *ret_size,
                              LbPackEntry **ret_entries, size_t *ret_n, uint32_t **ret_order) {
        if (w->finished)
                return -EINVAL;
        size_t n = w->n;
        _cleanup_free_ uint32_t *perm = malloc(LB_MAX(n, (size_t) 1) * sizeof *perm);
        _cleanup_free_ LbPackEntry *out_entries = malloc(LB_MAX(n, (size_t) 1) * sizeof *out_entries);
        if (!perm || !out_entries)
                return -ENOMEM;
        if (n + 1 > w->iov_cap) {
                struct iovec *v = reallocarray(w->iov, n + 1, sizeof *v);
                if (!v)
                        return -ENOMEM;
                w->iov = v;
                w->iov_cap = n + 1;
        }

        /* Fisher-Yates: perm is a uniformly random order of the blobs. */
        for (size_t i = 0; i < n; i++)
                perm[i] = (uint32_t) i;
        LbRng rng;
        lb_rng_init(&rng);
        for (size_t i = n; i > 1; i--) {
                size_t j = lb_rng_uniform(&rng, (uint32_t) i);
                uint32_t t = perm[i - 1];
                perm[i - 1] = perm[j];
                perm[j] = t;
        }
        lb_rng_wipe(&rng);

        uint64_t off = 0;
        for (size_t i = 0; i < n; i++) {
                const LbPackEntry *src = &w->entries[perm[i]];
                out_entries[i] = *src;
                out_entries[i].offset = off;
                w->iov[i] = (struct iovec) { w->blobs.data + src->offset, src->stored_len };
                off += src->stored_len;
        }

        /* The TOC is written where its ciphertext goes and sealed in place. */
        size_t toc_plain_len = 8;
        for (size_t i = 0; i < n; i++)
                toc_plain_len += lb_entry_record_size(&out_entries[i]);
        size_t toc_len = toc_plain_len + LB_SEAL_OVERHEAD;
        lb_buf_clear(&w->tail);
        uint8_t *p;
        int r = lb_buf_grow(&w->tail, toc_len + LB_PACK_FOOTER_SIZE, &p);
        if (r < 0)
                return r;
        uint8_t *toc = p + LB_NONCE_SIZE;
        memcpy(toc, LB_TOC_MAGIC, 4);
        lb_put_le32(toc + 4, (uint32_t) n);
        for (size_t i = 0, at = 8; i < n; i++) {
                lb_entry_encode(&out_entries[i], toc + at);
                at += lb_entry_record_size(&out_entries[i]);
        }
        lb_seal(w->keys.meta_key, LB_TOC_AD, strlen(LB_TOC_AD), toc, toc_plain_len, p);
        p += toc_len;
        lb_put_le32(p, (uint32_t) toc_len);
        lb_put_le32(p + 4, LB_FORMAT_VERSION);
        memcpy(p + 8, LB_PACK_MAGIC, 8);
        w->iov[n] = (struct iovec) { w->tail.data, w->tail.len };

        w->finished = true;
        *ret_iov = w->iov;
        *ret_n_iov = n + 1;
        *ret_size = off + w->tail.len;
        *ret_entries = LB_TAKE_PTR(out_entries);
        *ret_n = n;
        if (ret_order)
                *ret_order = LB_TAKE_PTR(perm);
        return 0;
}

/* On success the writer is empty again and can build another pack. */
int lb_pack_writer_finish_ordered(LbPackWriter *w, LbBuf *ret_bytes, LbPackEntry **ret_entries, size_t *ret_n,
                                  uint32_t **ret_order) {
        const struct iovec *iov;
        size_t n_iov, n;
        uint64_t size;
        _cleanup_free_ LbPackEntry *entries = NULL;
        _cleanup_free_ uint32_t *order = NULL;
        int r = lb_pack_writer_finish_iov(w, &iov, &n_iov, &size, &entries, &n, &order);
        if (r < 0)
                return r;
        /* Built in *ret_bytes, reusing its allocation. */
        lb_buf_clear(ret_bytes);
        r = lb_buf_reserve(ret_bytes, size);
        for (size_t i = 0; r == 0 && i < n_iov; i++)
                r = lb_buf_append(ret_bytes, iov[i].iov_base, iov[i].iov_len);
        lb_pack_writer_reset(w);
        if (r < 0) {
                lb_buf_clear(ret_bytes);
                return r;
        }
        *ret_entries = LB_TAKE_PTR(entries);
        *ret_n = n;
        if (ret_order)
                *ret_order = LB_TAKE_PTR(order);
        return 0;
}

int lb_pack_writer_finish(LbPackWriter *w, LbBuf *ret_bytes, LbPackEntry **ret_entries, size_t *ret_n) {
        return lb_pack_writer_finish_ordered(w, ret_bytes, ret_entries, ret_n, NULL);
}

/* ---- pack parsing ------------------------------------------------------- */

int lb_pack_parse_footer(const uint8_t footer[LB_PACK_FOOTER_SIZE], uint64_t pack_size, uint32_t *ret_toc_len) {
        if (pack_size < LB_PACK_FOOTER_SIZE || pack_size > LB_PACK_MAX_SIZE)
                return -EBADMSG;
        if (memcmp(footer + 8, LB_PACK_MAGIC, 8) != 0)
                return -EBADMSG;
        if (lb_get_le32(footer + 4) != LB_FORMAT_VERSION)
                return -EPROTONOSUPPORT;
        uint32_t toc_len = lb_get_le32(footer);
        if (toc_len < TOC_MIN_SIZE || toc_len > TOC_MAX_SIZE || toc_len > pack_size - LB_PACK_FOOTER_SIZE)
                return -EBADMSG;
        if ((toc_len - TOC_MIN_SIZE) % 8 != 0)
                return -EBADMSG;
        *ret_toc_len = toc_len;
        return 0;
}

static int cmp_offset(const void *a, const void *b) {
        const LbPackEntry *x = a, *y = b;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int lb_pack_parse_toc(const LbKeys *k, const uint8_t *sealed, size_t n, uint64_t blobs_end,
                      LbPackEntry **ret, size_t *ret_n) {
        if (n < TOC_MIN_SIZE || n > TOC_MAX_SIZE)
                return -EBADMSG;
        _cleanup_buf_ LbBuf plain = {};
        int r = lb_unseal_buf(k->meta_key, LB_TOC_AD, sealed, n, &plain);
        if (r < 0)
                return r;

        LbReader rd = lb_reader(plain.data, plain.len);
        const uint8_t *magic;
        uint32_t count;
        r = lb_reader_bytes(&rd, 4, &magic);
        if (r < 0)
                return r;
        if (memcmp(magic, LB_TOC_MAGIC, 4) != 0)
                return -EBADMSG;
        r = lb_reader_le32(&rd, &count);
        if (r < 0)
                return r;
        if (count > LB_PACK_MAX_ENTRIES || (uint64_t) count * LB_ENTRY_SIZE > lb_reader_left(&rd) ||
            (uint64_t) count * LB_RECORD_MAX_SIZE < lb_reader_left(&rd))
                return -EBADMSG;

        _cleanup_free_ LbPackEntry *entries = calloc(LB_MAX(count, 1u), sizeof *entries);
        _cleanup_free_ LbPackEntry *sorted = calloc(LB_MAX(count, 1u), sizeof *sorted);
        if (!entries || !sorted)
                return -ENOMEM;
        for (uint32_t i = 0; i < count; i++) {
                r = lb_record_read(&rd, &entries[i]);
                if (r < 0)
                        return r;
                if (entries[i].offset > blobs_end || entries[i].stored_len > blobs_end - entries[i].offset)
                        return -EBADMSG;
        }

        if (lb_reader_left(&rd) != 0)
                return -EBADMSG; /* the records must fill the TOC exactly */

        /* No two blobs may share bytes. */
        if (count > 0)
                memcpy(sorted, entries, (size_t) count * sizeof *sorted);
        lb_qsort(sorted, count, sizeof *sorted, cmp_offset);
        for (uint32_t i = 1; i < count; i++)
                if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].stored_len)
                        return -EBADMSG;

        *ret = LB_TAKE_PTR(entries);
        *ret_n = count;
        return 0;
}

int lb_pack_parse(const LbKeys *k, const uint8_t *pack, size_t pack_size, LbPackEntry **ret, size_t *ret_n) {
        if (pack_size < LB_PACK_FOOTER_SIZE)
                return -EBADMSG;
        uint32_t toc_len;
        int r = lb_pack_parse_footer(pack + pack_size - LB_PACK_FOOTER_SIZE, pack_size, &toc_len);
        if (r < 0)
                return r;
        uint64_t blobs_end = pack_size - LB_PACK_FOOTER_SIZE - toc_len;
        return lb_pack_parse_toc(k, pack + blobs_end, toc_len, blobs_end, ret, ret_n);
}
