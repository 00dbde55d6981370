/* SPDX-License-Identifier: MIT */
/*
 * Snapshot plaintext: magic "LBSN" || TLV records. Layout and reader rules:
 * docs/design.md "Snapshots". As for trees, one validator (snapshot_check)
 * serves the encoder and the decoder.
 */
#include "store/snapshot.h"

#include "store/tlv.h"

_Static_assert(sizeof(LbSnapshotStats) == LB_SNAP_STATS_COUNT * sizeof(uint64_t),
               "LbSnapshotStats must be LB_SNAP_STATS_COUNT u64s");

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

void lb_snapshot_free(LbSnapshot *s) {
        if (!s)
                return;
        free(s->hostname);
        free(s->username);
        strv_free(s->tags, s->n_tags);
        strv_free(s->paths, s->n_paths);
        free(s->source);
        free(s->program);
        lb_meta_free(s->meta, s->n_meta);
        free(s);
}

static void snapshot_freep(LbSnapshot **s) {
        lb_snapshot_free(*s);
}

const char *lb_snapshot_meta(const LbSnapshot *s, const char *key) {
        return s ? lb_meta_get(s->meta, s->n_meta, key) : NULL;
}

/* The STATS value, in struct order. */
static void stats_to_array(const LbSnapshotStats *st, uint64_t v[LB_SNAP_STATS_COUNT]) {
        v[0] = st->files;
        v[1] = st->dirs;
        v[2] = st->bytes_read;
        v[3] = st->bytes_new;
        v[4] = st->bytes_stored;
        v[5] = st->chunks;
        v[6] = st->chunks_new;
        v[7] = st->duration_ns;
        v[8] = st->errors;
}

static void stats_from_array(const uint64_t v[LB_SNAP_STATS_COUNT], LbSnapshotStats *st) {
        st->files = v[0];
        st->dirs = v[1];
        st->bytes_read = v[2];
        st->bytes_new = v[3];
        st->bytes_stored = v[4];
        st->chunks = v[5];
        st->chunks_new = v[6];
        st->duration_ns = v[7];
        st->errors = v[8];
}

/* ---- validation ------------------------------------------------------------ */

static bool string_ok(const char *s) {
        return s && strnlen(s, LB_SNAP_STRING_MAX + 1) <= LB_SNAP_STRING_MAX;
}

static bool strv_ok(char *const *v, size_t n) {
        if (n > LB_SNAP_LIST_MAX || (n && !v))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!string_ok(v[i]))
                        return false;
        return true;
}

/* 0 if s can be encoded (and is what a decoder may return), -EINVAL otherwise. */
static int snapshot_check(const LbSnapshot *s) {
        if ((s->hostname && !string_ok(s->hostname)) || (s->username && !string_ok(s->username)) ||
            (s->source && !string_ok(s->source)) || (s->program && !string_ok(s->program)))
                return -EINVAL;
        if (!strv_ok(s->tags, s->n_tags) || !strv_ok(s->paths, s->n_paths))
                return -EINVAL;
        if (s->n_meta > LB_SNAP_LIST_MAX || (s->n_meta && !s->meta))
                return -EINVAL;
        for (size_t i = 0; i < s->n_meta; i++)
                if (!string_ok(s->meta[i].key) || s->meta[i].key[0] == 0 || !string_ok(s->meta[i].value))
                        return -EINVAL;
        return 0;
}

/* ---- encoding ---------------------------------------------------------------- */

/* Records in ascending order of tag number (critical bit ignored). */
static int snapshot_encode(const LbSnapshot *s, LbBuf *out) {
        int r;
#define PUT(expr)                       \
        do {                            \
                r = (expr);             \
                if (r < 0)              \
                        return r;       \
        } while (0)
        if (snapshot_check(s) < 0)
                return -EINVAL;
        _cleanup_buf_ LbBuf scratch = {};

        PUT(lb_buf_append(out, LB_SNAPSHOT_MAGIC, 4));
        PUT(lb_tlv_put_u64(out, LB_SNAP_TAG_TIME, (uint64_t) s->time_ns));
        PUT(lb_tlv_put_u32(out, LB_SNAP_TAG_TZOFF, (uint32_t) s->tz_offset));
        if (s->hostname)
                PUT(lb_tlv_put_str(out, LB_SNAP_TAG_HOST, s->hostname));
        if (s->username)
                PUT(lb_tlv_put_str(out, LB_SNAP_TAG_USER, s->username));
        for (size_t i = 0; i < s->n_tags; i++)
                PUT(lb_tlv_put_str(out, LB_SNAP_TAG_TAG, s->tags[i]));
        for (size_t i = 0; i < s->n_paths; i++)
                PUT(lb_tlv_put_str(out, LB_SNAP_TAG_PATH, s->paths[i]));
        PUT(lb_tlv_put(out, LB_SNAP_TAG_TREE, s->tree.b, LB_ID_SIZE));
        if (s->source)
                PUT(lb_tlv_put_str(out, LB_SNAP_TAG_SOURCE, s->source));
        if (s->program)
                PUT(lb_tlv_put_str(out, LB_SNAP_TAG_PROGRAM, s->program));
        if (s->has_parent)
                PUT(lb_tlv_put(out, LB_SNAP_TAG_PARENT, s->parent.b, LB_ID_SIZE));

        uint64_t v[LB_SNAP_STATS_COUNT];
        uint8_t st[LB_SNAP_STATS_COUNT * 8];
        stats_to_array(&s->stats, v);
        for (size_t i = 0; i < LB_SNAP_STATS_COUNT; i++)
                lb_put_le64(st + 8 * i, v[i]);
        PUT(lb_tlv_put(out, LB_SNAP_TAG_STATS, st, sizeof st));

        for (size_t i = 0; i < s->n_meta; i++)
                PUT(lb_tlv_put_meta(out, &scratch, LB_SNAP_TAG_META, &s->meta[i]));
#undef PUT
        if (out->len > LB_SNAPSHOT_MAX_SIZE)
                return -E2BIG;
        return 0;
}

int lb_snapshot_encode(const LbSnapshot *s, LbBuf *out) {
        lb_buf_clear(out);
        int r = snapshot_encode(s, out);
        if (r < 0)
                lb_buf_clear(out);
        return r;
}

/* ---- decoding ---------------------------------------------------------------- */

/* Appends a string record to a list of at most LB_SNAP_LIST_MAX entries. */
static int strv_push(char ***v, size_t *n, size_t *cap, const uint8_t *p, uint32_t len) {
        if (*n >= LB_SNAP_LIST_MAX)
                return -EBADMSG;
        if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 4;
                char **nv = reallocarray(*v, c, sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                *v = nv;
                *cap = c;
        }
        int r = lb_tlv_str(p, len, LB_SNAP_STRING_MAX, &(*v)[*n]);
        if (r < 0)
                return r;
        (*n)++;
        return 0;
}

/* A single-valued string field. */
static int str_set(char **field, const uint8_t *v, uint32_t n) {
        return lb_tlv_str(v, n, LB_SNAP_STRING_MAX, field);
}

static bool snap_tag_known(uint16_t tag) {
        switch (tag) {
        case LB_SNAP_TAG_TIME:
        case LB_SNAP_TAG_TZOFF:
        case LB_SNAP_TAG_HOST:
        case LB_SNAP_TAG_USER:
        case LB_SNAP_TAG_TAG:
        case LB_SNAP_TAG_PATH:
        case LB_SNAP_TAG_TREE:
        case LB_SNAP_TAG_SOURCE:
        case LB_SNAP_TAG_PROGRAM:
        case LB_SNAP_TAG_PARENT:
        case LB_SNAP_TAG_STATS:
        case LB_SNAP_TAG_META:
                return true;
        default:
                return false;
        }
}

static bool snap_tag_repeatable(uint16_t tag) {
        return tag == LB_SNAP_TAG_TAG || tag == LB_SNAP_TAG_PATH || tag == LB_SNAP_TAG_META;
}

int lb_snapshot_decode(const uint8_t *p, size_t n, LbSnapshot **ret) {
        if (n > LB_SNAPSHOT_MAX_SIZE || n < 4 || memcmp(p, LB_SNAPSHOT_MAGIC, 4) != 0)
                return -EBADMSG;

        _cleanup_(snapshot_freep) LbSnapshot *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        LbReader rd = lb_reader(p + 4, n - 4);
        uint32_t seen = 0;
        size_t tags_cap = 0, paths_cap = 0;
        int r;

        for (;;) {
                uint16_t tag;
                const uint8_t *v;
                uint32_t len;
                r = lb_tlv_next(&rd, &tag, &v, &len);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;

                r = lb_tlv_check(tag, snap_tag_known(tag), snap_tag_repeatable(tag), &seen);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;

                switch (tag) {
                case LB_SNAP_TAG_TIME: {
                        uint64_t t;
                        r = lb_tlv_u64(v, len, &t);
                        if (r >= 0)
                                s->time_ns = (int64_t) t;
                        break;
                }
                case LB_SNAP_TAG_TZOFF: {
                        uint32_t z;
                        r = lb_tlv_u32(v, len, &z);
                        if (r >= 0)
                                s->tz_offset = (int32_t) z;
                        break;
                }
                case LB_SNAP_TAG_HOST:
                        r = str_set(&s->hostname, v, len);
                        break;
                case LB_SNAP_TAG_USER:
                        r = str_set(&s->username, v, len);
                        break;
                case LB_SNAP_TAG_TAG:
                        r = strv_push(&s->tags, &s->n_tags, &tags_cap, v, len);
                        break;
                case LB_SNAP_TAG_PATH:
                        r = strv_push(&s->paths, &s->n_paths, &paths_cap, v, len);
                        break;
                case LB_SNAP_TAG_TREE:
                        if (len != LB_ID_SIZE)
                                return -EBADMSG;
                        memcpy(s->tree.b, v, LB_ID_SIZE);
                        break;
                case LB_SNAP_TAG_SOURCE:
                        r = str_set(&s->source, v, len);
                        break;
                case LB_SNAP_TAG_PROGRAM:
                        r = str_set(&s->program, v, len);
                        break;
                case LB_SNAP_TAG_PARENT:
                        if (len != LB_ID_SIZE)
                                return -EBADMSG;
                        memcpy(s->parent.b, v, LB_ID_SIZE);
                        s->has_parent = true;
                        break;
                case LB_SNAP_TAG_STATS: {
                        /* Newer writers may append counters: read the ones
                         * we know, ignore the rest; missing ones stay 0. */
                        if (len % 8 != 0)
                                return -EBADMSG;
                        uint64_t a[LB_SNAP_STATS_COUNT] = {};
                        for (size_t i = 0; i < LB_SNAP_STATS_COUNT && i < len / 8; i++)
                                a[i] = lb_get_le64(v + 8 * i);
                        stats_from_array(a, &s->stats);
                        break;
                }
                case LB_SNAP_TAG_META:
                        r = lb_tlv_meta_append(v, len, LB_SNAP_STRING_MAX, LB_SNAP_LIST_MAX, &s->meta, &s->n_meta);
                        break;
                default:
                        /* unreachable: snap_tag_known() */
                        return -EBADMSG;
                }
                if (r < 0)
                        return r;
        }

        if (!(seen & (1u << (LB_SNAP_TAG_TIME & 0x1f))) || !(seen & (1u << (LB_SNAP_TAG_TREE & 0x1f))))
                return -EBADMSG;
        if (snapshot_check(s) < 0)
                return -EBADMSG;
        *ret = LB_TAKE_PTR(s);
        return 0;
}
