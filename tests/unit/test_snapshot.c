/* SPDX-License-Identifier: MIT */
/*
 * Snapshot plaintext: round trips, forward compatibility of STATS and
 * unknown tags, every rejection rule, and the golden files in tests/data/.
 *
 * `test-snapshot --write-golden DIR` (re)writes DIR/snapshot-v1.bin and
 * DIR/bad/snapshot-*.bin from the fixtures below. Regenerating the good
 * file is a format change: do it only with a version bump and the spec.
 */
#include <stdio.h>

#include "store/snapshot.h"
#include "store/tlv.h"
#include "store/util.h"
#include "tests.h"

/* ---- helpers ---------------------------------------------------------------- */

static void id_fill(LbId *id, uint8_t seed) {
        for (size_t i = 0; i < LB_ID_SIZE; i++)
                id->b[i] = (uint8_t) (seed + 7 * i);
}

static char *xstrdup(const char *s) {
        char *p = strdup(s);
        CHECK(p);
        return p;
}

static void snapshot_freep(LbSnapshot **s) {
        lb_snapshot_free(*s);
}
#define _cleanup_snapshot_ _cleanup_(snapshot_freep)

static LbSnapshot *snap_new(void) {
        LbSnapshot *s = calloc(1, sizeof *s);
        CHECK(s);
        s->time_ns = 1700000000000000000ll;
        id_fill(&s->tree, 0x60);
        return s;
}

static void push(char ***v, size_t *n, const char *s) {
        char **nv = reallocarray(*v, *n + 1, sizeof *nv);
        CHECK(nv);
        *v = nv;
        nv[(*n)++] = s ? xstrdup(s) : NULL;
}

static void add_meta(LbSnapshot *s, const char *k, const char *v) {
        LbMeta *m = reallocarray(s->meta, s->n_meta + 1, sizeof *m);
        CHECK(m);
        s->meta = m;
        m[s->n_meta++] = (LbMeta) { .key = k ? xstrdup(k) : NULL, .value = v ? xstrdup(v) : NULL };
}

static bool str_eq(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static bool strv_eq(char **a, size_t na, char **b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!str_eq(a[i], b[i]))
                        return false;
        return true;
}

/* Equality of everything serialized (not id). */
static bool snap_eq(const LbSnapshot *a, const LbSnapshot *b) {
        if (a->time_ns != b->time_ns || a->tz_offset != b->tz_offset || !str_eq(a->hostname, b->hostname) ||
            !str_eq(a->username, b->username) || !strv_eq(a->tags, a->n_tags, b->tags, b->n_tags) ||
            !strv_eq(a->paths, a->n_paths, b->paths, b->n_paths) || memcmp(&a->tree, &b->tree, LB_ID_SIZE) != 0 ||
            !str_eq(a->source, b->source) || !str_eq(a->program, b->program) || a->has_parent != b->has_parent ||
            memcmp(&a->stats, &b->stats, sizeof a->stats) != 0 || a->n_meta != b->n_meta)
                return false;
        if (a->has_parent && memcmp(&a->parent, &b->parent, LB_ID_SIZE) != 0)
                return false;
        for (size_t i = 0; i < a->n_meta; i++)
                if (!str_eq(a->meta[i].key, b->meta[i].key) || !str_eq(a->meta[i].value, b->meta[i].value))
                        return false;
        return true;
}

static void roundtrip(const LbSnapshot *s, LbBuf *out) {
        CHECK_OK(lb_snapshot_encode(s, out));
        _cleanup_snapshot_ LbSnapshot *d = NULL;
        CHECK_OK(lb_snapshot_decode(out->data, out->len, &d));
        CHECK(snap_eq(s, d));
        LbId zero = {};
        CHECK(memcmp(&d->id, &zero, LB_ID_SIZE) == 0);
}

static int decode_bytes(const uint8_t *p, size_t n) {
        uint8_t *c = malloc(n ? n : 1);
        CHECK(c);
        if (n)
                memcpy(c, p, n);
        LbSnapshot *s = NULL;
        int r = lb_snapshot_decode(c, n, &s);
        free(c);
        if (r >= 0) {
                CHECK(s);
                lb_snapshot_free(s);
        }
        return r;
}

static int decode_buf(const LbBuf *b) {
        return decode_bytes(b->data, b->len);
}

static int encode_one(LbSnapshot *s) {
        _cleanup_buf_ LbBuf b = {};
        int r = lb_snapshot_encode(s, &b);
        if (r < 0)
                CHECK(b.len == 0);
        lb_snapshot_free(s);
        return r;
}

/* raw records */
static void raw(LbBuf *b, uint16_t tag, const void *v, size_t n) {
        CHECK_OK(lb_tlv_put(b, tag, v, n));
}
static void raw_begin(LbBuf *b) {
        lb_buf_clear(b);
        CHECK_OK(lb_buf_append(b, LB_SNAPSHOT_MAGIC, 4));
}
static void raw_time(LbBuf *b) {
        CHECK_OK(lb_tlv_put_u64(b, LB_SNAP_TAG_TIME, 1700000000000000000ull));
}
static void raw_tree(LbBuf *b) {
        LbId id;
        id_fill(&id, 0x60);
        raw(b, LB_SNAP_TAG_TREE, id.b, LB_ID_SIZE);
}
/* magic || TIME || TREE: the smallest valid snapshot */
static void raw_min(LbBuf *b) {
        raw_begin(b);
        raw_time(b);
        raw_tree(b);
}

/* ---- golden fixture ------------------------------------------------------------- */

static LbSnapshot *golden_snapshot(void) {
        LbSnapshot *s = calloc(1, sizeof *s);
        CHECK(s);
        s->time_ns = 1700000000123456789ll;
        s->tz_offset = -18000;
        s->hostname = xstrdup("db1.example.com");
        s->username = xstrdup("postgres");
        push(&s->tags, &s->n_tags, "daily");
        push(&s->tags, &s->n_tags, "pg16");
        push(&s->paths, &s->n_paths, "/var/lib/postgresql/16/main");
        push(&s->paths, &s->n_paths, "/etc/postgresql");
        id_fill(&s->tree, 0x60);
        s->source = xstrdup("postgresql");
        s->program = xstrdup("longbox 0.1.0");
        s->has_parent = true;
        id_fill(&s->parent, 0x61);
        s->stats = (LbSnapshotStats) {
                .files = 1234,
                .dirs = 56,
                .bytes_read = 10000000000ull,
                .bytes_new = 2000000000ull,
                .bytes_stored = 900000000ull,
                .chunks = 150000,
                .chunks_new = 30000,
                .duration_ns = 61000000000ull,
                .errors = 2,
        };
        add_meta(s, "pg.system_identifier", "7301234567890123456");
        add_meta(s, "pg.timeline", "1");
        return s;
}

static void check_golden(const LbSnapshot *s) {
        LbId id, zero = {};
        CHECK(memcmp(&s->id, &zero, LB_ID_SIZE) == 0);
        CHECK(s->time_ns == 1700000000123456789ll);
        CHECK_EQ_INT(s->tz_offset, -18000);
        CHECK(str_eq(s->hostname, "db1.example.com"));
        CHECK(str_eq(s->username, "postgres"));
        CHECK_EQ_INT(s->n_tags, 2);
        CHECK(str_eq(s->tags[0], "daily") && str_eq(s->tags[1], "pg16"));
        CHECK_EQ_INT(s->n_paths, 2);
        CHECK(str_eq(s->paths[0], "/var/lib/postgresql/16/main") && str_eq(s->paths[1], "/etc/postgresql"));
        id_fill(&id, 0x60);
        CHECK(memcmp(&s->tree, &id, LB_ID_SIZE) == 0);
        CHECK(str_eq(s->source, "postgresql"));
        CHECK(str_eq(s->program, "longbox 0.1.0"));
        CHECK(s->has_parent);
        id_fill(&id, 0x61);
        CHECK(memcmp(&s->parent, &id, LB_ID_SIZE) == 0);
        CHECK(s->stats.files == 1234);
        CHECK(s->stats.dirs == 56);
        CHECK(s->stats.bytes_read == 10000000000ull);
        CHECK(s->stats.bytes_new == 2000000000ull);
        CHECK(s->stats.bytes_stored == 900000000ull);
        CHECK(s->stats.chunks == 150000);
        CHECK(s->stats.chunks_new == 30000);
        CHECK(s->stats.duration_ns == 61000000000ull);
        CHECK(s->stats.errors == 2);
        CHECK_EQ_INT(s->n_meta, 2);
        CHECK(str_eq(s->meta[0].key, "pg.system_identifier") && str_eq(s->meta[0].value, "7301234567890123456"));
        CHECK(str_eq(s->meta[1].key, "pg.timeline") && str_eq(s->meta[1].value, "1"));
        CHECK(str_eq(lb_snapshot_meta(s, "pg.timeline"), "1"));
}

/* ---- round trips ------------------------------------------------------------------- */

TEST(test_roundtrip_full) {
        _cleanup_snapshot_ LbSnapshot *s = golden_snapshot();
        _cleanup_buf_ LbBuf b = {};
        roundtrip(s, &b);
        CHECK(memcmp(b.data, "LBSN", 4) == 0);
}

TEST(test_roundtrip_minimal) {
        _cleanup_snapshot_ LbSnapshot *s = snap_new();
        _cleanup_buf_ LbBuf b = {};
        roundtrip(s, &b);
        /* magic, TIME, TZOFF, TREE, STATS */
        CHECK_EQ_INT(b.len, 4 + (6 + 8) + (6 + 4) + (6 + 32) + (6 + 72));

        /* negative time, empty strings, odd bytes, extremes */
        _cleanup_snapshot_ LbSnapshot *e = snap_new();
        e->time_ns = INT64_MIN;
        e->tz_offset = INT32_MIN;
        e->hostname = xstrdup("");
        e->username = xstrdup("\xff\xfe");
        e->source = xstrdup("");
        e->program = xstrdup("a\nb");
        push(&e->tags, &e->n_tags, "");
        push(&e->paths, &e->n_paths, "/with space/and\nnewline");
        add_meta(e, "k", "");
        e->stats.errors = UINT64_MAX;
        roundtrip(e, &b);
}

TEST(test_limits) {
        /* exactly at the limits: accepted */
        _cleanup_snapshot_ LbSnapshot *s = snap_new();
        _cleanup_free_ char *longs = malloc(LB_SNAP_STRING_MAX + 2);
        CHECK(longs);
        memset(longs, 'h', LB_SNAP_STRING_MAX + 1);
        longs[LB_SNAP_STRING_MAX] = 0;
        s->hostname = xstrdup(longs);
        for (int i = 0; i < LB_SNAP_LIST_MAX; i++) {
                push(&s->tags, &s->n_tags, "t");
                push(&s->paths, &s->n_paths, "/p");
                add_meta(s, "k", "v");
        }
        add_meta(s, "k", "v"); /* one too many */
        _cleanup_buf_ LbBuf b = {};
        CHECK_EQ_INT(lb_snapshot_encode(s, &b), -EINVAL);
        s->n_meta--;
        free(s->meta[s->n_meta].key);
        free(s->meta[s->n_meta].value);
        roundtrip(s, &b);

        /* too large as a whole: every list full of maximal strings */
        _cleanup_snapshot_ LbSnapshot *big = snap_new();
        for (int i = 0; i < LB_SNAP_LIST_MAX; i++) {
                push(&big->tags, &big->n_tags, longs);
                push(&big->paths, &big->n_paths, longs);
                add_meta(big, longs, longs);
        }
        CHECK_EQ_INT(lb_snapshot_encode(big, &b), -E2BIG);
        CHECK_EQ_INT(b.len, 0);
}

TEST(test_deterministic) {
        _cleanup_snapshot_ LbSnapshot *s = golden_snapshot();
        _cleanup_buf_ LbBuf a = {}, b = {}, c = {};
        CHECK_OK(lb_snapshot_encode(s, &a));
        /* id is not serialized */
        id_fill(&s->id, 0x99);
        CHECK_OK(lb_snapshot_encode(s, &b));
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        _cleanup_snapshot_ LbSnapshot *d = NULL;
        CHECK_OK(lb_snapshot_decode(a.data, a.len, &d));
        CHECK_OK(lb_snapshot_encode(d, &c));
        CHECK(a.len == c.len && memcmp(a.data, c.data, a.len) == 0);
}

TEST(test_meta_lookup) {
        _cleanup_snapshot_ LbSnapshot *s = snap_new();
        add_meta(s, "a", "1");
        add_meta(s, "b", "2");
        add_meta(s, "a", "3");
        CHECK(str_eq(lb_snapshot_meta(s, "a"), "1"));
        CHECK(str_eq(lb_snapshot_meta(s, "b"), "2"));
        CHECK(lb_snapshot_meta(s, "c") == NULL);
        CHECK(lb_snapshot_meta(s, NULL) == NULL);
        CHECK(lb_snapshot_meta(NULL, "a") == NULL);
        lb_snapshot_free(NULL);
}

/* ---- forward compatibility ------------------------------------------------------ */

TEST(test_stats_lengths) {
        _cleanup_buf_ LbBuf b = {};
        uint8_t v[12 * 8];
        for (int i = 0; i < 12; i++)
                lb_put_le64(v + 8 * i, 100 + (uint64_t) i);

        /* longer than known: extra values ignored */
        raw_min(&b);
        raw(&b, LB_SNAP_TAG_STATS, v, sizeof v);
        _cleanup_snapshot_ LbSnapshot *s = NULL;
        CHECK_OK(lb_snapshot_decode(b.data, b.len, &s));
        CHECK(s->stats.files == 100 && s->stats.errors == 108);

        /* shorter: the rest zero */
        raw_min(&b);
        raw(&b, LB_SNAP_TAG_STATS, v, 3 * 8);
        _cleanup_snapshot_ LbSnapshot *t = NULL;
        CHECK_OK(lb_snapshot_decode(b.data, b.len, &t));
        CHECK(t->stats.files == 100 && t->stats.dirs == 101 && t->stats.bytes_read == 102);
        CHECK(t->stats.bytes_new == 0 && t->stats.errors == 0 && t->stats.duration_ns == 0);

        raw_min(&b);
        raw(&b, LB_SNAP_TAG_STATS, v, 0);
        CHECK_OK(decode_buf(&b));

        /* not a multiple of 8 */
        raw_min(&b);
        raw(&b, LB_SNAP_TAG_STATS, v, 9 * 8 - 1);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        raw_min(&b);
        raw(&b, LB_SNAP_TAG_STATS, v, 4);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
}

TEST(test_unknown_tags) {
        _cleanup_buf_ LbBuf b = {};
        raw_min(&b);
        raw(&b, 12, "new field", 9);
        raw(&b, 0x7fff, "", 0);
        raw(&b, 12, "again", 5);
        CHECK_OK(decode_buf(&b));

        raw_min(&b);
        raw(&b, 0x8000 | 12, "must understand", 15);
        CHECK_EQ_INT(decode_buf(&b), -EPROTONOSUPPORT);
        raw_begin(&b);
        raw(&b, 0xffff, "", 0);
        raw_time(&b);
        raw_tree(&b);
        CHECK_EQ_INT(decode_buf(&b), -EPROTONOSUPPORT);

        /* records in another order are accepted */
        raw_begin(&b);
        raw_tree(&b);
        CHECK_OK(lb_tlv_put_str(&b, LB_SNAP_TAG_HOST, "h"));
        raw_time(&b);
        CHECK_OK(decode_buf(&b));
}

/* ---- rejections ----------------------------------------------------------------- */

TEST(test_encode_rejects) {
        LbSnapshot *s;
        char longs[LB_SNAP_STRING_MAX + 2];
        memset(longs, 'x', sizeof longs - 1);
        longs[sizeof longs - 1] = 0;

        s = snap_new();
        s->hostname = xstrdup(longs);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        s->username = xstrdup(longs);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        s->source = xstrdup(longs);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        s->program = xstrdup(longs);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        push(&s->tags, &s->n_tags, longs);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        push(&s->paths, &s->n_paths, longs);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        push(&s->tags, &s->n_tags, NULL);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        s->n_paths = 1; /* with paths == NULL */
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        add_meta(s, "", "v");
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        add_meta(s, "k", NULL);
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        add_meta(s, NULL, "v");
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        add_meta(s, longs, "v");
        CHECK_EQ_INT(encode_one(s), -EINVAL);
        s = snap_new();
        for (int i = 0; i <= LB_SNAP_LIST_MAX; i++)
                push(&s->tags, &s->n_tags, "t");
        CHECK_EQ_INT(encode_one(s), -EINVAL);
}

TEST(test_decode_rejects) {
        _cleanup_buf_ LbBuf b = {};
        LbId id = {};
        uint8_t zero8[8] = {};

        /* magic and size */
        CHECK_EQ_INT(decode_bytes((const uint8_t *) "", 0), -EBADMSG);
        CHECK_EQ_INT(decode_bytes((const uint8_t *) "LBS", 3), -EBADMSG);
        CHECK_EQ_INT(decode_bytes((const uint8_t *) "LBSN", 4), -EBADMSG); /* no TIME, no TREE */
        raw_min(&b);
        b.data[3] = 'n';
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        {
                _cleanup_free_ uint8_t *huge = calloc(1, LB_SNAPSHOT_MAX_SIZE + 1);
                CHECK(huge);
                _cleanup_buf_ LbBuf m = {};
                raw_min(&m);
                memcpy(huge, m.data, m.len);
                LbSnapshot *s = NULL;
                CHECK_EQ_INT(lb_snapshot_decode(huge, LB_SNAPSHOT_MAX_SIZE + 1, &s), -EBADMSG);
        }

        /* Every truncation of a full snapshot fails, except at a record
         * boundary after TREE: the plaintext has no overall length, and
         * relies on the seal (AEAD) to detect truncation. */
        _cleanup_snapshot_ LbSnapshot *g = golden_snapshot();
        CHECK_OK(lb_snapshot_encode(g, &b));
        {
                bool boundary_ok[4096] = {};
                CHECK(b.len < sizeof boundary_ok);
                LbReader rd = lb_reader(b.data + 4, b.len - 4);
                uint16_t tag;
                const uint8_t *v;
                uint32_t n;
                bool tree_seen = false;
                while (lb_tlv_next(&rd, &tag, &v, &n) == 1) {
                        tree_seen = tree_seen || tag == LB_SNAP_TAG_TREE;
                        boundary_ok[4 + rd.pos] = tree_seen;
                }
                for (size_t cut = 0; cut < b.len; cut++)
                        CHECK_EQ_INT(decode_bytes(b.data, cut), boundary_ok[cut] ? 0 : -EBADMSG);
        }

        /* required fields */
        raw_begin(&b);
        raw_time(&b);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        raw_begin(&b);
        raw_tree(&b);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);

        /* duplicates of every single-valued tag */
        const uint16_t singles[] = { LB_SNAP_TAG_TIME, LB_SNAP_TAG_TZOFF, LB_SNAP_TAG_HOST, LB_SNAP_TAG_USER,
                                     LB_SNAP_TAG_TREE, LB_SNAP_TAG_SOURCE, LB_SNAP_TAG_PROGRAM,
                                     LB_SNAP_TAG_PARENT, LB_SNAP_TAG_STATS };
        for (size_t i = 0; i < LB_ARRAY_SIZE(singles); i++) {
                uint16_t t = singles[i];
                size_t len = t == LB_SNAP_TAG_TIME ? 8 : t == LB_SNAP_TAG_TZOFF ? 4
                           : t == LB_SNAP_TAG_TREE || t == LB_SNAP_TAG_PARENT ? LB_ID_SIZE
                           : t == LB_SNAP_TAG_STATS ? 8 : 1;
                uint8_t v[LB_ID_SIZE] = { 'a' };
                raw_min(&b);
                raw(&b, t, v, len);
                if (t != LB_SNAP_TAG_TIME && t != LB_SNAP_TAG_TREE) {
                        CHECK_OK(decode_buf(&b));
                        raw(&b, t, v, len);
                }
                CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        }
        /* repeatable tags */
        raw_min(&b);
        CHECK_OK(lb_tlv_put_str(&b, LB_SNAP_TAG_TAG, "a"));
        CHECK_OK(lb_tlv_put_str(&b, LB_SNAP_TAG_TAG, "a"));
        CHECK_OK(lb_tlv_put_str(&b, LB_SNAP_TAG_PATH, "/"));
        CHECK_OK(lb_tlv_put_str(&b, LB_SNAP_TAG_PATH, "/"));
        CHECK_OK(decode_buf(&b));

        /* widths */
        raw_begin(&b);
        raw(&b, LB_SNAP_TAG_TIME, zero8, 4);
        raw_tree(&b);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        raw_min(&b);
        raw(&b, LB_SNAP_TAG_TZOFF, zero8, 8);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        raw_begin(&b);
        raw_time(&b);
        raw(&b, LB_SNAP_TAG_TREE, id.b, LB_ID_SIZE - 1);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        raw_min(&b);
        raw(&b, LB_SNAP_TAG_PARENT, id.b, 0);
        CHECK_EQ_INT(decode_buf(&b), -EBADMSG);

        /* strings */
        char longs[LB_SNAP_STRING_MAX + 1];
        memset(longs, 's', sizeof longs);
        const uint16_t strtags[] = { LB_SNAP_TAG_HOST, LB_SNAP_TAG_USER, LB_SNAP_TAG_TAG, LB_SNAP_TAG_PATH,
                                     LB_SNAP_TAG_SOURCE, LB_SNAP_TAG_PROGRAM };
        for (size_t i = 0; i < LB_ARRAY_SIZE(strtags); i++) {
                raw_min(&b);
                raw(&b, strtags[i], longs, LB_SNAP_STRING_MAX);
                CHECK_OK(decode_buf(&b));
                raw_min(&b);
                raw(&b, strtags[i], longs, LB_SNAP_STRING_MAX + 1);
                CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
                raw_min(&b);
                raw(&b, strtags[i], "a\0b", 3);
                CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        }

        /* list lengths */
        const uint16_t listtags[] = { LB_SNAP_TAG_TAG, LB_SNAP_TAG_PATH, LB_SNAP_TAG_META };
        for (size_t i = 0; i < LB_ARRAY_SIZE(listtags); i++) {
                /* a META value is key_len u16 || key || value; the others are strings */
                const char *v = listtags[i] == LB_SNAP_TAG_META ? "\x01\x00" "k" : "abc";
                raw_min(&b);
                for (int k = 0; k < LB_SNAP_LIST_MAX; k++)
                        raw(&b, listtags[i], v, 3);
                CHECK_OK(decode_buf(&b));
                raw(&b, listtags[i], v, 3);
                CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        }

        /* META: key_len u16 || key || value */
        const struct {
                const char *v;
                size_t n;
                int expected;
        } metas[] = {
                { "", 0, -EBADMSG },
                { "\x01", 1, -EBADMSG },
                { "\x00\x00" "v", 3, -EBADMSG },     /* empty key */
                { "\x04\x00" "abc", 5, -EBADMSG },   /* key_len past the end */
                { "\x02\x00" "a\0c", 5, -EBADMSG },  /* NUL in key */
                { "\x01\x00" "a\0", 4, -EBADMSG },   /* NUL in value */
                { "\x03\x00" "abc", 5, 0 },          /* empty value */
                { "\x01\x00" "abc", 5, 0 },
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(metas); i++) {
                raw_min(&b);
                raw(&b, LB_SNAP_TAG_META, metas[i].v, metas[i].n);
                CHECK_EQ_INT(decode_buf(&b), metas[i].expected);
        }
        raw_min(&b);
        {
                _cleanup_free_ uint8_t *mv = malloc(2 + 2 * (LB_SNAP_STRING_MAX + 1));
                CHECK(mv);
                memset(mv, 'm', 2 + 2 * (LB_SNAP_STRING_MAX + 1));
                lb_put_le16(mv, LB_SNAP_STRING_MAX + 1);
                raw(&b, LB_SNAP_TAG_META, mv, 2 + LB_SNAP_STRING_MAX + 1 + 1);
                CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
                raw_min(&b);
                lb_put_le16(mv, 1);
                raw(&b, LB_SNAP_TAG_META, mv, 2 + 1 + LB_SNAP_STRING_MAX + 1);
                CHECK_EQ_INT(decode_buf(&b), -EBADMSG);
        }
}

/* ---- golden files ------------------------------------------------------------------ */

static void bad_truncated(LbBuf *out) {
        _cleanup_snapshot_ LbSnapshot *s = golden_snapshot();
        CHECK_OK(lb_snapshot_encode(s, out));
        out->len -= 5;
}
static void bad_critical(LbBuf *out) {
        raw_min(out);
        raw(out, 0x8000 | 42, "encrypted-with-new-scheme", 25);
}
static void bad_no_time(LbBuf *out) {
        raw_begin(out);
        CHECK_OK(lb_tlv_put_str(out, LB_SNAP_TAG_HOST, "db1"));
        raw_tree(out);
}
static void bad_no_tree(LbBuf *out) {
        raw_begin(out);
        raw_time(out);
        CHECK_OK(lb_tlv_put_str(out, LB_SNAP_TAG_HOST, "db1"));
}
static void bad_dup_time(LbBuf *out) {
        raw_min(out);
        raw_time(out);
}
static void bad_magic(LbBuf *out) {
        raw_min(out);
        memcpy(out->data, "LBTR", 4);
}
static void bad_stats(LbBuf *out) {
        uint8_t v[12] = {};
        raw_min(out);
        raw(out, LB_SNAP_TAG_STATS, v, sizeof v);
}
static void bad_tree_short(LbBuf *out) {
        LbId id;
        id_fill(&id, 0x60);
        raw_begin(out);
        raw_time(out);
        raw(out, LB_SNAP_TAG_TREE, id.b, LB_ID_SIZE - 1);
}
static void bad_string_nul(LbBuf *out) {
        raw_min(out);
        raw(out, LB_SNAP_TAG_HOST, "db1\0evil", 8);
}
static void bad_too_many_tags(LbBuf *out) {
        raw_min(out);
        for (int i = 0; i <= LB_SNAP_LIST_MAX; i++)
                raw(out, LB_SNAP_TAG_TAG, "t", 1);
}
static void bad_record_overrun(LbBuf *out) {
        raw_min(out);
        CHECK_OK(lb_tlv_put_str(out, LB_SNAP_TAG_HOST, "db1"));
        lb_put_le32(out->data + out->len - 3 - 4, 4);
}

typedef struct BadFile {
        const char *name;
        void (*build)(LbBuf *out);
        int expected;
} BadFile;

static const BadFile bad_files[] = {
        { "snapshot-truncated.bin", bad_truncated, -EBADMSG },
        { "snapshot-record-overrun.bin", bad_record_overrun, -EBADMSG },
        { "snapshot-unknown-critical.bin", bad_critical, -EPROTONOSUPPORT },
        { "snapshot-missing-time.bin", bad_no_time, -EBADMSG },
        { "snapshot-missing-tree.bin", bad_no_tree, -EBADMSG },
        { "snapshot-duplicate-time.bin", bad_dup_time, -EBADMSG },
        { "snapshot-bad-magic.bin", bad_magic, -EBADMSG },
        { "snapshot-stats-misaligned.bin", bad_stats, -EBADMSG },
        { "snapshot-tree-short.bin", bad_tree_short, -EBADMSG },
        { "snapshot-string-nul.bin", bad_string_nul, -EBADMSG },
        { "snapshot-too-many-tags.bin", bad_too_many_tags, -EBADMSG },
};

/* tests/data: $LB_SRC/tests/data if set, else next to this source file.
 * meson compiles with __FILE__ relative to the build root, which is two
 * levels above this executable (tests/unit/test-*). */
static char *data_path(const char *name) {
        const char *src = getenv("LB_SRC");
        if (src)
                return lb_strdup_printf("%s/tests/data/%s", src, name);
        const char *f = __FILE__;
        int dirlen = (int) (strrchr(f, '/') - f);
        if (f[0] == '/')
                return lb_strdup_printf("%.*s/../data/%s", dirlen, f, name);
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        CHECK(n > 0);
        exe[n] = 0;
        *strrchr(exe, '/') = 0;
        return lb_strdup_printf("%s/../../%.*s/../data/%s", exe, dirlen, f, name);
}

static void read_data(const char *name, LbBuf *out) {
        _cleanup_free_ char *p = data_path(name);
        CHECK(p);
        int r = lb_read_file(p, 1u << 20, out);
        if (r < 0)
                fprintf(stderr, "Failed to read %s: %s\n", p, strerror(-r));
        CHECK_OK(r);
}

TEST(test_golden) {
        _cleanup_buf_ LbBuf file = {}, b = {};
        read_data("snapshot-v1.bin", &file);
        _cleanup_snapshot_ LbSnapshot *s = NULL;
        CHECK_OK(lb_snapshot_decode(file.data, file.len, &s));
        check_golden(s);
        CHECK_OK(lb_snapshot_encode(s, &b));
        CHECK(b.len == file.len && memcmp(b.data, file.data, b.len) == 0);
        _cleanup_snapshot_ LbSnapshot *g = golden_snapshot();
        CHECK_OK(lb_snapshot_encode(g, &b));
        CHECK(b.len == file.len && memcmp(b.data, file.data, b.len) == 0);
}

TEST(test_golden_bad) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad_files); i++) {
                _cleanup_free_ char *name = lb_strdup_printf("bad/%s", bad_files[i].name);
                _cleanup_buf_ LbBuf file = {};
                CHECK(name);
                read_data(name, &file);
                int r = decode_buf(&file);
                if (r != bad_files[i].expected)
                        fprintf(stderr, "%s: got %d, expected %d\n", bad_files[i].name, r, bad_files[i].expected);
                CHECK_EQ_INT(r, bad_files[i].expected);
        }
}

static void write_file(const char *dir, const char *name, const LbBuf *b) {
        int r = lb_write_file_atomic(dir, name, b->data, b->len, 0644);
        if (r < 0)
                fprintf(stderr, "Failed to write %s/%s: %s\n", dir, name, strerror(-r));
        CHECK_OK(r);
        printf("wrote %s/%s (%zu bytes)\n", dir, name, b->len);
}

static int write_golden(const char *dir) {
        _cleanup_buf_ LbBuf b = {};
        _cleanup_snapshot_ LbSnapshot *s = golden_snapshot();
        CHECK_OK(lb_snapshot_encode(s, &b));
        write_file(dir, "snapshot-v1.bin", &b);
        _cleanup_free_ char *bad = lb_path_join(dir, "bad");
        CHECK(bad);
        CHECK_OK(lb_mkdir_p(bad, 0755));
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad_files); i++) {
                lb_buf_clear(&b);
                bad_files[i].build(&b);
                write_file(bad, bad_files[i].name, &b);
        }
        return 0;
}

int main(int argc, char **argv) {
        if (argc == 3 && strcmp(argv[1], "--write-golden") == 0)
                return write_golden(argv[2]);

        RUN(test_roundtrip_full);
        RUN(test_roundtrip_minimal);
        RUN(test_limits);
        RUN(test_deterministic);
        RUN(test_meta_lookup);
        RUN(test_stats_lengths);
        RUN(test_unknown_tags);
        RUN(test_encode_rejects);
        RUN(test_decode_rejects);
        RUN(test_golden);
        RUN(test_golden_bad);
        return 0;
}
