/* SPDX-License-Identifier: MIT */
/*
 * Trees and chunk lists: round trips, determinism, every rejection rule,
 * the chunk-list split rule, and the golden files in tests/data/.
 *
 * `test-tree --write-golden DIR` (re)writes DIR/tree-v1.bin,
 * DIR/chunklist-v1.bin and DIR/bad/{tree,chunklist}-*.bin from the fixtures
 * below. Regenerating the good files is a format change: do it only
 * together with a version bump and docs/design.md.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "store/tlv.h"
#include "store/tree.h"
#include "store/util.h"
#include "tests.h"

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
        /* splitmix64: deterministic, so failures reproduce */
        uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static void rnd_id(LbId *id) {
        for (size_t i = 0; i < LB_ID_SIZE; i += 8) {
                uint64_t v = rnd();
                memcpy(id->b + i, &v, 8);
        }
}

static void id_fill(LbId *id, uint8_t seed) {
        for (size_t i = 0; i < LB_ID_SIZE; i++)
                id->b[i] = (uint8_t) (seed + 7 * i);
}

static char *xstrdup(const char *s) {
        char *p = strdup(s);
        CHECK(p);
        return p;
}

static LbTree *tree_new(void) {
        LbTree *t = calloc(1, sizeof *t);
        CHECK(t);
        return t;
}

/* A valid node of the given type with the fields its type requires. */
static LbNode mk(const char *name, LbNodeType type) {
        LbNode n = { .name = xstrdup(name), .type = type, .mode = 0644, .uid = 1000, .gid = 100,
                     .mtime_ns = 1700000000000000000ll };
        if (type == LB_NODE_DIR) {
                n.has_subtree = true;
                id_fill(&n.subtree, 0xd0);
        } else if (type == LB_NODE_SYMLINK)
                n.link = xstrdup("target");
        return n;
}

static void set_content(LbNode *n, size_t count, bool indirect, uint64_t each) {
        free(n->content);
        n->content = calloc(count ? count : 1, sizeof *n->content);
        CHECK(n->content);
        n->n_content = count;
        n->indirect = indirect;
        n->size = 0;
        for (size_t i = 0; i < count; i++) {
                rnd_id(&n->content[i].id);
                n->content[i].size = each;
                n->size += each;
        }
}

static void add_meta(LbNode *n, const char *k, const char *v) {
        LbMeta *m = reallocarray(n->meta, n->n_meta + 1, sizeof *m);
        CHECK(m);
        n->meta = m;
        m[n->n_meta++] = (LbMeta) { .key = xstrdup(k), .value = xstrdup(v) };
}

static void add(LbTree *t, LbNode n) {
        CHECK_OK(lb_tree_add(t, &n));
}

static bool str_eq(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static bool node_eq(const LbNode *a, const LbNode *b) {
        if (!str_eq(a->name, b->name) || a->type != b->type || a->mode != b->mode || a->uid != b->uid ||
            a->gid != b->gid || !str_eq(a->user, b->user) || !str_eq(a->group, b->group) ||
            a->size != b->size || a->mtime_ns != b->mtime_ns || a->rdev != b->rdev || !str_eq(a->link, b->link) ||
            a->has_subtree != b->has_subtree || a->indirect != b->indirect || a->n_content != b->n_content ||
            a->has_xxh3 != b->has_xxh3 || a->xxh3 != b->xxh3 || a->n_meta != b->n_meta)
                return false;
        if (a->has_subtree && memcmp(&a->subtree, &b->subtree, sizeof a->subtree) != 0)
                return false;
        for (size_t i = 0; i < a->n_content; i++)
                if (memcmp(&a->content[i].id, &b->content[i].id, LB_ID_SIZE) != 0 ||
                    a->content[i].size != b->content[i].size)
                        return false;
        for (size_t i = 0; i < a->n_meta; i++)
                if (!str_eq(a->meta[i].key, b->meta[i].key) || !str_eq(a->meta[i].value, b->meta[i].value))
                        return false;
        return true;
}

static bool tree_eq(const LbTree *a, const LbTree *b) {
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!node_eq(&a->nodes[i], &b->nodes[i]))
                        return false;
        return true;
}

/* Encodes t, decodes the bytes, checks the result equals t; returns the bytes. */
static void roundtrip(const LbTree *t, LbBuf *out) {
        CHECK_OK(lb_tree_encode(t, out));
        _cleanup_tree_ LbTree *d = NULL;
        CHECK_OK(lb_tree_decode(out->data, out->len, &d));
        CHECK(tree_eq(t, d));
}

/* Encoding of a one-node tree: -EINVAL expected for invalid nodes. */
static int encode_one(LbNode n) {
        _cleanup_tree_ LbTree *t = tree_new();
        _cleanup_buf_ LbBuf b = {};
        CHECK_OK(lb_tree_add(t, &n));
        int r = lb_tree_encode(t, &b);
        if (r < 0)
                CHECK(b.len == 0);
        return r;
}

/* ---- raw builders for malformed input ------------------------------------------ */

static void raw(LbBuf *b, uint16_t tag, const void *v, size_t n) {
        CHECK_OK(lb_tlv_put(b, tag, v, n));
}
static void raw_u8(LbBuf *b, uint16_t tag, uint8_t v) {
        CHECK_OK(lb_tlv_put_u8(b, tag, v));
}
static void raw_u32(LbBuf *b, uint16_t tag, uint32_t v) {
        CHECK_OK(lb_tlv_put_u32(b, tag, v));
}
static void raw_u64(LbBuf *b, uint16_t tag, uint64_t v) {
        CHECK_OK(lb_tlv_put_u64(b, tag, v));
}
static void raw_str(LbBuf *b, uint16_t tag, const char *s) {
        CHECK_OK(lb_tlv_put_str(b, tag, s));
}
/* n * (id || size u32) with the given sizes */
static void raw_chunks(LbBuf *b, uint16_t tag, const uint64_t *sizes, size_t n, bool wide) {
        _cleanup_buf_ LbBuf v = {};
        for (size_t i = 0; i < n; i++) {
                LbId id;
                id_fill(&id, (uint8_t) i);
                CHECK_OK(lb_buf_append(&v, id.b, LB_ID_SIZE));
                if (wide)
                        CHECK_OK(lb_buf_append_le64(&v, sizes[i]));
                else
                        CHECK_OK(lb_buf_append_le32(&v, (uint32_t) sizes[i]));
        }
        raw(b, tag, v.data, v.len);
}

/* The records of a minimal valid node. */
static void raw_node(LbBuf *b, const char *name, LbNodeType type) {
        raw_str(b, LB_TREE_TAG_NAME, name);
        raw_u8(b, LB_TREE_TAG_TYPE, (uint8_t) type);
        if (type == LB_NODE_DIR) {
                LbId id;
                id_fill(&id, 1);
                raw(b, LB_TREE_TAG_SUBTREE, id.b, LB_ID_SIZE);
        } else if (type == LB_NODE_SYMLINK)
                raw_str(b, LB_TREE_TAG_LINK, "target");
}

/* magic || count || n * (len || node bytes) */
static void raw_tree(LbBuf *out, uint32_t count, const LbBuf *nodes, size_t n) {
        lb_buf_clear(out);
        CHECK_OK(lb_buf_append(out, LB_TREE_MAGIC, 4));
        CHECK_OK(lb_buf_append_le32(out, count));
        for (size_t i = 0; i < n; i++) {
                CHECK_OK(lb_buf_append_le32(out, (uint32_t) nodes[i].len));
                CHECK_OK(lb_buf_append(out, nodes[i].data, nodes[i].len));
        }
}

static int decode_bytes(const LbBuf *b) {
        LbTree *t = NULL;
        /* exact-size copy so ASan sees over-reads */
        uint8_t *p = malloc(b->len ? b->len : 1);
        CHECK(p);
        if (b->len)
                memcpy(p, b->data, b->len);
        int r = lb_tree_decode(p, b->len, &t);
        free(p);
        if (r >= 0) {
                CHECK(t);
                lb_tree_free(t);
        }
        return r;
}

static int decode_nodes(const LbBuf *nodes, size_t n) {
        _cleanup_buf_ LbBuf b = {};
        raw_tree(&b, (uint32_t) n, nodes, n);
        return decode_bytes(&b);
}

static int decode_node(const LbBuf *node) {
        return decode_nodes(node, 1);
}

/* ---- round trips ----------------------------------------------------------------- */

static const char weird_names[][32] = {
        "with space",
        "new\nline",
        "\xff\xfe not utf-8 \x80",
        "tab\there",
        "-",
        "...",
        ".hidden",
        "\x7f",
        "\x01",
};

TEST(test_roundtrip_all_types) {
        _cleanup_tree_ LbTree *t = tree_new();

        LbNode f = mk("file", LB_NODE_FILE);
        set_content(&f, 3, false, 70000);
        f.mode = 04755;
        f.user = xstrdup("alice");
        f.group = xstrdup("staff");
        f.has_xxh3 = true;
        f.xxh3 = 0x0123456789abcdefull;
        f.mtime_ns = -1234567890123ll;
        add_meta(&f, "user.comment", "hello");
        add_meta(&f, "user.empty", "");
        add(t, f);

        LbNode big = mk("big", LB_NODE_FILE);
        set_content(&big, 5, true, 5000000000ull);
        add(t, big);

        LbNode inl = mk("inline-max", LB_NODE_FILE);
        set_content(&inl, LB_INLINE_CHUNKS_MAX, false, LB_CHUNK_MAX_LIMIT);
        add(t, inl);

        add(t, mk("empty", LB_NODE_FILE));
        LbNode d = mk("dir", LB_NODE_DIR);
        d.mode = 01777;
        d.size = 4096;
        add(t, d);
        LbNode l = mk("link", LB_NODE_SYMLINK);
        free(l.link);
        l.link = xstrdup("../some where/\xff");
        l.size = strlen(l.link);
        add(t, l);
        add(t, mk("fifo", LB_NODE_FIFO));
        LbNode c = mk("null", LB_NODE_CHARDEV);
        c.rdev = 0x103;
        add(t, c);
        LbNode bd = mk("sda", LB_NODE_BLOCKDEV);
        bd.rdev = 0x800;
        bd.uid = UINT32_MAX;
        bd.gid = UINT32_MAX;
        add(t, bd);
        add(t, mk("dev-zero-rdev", LB_NODE_BLOCKDEV));
        LbNode u = mk("only-user", LB_NODE_FILE);
        u.user = xstrdup("");
        add(t, u);

        for (size_t i = 0; i < LB_ARRAY_SIZE(weird_names); i++)
                add(t, mk(weird_names[i], LB_NODE_FILE));
        char longname[256];
        memset(longname, 'x', 255);
        longname[255] = 0;
        add(t, mk(longname, LB_NODE_FILE));

        CHECK_OK(lb_tree_sort(t));
        _cleanup_buf_ LbBuf b = {};
        roundtrip(t, &b);
        CHECK(memcmp(b.data, "LBTR", 4) == 0);
        CHECK_EQ_INT(lb_get_le32(b.data + 4), t->n);

        for (size_t i = 0; i < LB_ARRAY_SIZE(weird_names); i++) {
                const LbNode *n = lb_tree_find(t, weird_names[i]);
                CHECK(n && strcmp(n->name, weird_names[i]) == 0);
        }
        CHECK(lb_tree_find(t, longname));
        CHECK(lb_tree_find(t, "file")->has_xxh3);
}

TEST(test_roundtrip_empty_tree) {
        _cleanup_tree_ LbTree *t = tree_new();
        _cleanup_buf_ LbBuf b = {};
        roundtrip(t, &b);
        CHECK_EQ_INT(b.len, 8);
        CHECK(lb_tree_find(t, "x") == NULL);
}

/* Same entries, added in a different order: identical bytes. */
TEST(test_deterministic) {
        _cleanup_buf_ LbBuf b1 = {}, b2 = {}, b3 = {};
        _cleanup_tree_ LbTree *t1 = tree_new(), *t2 = tree_new();
        for (int pass = 0; pass < 2; pass++) {
                LbTree *t = pass ? t2 : t1;
                for (int i = 0; i < 50; i++) {
                        int k = pass ? 49 - i : i;
                        char name[16];
                        snprintf(name, sizeof name, "n%02d", k);
                        LbNode n = mk(name, k % 3 == 0 ? LB_NODE_DIR : LB_NODE_FILE);
                        if (n.type == LB_NODE_FILE) {
                                n.content = calloc(1, sizeof *n.content);
                                CHECK(n.content);
                                id_fill(&n.content[0].id, (uint8_t) k);
                                n.content[0].size = 100 + (uint64_t) k;
                                n.n_content = 1;
                                n.size = n.content[0].size;
                        }
                        add_meta(&n, "k", name);
                        add(t, n);
                }
                CHECK_OK(lb_tree_sort(t));
        }
        CHECK_OK(lb_tree_encode(t1, &b1));
        CHECK_OK(lb_tree_encode(t2, &b2));
        CHECK_OK(lb_tree_encode(t1, &b3));
        CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
        CHECK(b1.len == b3.len && memcmp(b1.data, b3.data, b1.len) == 0);

        /* decode -> encode gives the same bytes again */
        _cleanup_tree_ LbTree *d = NULL;
        _cleanup_buf_ LbBuf b4 = {};
        CHECK_OK(lb_tree_decode(b1.data, b1.len, &d));
        CHECK_OK(lb_tree_encode(d, &b4));
        CHECK(b1.len == b4.len && memcmp(b1.data, b4.data, b1.len) == 0);
}

TEST(test_sort_and_find) {
        _cleanup_tree_ LbTree *t = tree_new();
        /* bytewise, unsigned, shorter prefix first */
        const char *names[] = { "b", "\xff", "a", "ab", "B", "a b", "\x80", "aa", "a\n" };
        const char *sorted[] = { "B", "a", "a\n", "a b", "aa", "ab", "b", "\x80", "\xff" };
        for (size_t i = 0; i < LB_ARRAY_SIZE(names); i++)
                add(t, mk(names[i], LB_NODE_FIFO));
        CHECK_OK(lb_tree_sort(t));
        for (size_t i = 0; i < LB_ARRAY_SIZE(sorted); i++)
                CHECK(strcmp(t->nodes[i].name, sorted[i]) == 0);
        for (size_t i = 0; i < LB_ARRAY_SIZE(sorted); i++)
                CHECK(lb_tree_find(t, sorted[i]) == &t->nodes[i]);
        CHECK(lb_tree_find(t, "") == NULL);
        CHECK(lb_tree_find(t, "a\x01") == NULL);
        CHECK(lb_tree_find(t, "zzz") == NULL);
        CHECK(lb_tree_find(t, "A") == NULL);

        add(t, mk("ab", LB_NODE_FILE));
        CHECK_EQ_INT(lb_tree_sort(t), -EEXIST);

        /* a larger tree, found by binary search */
        _cleanup_tree_ LbTree *big = tree_new();
        for (int i = 0; i < 2000; i++) {
                char name[16];
                snprintf(name, sizeof name, "f%d", (i * 7919) % 2000);
                add(big, mk(name, LB_NODE_FIFO));
        }
        CHECK_OK(lb_tree_sort(big));
        for (int i = 0; i < 2000; i++) {
                char name[16];
                snprintf(name, sizeof name, "f%d", i);
                const LbNode *n = lb_tree_find(big, name);
                CHECK(n && strcmp(n->name, name) == 0);
        }
        CHECK(lb_tree_find(big, "f2000") == NULL);
}

TEST(test_add_takes_ownership) {
        _cleanup_tree_ LbTree *t = tree_new();
        LbNode n = mk("x", LB_NODE_SYMLINK);
        char *name = n.name;
        CHECK_OK(lb_tree_add(t, &n));
        CHECK(n.name == NULL && n.link == NULL && n.type == 0);
        CHECK(t->nodes[0].name == name);
        lb_node_clear(NULL);
}

/* ---- encoder rejections ------------------------------------------------------------- */

TEST(test_encode_rejects) {
        LbNode n;

        /* names */
        CHECK_EQ_INT(encode_one(mk("", LB_NODE_FIFO)), -EINVAL);
        CHECK_EQ_INT(encode_one(mk(".", LB_NODE_FIFO)), -EINVAL);
        CHECK_EQ_INT(encode_one(mk("..", LB_NODE_FIFO)), -EINVAL);
        CHECK_EQ_INT(encode_one(mk("a/b", LB_NODE_FIFO)), -EINVAL);
        CHECK_EQ_INT(encode_one(mk("/", LB_NODE_FIFO)), -EINVAL);
        char name[300];
        memset(name, 'y', 256);
        name[256] = 0;
        CHECK_EQ_INT(encode_one(mk(name, LB_NODE_FIFO)), -EINVAL);
        n = mk("x", LB_NODE_FIFO);
        free(n.name);
        n.name = NULL;
        CHECK_EQ_INT(encode_one(n), -EINVAL);

        /* type */
        n = mk("x", LB_NODE_FIFO);
        n.type = 0;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FIFO);
        n.type = _LB_NODE_MAX;
        CHECK_EQ_INT(encode_one(n), -EINVAL);

        /* required and type-specific fields */
        n = mk("x", LB_NODE_DIR);
        n.has_subtree = false;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_SYMLINK);
        free(n.link);
        n.link = NULL;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_SYMLINK);
        n.link[0] = 0;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        n.link = xstrdup("t");
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        n.has_subtree = true;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        n.rdev = 1;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_DIR);
        set_content(&n, 1, false, 10);
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FIFO);
        n.has_xxh3 = true;
        CHECK_EQ_INT(encode_one(n), -EINVAL);

        /* file content */
        n = mk("x", LB_NODE_FILE);
        set_content(&n, 2, false, 10);
        n.size = 21;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        n.size = 1;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        n.indirect = true;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        set_content(&n, 2, false, 10);
        n.content[1].size = 0;
        n.size = 10;
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        set_content(&n, 1, false, (uint64_t) LB_CHUNK_MAX_LIMIT + 1);
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        set_content(&n, LB_INLINE_CHUNKS_MAX + 1, false, 10);
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FILE);
        set_content(&n, 2, true, UINT64_MAX / 2 + 1); /* sum overflows */
        n.size = 0;
        CHECK_EQ_INT(encode_one(n), -EINVAL);

        /* strings */
        char *longs = malloc(4098);
        CHECK(longs);
        memset(longs, 'u', 4097);
        longs[4097] = 0;
        n = mk("x", LB_NODE_FIFO);
        n.user = xstrdup(longs);
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FIFO);
        n.group = xstrdup(longs);
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FIFO);
        add_meta(&n, "k", longs);
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        n = mk("x", LB_NODE_FIFO);
        add_meta(&n, "", "v");
        CHECK_EQ_INT(encode_one(n), -EINVAL);
        longs[4096] = 0;
        n = mk("x", LB_NODE_FIFO);
        n.user = xstrdup(longs);
        add_meta(&n, longs, longs);
        CHECK_OK(encode_one(n));
        free(longs);

        /* unsorted and duplicate names */
        _cleanup_tree_ LbTree *t = tree_new();
        _cleanup_buf_ LbBuf b = {};
        add(t, mk("b", LB_NODE_FIFO));
        add(t, mk("a", LB_NODE_FIFO));
        CHECK_EQ_INT(lb_tree_encode(t, &b), -EINVAL);
        CHECK_OK(lb_tree_sort(t));
        CHECK_OK(lb_tree_encode(t, &b));
        add(t, mk("b", LB_NODE_FIFO));
        CHECK_EQ_INT(lb_tree_encode(t, &b), -EINVAL);
        CHECK_EQ_INT(b.len, 0);
}

/* ---- decoder rejections ------------------------------------------------------------- */

TEST(test_decode_minimal) {
        _cleanup_buf_ LbBuf nb = {};
        raw_node(&nb, "x", LB_NODE_FIFO);
        _cleanup_buf_ LbBuf b = {};
        raw_tree(&b, 1, &nb, 1);
        _cleanup_tree_ LbTree *t = NULL;
        CHECK_OK(lb_tree_decode(b.data, b.len, &t));
        CHECK(t->n == 1 && strcmp(t->nodes[0].name, "x") == 0 && t->nodes[0].type == LB_NODE_FIFO);
        CHECK(t->nodes[0].mode == 0 && t->nodes[0].user == NULL && t->nodes[0].size == 0);

        /* records in another order are accepted */
        _cleanup_buf_ LbBuf nb2 = {};
        raw_u32(&nb2, LB_TREE_TAG_MODE, 0755);
        raw_u8(&nb2, LB_TREE_TAG_TYPE, LB_NODE_SYMLINK);
        raw_str(&nb2, LB_TREE_TAG_LINK, "t");
        raw_str(&nb2, LB_TREE_TAG_NAME, "y");
        CHECK_OK(decode_node(&nb2));
}

TEST(test_decode_unknown_tags) {
        /* non-critical: skipped, whatever its value */
        _cleanup_buf_ LbBuf nb = {};
        raw_node(&nb, "x", LB_NODE_FILE);
        raw(&nb, 0x7fff, "\0\0\0 anything", 13);
        raw(&nb, 100, "", 0);
        raw(&nb, 100, "x", 1); /* repeated unknown tags are fine */
        _cleanup_buf_ LbBuf b = {};
        raw_tree(&b, 1, &nb, 1);
        _cleanup_tree_ LbTree *t = NULL;
        CHECK_OK(lb_tree_decode(b.data, b.len, &t));
        CHECK(t->n == 1 && t->nodes[0].type == LB_NODE_FILE);

        /* critical: refused */
        _cleanup_buf_ LbBuf nc = {};
        raw_node(&nc, "x", LB_NODE_FILE);
        raw(&nc, 0x8000 | 100, "", 0);
        CHECK_EQ_INT(decode_node(&nc), -EPROTONOSUPPORT);
        lb_buf_clear(&nc);
        raw(&nc, 0xffff, "abc", 3);
        raw_node(&nc, "x", LB_NODE_FILE);
        CHECK_EQ_INT(decode_node(&nc), -EPROTONOSUPPORT);
        /* a known number without its critical bit is a different, unknown tag */
        lb_buf_clear(&nc);
        raw_node(&nc, "x", LB_NODE_FILE);
        raw_str(&nc, LB_TREE_TAG_LINK & 0x7fff, "t");
        CHECK_OK(decode_node(&nc));
}

TEST(test_decode_rejects_structure) {
        _cleanup_buf_ LbBuf nb = {}, b = {};
        raw_node(&nb, "x", LB_NODE_FIFO);

        /* magic, header */
        raw_tree(&b, 1, &nb, 1);
        b.data[0] = 'X';
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        b.len = 0;
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        CHECK_OK(lb_buf_append(&b, "LBTR\1\0", 6));
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);

        /* count: more than the input can hold, more than the limit */
        raw_tree(&b, 2, &nb, 1);
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        raw_tree(&b, UINT32_MAX, &nb, 1);
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        raw_tree(&b, LB_TREE_MAX_ENTRIES + 1, &nb, 1);
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        raw_tree(&b, 0, &nb, 1); /* trailing bytes */
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        raw_tree(&b, 1, &nb, 1);
        CHECK_OK(lb_buf_append_u8(&b, 0));
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);

        /* node length beyond the input; truncated input */
        raw_tree(&b, 1, &nb, 1);
        lb_put_le32(b.data + 8, (uint32_t) nb.len + 1);
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        lb_put_le32(b.data + 8, UINT32_MAX);
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        raw_tree(&b, 1, &nb, 1);
        for (size_t cut = 0; cut < b.len; cut++) {
                LbBuf c = { .data = b.data, .len = cut };
                CHECK(decode_bytes(&c) == -EBADMSG);
        }
        /* a record running past its node */
        raw_tree(&b, 1, &nb, 1);
        lb_put_le32(b.data + 8, (uint32_t) nb.len - 1);
        CHECK_OK(lb_buf_append_u8(&b, 0)); /* keep the total length */
        CHECK_EQ_INT(decode_bytes(&b), -EBADMSG);
        /* an empty node */
        LbBuf empty = {};
        CHECK_EQ_INT(decode_node(&empty), -EBADMSG);
}

TEST(test_decode_rejects_names) {
        const char *bad[] = { "", ".", "..", "a/b", "/", "b/" };
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++) {
                _cleanup_buf_ LbBuf nb = {};
                raw_node(&nb, bad[i], LB_NODE_FIFO);
                CHECK_EQ_INT(decode_node(&nb), -EBADMSG);
        }
        _cleanup_buf_ LbBuf nb = {};
        raw(&nb, LB_TREE_TAG_NAME, "a\0b", 3);
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_FIFO);
        CHECK_EQ_INT(decode_node(&nb), -EBADMSG);

        char name[257];
        memset(name, 'z', 256);
        name[256] = 0;
        lb_buf_clear(&nb);
        raw_node(&nb, name, LB_NODE_FIFO);
        CHECK_EQ_INT(decode_node(&nb), -EBADMSG);
        name[255] = 0;
        lb_buf_clear(&nb);
        raw_node(&nb, name, LB_NODE_FIFO);
        CHECK_OK(decode_node(&nb));

        /* no name, no type, two names */
        lb_buf_clear(&nb);
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_FIFO);
        CHECK_EQ_INT(decode_node(&nb), -EBADMSG);
        lb_buf_clear(&nb);
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        CHECK_EQ_INT(decode_node(&nb), -EBADMSG);
        lb_buf_clear(&nb);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw_str(&nb, LB_TREE_TAG_NAME, "y");
        CHECK_EQ_INT(decode_node(&nb), -EBADMSG);

        /* order across nodes: unsorted, duplicate, prefix after longer */
        const char *pairs[][2] = { { "b", "a" }, { "a", "a" }, { "ab", "a" }, { "\x80", "\x7f" } };
        for (size_t i = 0; i < LB_ARRAY_SIZE(pairs); i++) {
                LbBuf n2[2] = {};
                raw_node(&n2[0], pairs[i][0], LB_NODE_FIFO);
                raw_node(&n2[1], pairs[i][1], LB_NODE_FIFO);
                CHECK_EQ_INT(decode_nodes(n2, 2), -EBADMSG);
                LbBuf s2[2] = {};
                raw_node(&s2[0], pairs[i][1], LB_NODE_FIFO);
                raw_node(&s2[1], pairs[i][0], LB_NODE_FIFO);
                CHECK_EQ_INT(decode_nodes(s2, 2), i == 1 ? -EBADMSG : 0);
                for (size_t k = 0; k < 2; k++) {
                        lb_buf_free(&n2[k]);
                        lb_buf_free(&s2[k]);
                }
        }
}

TEST(test_decode_rejects_fields) {
        _cleanup_buf_ LbBuf nb = {};
        LbId id;
        id_fill(&id, 9);
        uint64_t sz[LB_INLINE_CHUNKS_MAX + 1];
        for (size_t i = 0; i < LB_ARRAY_SIZE(sz); i++)
                sz[i] = 10;

#define EXPECT(code)                                            \
        do {                                                    \
                CHECK_EQ_INT(decode_node(&nb), (code));         \
                lb_buf_clear(&nb);                              \
        } while (0)

        /* types */
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u8(&nb, LB_TREE_TAG_TYPE, 0);
        EXPECT(-EBADMSG);
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u8(&nb, LB_TREE_TAG_TYPE, _LB_NODE_MAX);
        EXPECT(-EBADMSG);
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u32(&nb, LB_TREE_TAG_TYPE, LB_NODE_FIFO); /* wrong width */
        EXPECT(-EBADMSG);

        /* duplicate tags */
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_FIFO);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw_u32(&nb, LB_TREE_TAG_MODE, 1);
        raw_u32(&nb, LB_TREE_TAG_MODE, 1);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw_str(&nb, LB_TREE_TAG_USER, "a");
        raw_str(&nb, LB_TREE_TAG_USER, "a");
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_DIR);
        raw(&nb, LB_TREE_TAG_SUBTREE, id.b, LB_ID_SIZE);
        EXPECT(-EBADMSG);

        /* wrong widths */
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_MODE, "abc", 3);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw_u32(&nb, LB_TREE_TAG_MTIME, 1);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw_u32(&nb, LB_TREE_TAG_SIZE, 0);
        EXPECT(-EBADMSG);
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_DIR);
        raw(&nb, LB_TREE_TAG_SUBTREE, id.b, LB_ID_SIZE - 1);
        EXPECT(-EBADMSG);

        /* required per type */
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_DIR);
        EXPECT(-EBADMSG);
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_SYMLINK);
        EXPECT(-EBADMSG);
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_SYMLINK);
        raw_str(&nb, LB_TREE_TAG_LINK, "");
        EXPECT(-EBADMSG);
        /* not allowed per type */
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_str(&nb, LB_TREE_TAG_LINK, "t");
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_SUBTREE, id.b, LB_ID_SIZE);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_DIR);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 10);
        raw_chunks(&nb, LB_TREE_TAG_CHUNKS, sz, 1, false);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_RDEV, 5);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_SYMLINK);
        raw_u64(&nb, LB_TREE_TAG_XXH3, 5);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_CHARDEV);
        raw_u64(&nb, LB_TREE_TAG_RDEV, 5);
        EXPECT(0);

        /* file content */
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 21);
        raw_chunks(&nb, LB_TREE_TAG_CHUNKS, sz, 2, false);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 20);
        raw_chunks(&nb, LB_TREE_TAG_CHUNKS, sz, 2, false);
        EXPECT(0);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 20);
        raw_chunks(&nb, LB_TREE_TAG_LISTS, sz, 2, true);
        EXPECT(0);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 20);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw(&nb, LB_TREE_TAG_CHUNKS, "", 0);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 20);
        raw_chunks(&nb, LB_TREE_TAG_CHUNKS, sz, 1, false);
        raw_chunks(&nb, LB_TREE_TAG_LISTS, sz, 1, true);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 10);
        raw_chunks(&nb, LB_TREE_TAG_CHUNKS, sz, 1, true); /* 40-byte refs in CHUNKS */
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 10 * (LB_INLINE_CHUNKS_MAX + 1));
        raw_chunks(&nb, LB_TREE_TAG_CHUNKS, sz, LB_INLINE_CHUNKS_MAX + 1, false);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FILE);
        raw_u64(&nb, LB_TREE_TAG_SIZE, 10 * (LB_INLINE_CHUNKS_MAX + 1));
        raw_chunks(&nb, LB_TREE_TAG_LISTS, sz, LB_INLINE_CHUNKS_MAX + 1, true);
        EXPECT(0);
        {
                uint64_t zs[2] = { 10, 0 };
                raw_node(&nb, "x", LB_NODE_FILE);
                raw_u64(&nb, LB_TREE_TAG_SIZE, 10);
                raw_chunks(&nb, LB_TREE_TAG_CHUNKS, zs, 2, false);
                EXPECT(-EBADMSG);
                uint64_t big[1] = { (uint64_t) LB_CHUNK_MAX_LIMIT + 1 };
                raw_node(&nb, "x", LB_NODE_FILE);
                raw_u64(&nb, LB_TREE_TAG_SIZE, big[0]);
                raw_chunks(&nb, LB_TREE_TAG_CHUNKS, big, 1, false);
                EXPECT(-EBADMSG);
                uint64_t ov[2] = { UINT64_MAX, 2 }; /* sum wraps to 1 */
                raw_node(&nb, "x", LB_NODE_FILE);
                raw_u64(&nb, LB_TREE_TAG_SIZE, 1);
                raw_chunks(&nb, LB_TREE_TAG_LISTS, ov, 2, true);
                EXPECT(-EBADMSG);
        }

        /* strings */
        char *longs = malloc(4098);
        CHECK(longs);
        memset(longs, 'g', 4097);
        longs[4097] = 0;
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw_str(&nb, LB_TREE_TAG_GROUP, longs);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_USER, "ro\0t", 4);
        EXPECT(-EBADMSG);
        raw_str(&nb, LB_TREE_TAG_NAME, "x");
        raw_u8(&nb, LB_TREE_TAG_TYPE, LB_NODE_SYMLINK);
        raw_str(&nb, LB_TREE_TAG_LINK, longs);
        EXPECT(-EBADMSG);
        free(longs);

        /* META: key_len u16 || key || value */
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_META, "\x01", 1);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_META, "\x05\x00" "abc", 5);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_META, "\x00\x00" "abc", 5);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_META, "\x02\x00" "a\0c", 5);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_META, "\x02\x00" "abc\0", 6);
        EXPECT(-EBADMSG);
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_META, "\x03\x00" "abc", 5);
        raw(&nb, LB_TREE_TAG_META, "\x01\x00" "abc", 5);
        EXPECT(0);
        raw_node(&nb, "x", LB_NODE_FIFO);
        for (int i = 0; i < 1025; i++)
                raw(&nb, LB_TREE_TAG_META, "\x01\x00" "k", 3);
        EXPECT(-EBADMSG);
#undef EXPECT
}

TEST(test_decode_meta_values) {
        _cleanup_buf_ LbBuf nb = {}, b = {};
        raw_node(&nb, "x", LB_NODE_FIFO);
        raw(&nb, LB_TREE_TAG_META, "\x03\x00" "keyvalue", 10);
        raw(&nb, LB_TREE_TAG_META, "\x01\x00" "k", 3);
        raw_tree(&b, 1, &nb, 1);
        _cleanup_tree_ LbTree *t = NULL;
        CHECK_OK(lb_tree_decode(b.data, b.len, &t));
        CHECK_EQ_INT(t->nodes[0].n_meta, 2);
        CHECK(strcmp(t->nodes[0].meta[0].key, "key") == 0 && strcmp(t->nodes[0].meta[0].value, "value") == 0);
        CHECK(strcmp(t->nodes[0].meta[1].key, "k") == 0 && strcmp(t->nodes[0].meta[1].value, "") == 0);
}

/* ---- chunk lists ----------------------------------------------------------------------- */

static int chunklist_decode_bytes(const uint8_t *p, size_t n) {
        uint8_t *c = malloc(n ? n : 1);
        CHECK(c);
        if (n)
                memcpy(c, p, n);
        LbContentRef *refs = NULL;
        size_t count = 0;
        int r = lb_chunklist_decode(c, n, &refs, &count);
        free(c);
        free(refs);
        return r;
}

TEST(test_chunklist_roundtrip) {
        size_t counts[] = { 1, 2, 1000, LB_CHUNKLIST_MAX_ENTRIES };
        for (size_t k = 0; k < LB_ARRAY_SIZE(counts); k++) {
                size_t n = counts[k];
                _cleanup_free_ LbContentRef *refs = calloc(n, sizeof *refs);
                CHECK(refs);
                for (size_t i = 0; i < n; i++) {
                        rnd_id(&refs[i].id);
                        refs[i].size = 1 + rnd() % LB_CHUNK_MAX_LIMIT;
                }
                _cleanup_buf_ LbBuf b = {}, b2 = {};
                CHECK_OK(lb_chunklist_encode(refs, n, &b));
                CHECK_EQ_INT(b.len, 8 + 36 * n);
                CHECK(memcmp(b.data, "LBCL", 4) == 0);
                _cleanup_free_ LbContentRef *d = NULL;
                size_t dn = 0;
                CHECK_OK(lb_chunklist_decode(b.data, b.len, &d, &dn));
                CHECK_EQ_INT(dn, n);
                CHECK(memcmp(refs, d, n * sizeof *refs) == 0);
                CHECK_OK(lb_chunklist_encode(d, dn, &b2));
                CHECK(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0);
        }
}

TEST(test_chunklist_rejects) {
        LbContentRef refs[3] = {};
        for (size_t i = 0; i < 3; i++) {
                id_fill(&refs[i].id, (uint8_t) i);
                refs[i].size = 100;
        }
        _cleanup_buf_ LbBuf b = {};
        CHECK_EQ_INT(lb_chunklist_encode(refs, 0, &b), -EINVAL);
        CHECK_EQ_INT(lb_chunklist_encode(refs, LB_CHUNKLIST_MAX_ENTRIES + 1, &b), -EINVAL);
        refs[1].size = 0;
        CHECK_EQ_INT(lb_chunklist_encode(refs, 3, &b), -EINVAL);
        refs[1].size = (uint64_t) LB_CHUNK_MAX_LIMIT + 1;
        CHECK_EQ_INT(lb_chunklist_encode(refs, 3, &b), -EINVAL);
        refs[1].size = 100;
        CHECK_OK(lb_chunklist_encode(refs, 3, &b));

        CHECK_OK(chunklist_decode_bytes(b.data, b.len));
        for (size_t cut = 0; cut < b.len; cut++)
                CHECK_EQ_INT(chunklist_decode_bytes(b.data, cut), -EBADMSG);
        _cleanup_buf_ LbBuf c = {};
        CHECK_OK(lb_buf_append(&c, b.data, b.len));
        CHECK_OK(lb_buf_append_u8(&c, 0));
        CHECK_EQ_INT(chunklist_decode_bytes(c.data, c.len), -EBADMSG); /* trailing byte */
        c.len = b.len;
        c.data[0] = 'l';
        CHECK_EQ_INT(chunklist_decode_bytes(c.data, c.len), -EBADMSG); /* magic */
        c.data[0] = 'L';
        lb_put_le32(c.data + 4, 4);
        CHECK_EQ_INT(chunklist_decode_bytes(c.data, c.len), -EBADMSG); /* count > input */
        lb_put_le32(c.data + 4, 0);
        CHECK_EQ_INT(chunklist_decode_bytes(c.data, 8), -EBADMSG);     /* empty list */
        lb_put_le32(c.data + 4, UINT32_MAX);
        CHECK_EQ_INT(chunklist_decode_bytes(c.data, c.len), -EBADMSG);
        lb_put_le32(c.data + 4, 3);
        lb_put_le32(c.data + 8 + 36 + 32, 0);
        CHECK_EQ_INT(chunklist_decode_bytes(c.data, c.len), -EBADMSG); /* zero-size chunk */
        lb_put_le32(c.data + 8 + 36 + 32, LB_CHUNK_MAX_LIMIT + 1);
        CHECK_EQ_INT(chunklist_decode_bytes(c.data, c.len), -EBADMSG);
}

TEST(test_chunklist_boundary_rule) {
        LbId id = {};
        /* low 10 bits of le16(id[0..2]) zero: a cut, from 16 entries on */
        CHECK(!lb_chunklist_is_boundary(&id, 1));
        CHECK(!lb_chunklist_is_boundary(&id, 15));
        CHECK(lb_chunklist_is_boundary(&id, 16));
        CHECK(lb_chunklist_is_boundary(&id, 1000));
        id.b[1] = 0x04; /* v = 0x0400: low 10 bits still zero */
        CHECK(lb_chunklist_is_boundary(&id, 16));
        id.b[1] = 0xfc;
        CHECK(lb_chunklist_is_boundary(&id, 16));
        id.b[1] = 0x02; /* v = 0x0200 */
        CHECK(!lb_chunklist_is_boundary(&id, 16));
        id.b[1] = 0;
        id.b[0] = 1;
        CHECK(!lb_chunklist_is_boundary(&id, 4095));
        CHECK(lb_chunklist_is_boundary(&id, 4096));
        CHECK(lb_chunklist_is_boundary(&id, 100000));
        memset(id.b + 2, 0, LB_ID_SIZE - 2); /* only the first two bytes count */
        id.b[0] = 0;
        id.b[5] = 0xff;
        CHECK(lb_chunklist_is_boundary(&id, 16));

        /* statistics over random ids */
        size_t lists = 0, cur = 0, max = 0, min = SIZE_MAX, total = 0;
        for (size_t i = 0; i < (1u << 22); i++) {
                rnd_id(&id);
                cur++;
                if (lb_chunklist_is_boundary(&id, cur)) {
                        lists++;
                        total += cur;
                        max = LB_MAX(max, cur);
                        min = LB_MIN(min, cur);
                        cur = 0;
                }
        }
        double avg = (double) total / (double) lists;
        printf("# chunk lists: %zu, average %.1f entries, min %zu, max %zu\n", lists, avg, min, max);
        CHECK(avg > 950 && avg < 1100);
        CHECK(max <= 4096);
        CHECK(min >= 16);
}

/* Splits ids into lists by the rule; returns the number of lists and fills
 * hash[i] with a digest of list i (FNV-1a over its ids). */
static size_t split(const LbId *ids, size_t n, uint64_t *hash) {
        size_t lists = 0, cur = 0;
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++) {
                for (size_t k = 0; k < LB_ID_SIZE; k++)
                        h = (h ^ ids[i].b[k]) * 0x100000001b3ull;
                cur++;
                if (lb_chunklist_is_boundary(&ids[i], cur) || i == n - 1) {
                        hash[lists++] = h;
                        h = 0xcbf29ce484222325ull;
                        cur = 0;
                }
        }
        return lists;
}

/* Inserting chunks in the middle of a long file changes only the lists around the edit. */
TEST(test_chunklist_insertion_locality) {
        const size_t n = 200000, at = 100000, ins = 5;
        _cleanup_free_ LbId *a = calloc(n, sizeof *a), *b = calloc(n + ins, sizeof *b);
        _cleanup_free_ uint64_t *ha = calloc(n, sizeof *ha), *hb = calloc(n + ins, sizeof *hb);
        CHECK(a && b && ha && hb);
        for (size_t i = 0; i < n; i++)
                rnd_id(&a[i]);
        memcpy(b, a, at * sizeof *a);
        for (size_t i = 0; i < ins; i++)
                rnd_id(&b[at + i]);
        memcpy(b + at + ins, a + at, (n - at) * sizeof *a);
        size_t la = split(a, n, ha), lbn = split(b, n + ins, hb);
        size_t changed = 0;
        for (size_t i = 0; i < lbn; i++) {
                bool found = false;
                for (size_t j = 0; j < la && !found; j++)
                        found = hb[i] == ha[j];
                changed += !found;
        }
        printf("# insertion: %zu lists before, %zu after, %zu new\n", la, lbn, changed);
        CHECK(la > 100);
        CHECK(changed >= 1 && changed <= 3);
}

/* ---- golden files ------------------------------------------------------------------------- */

/* The example tree of tests/data/tree-v1.bin, in sorted order. */
typedef struct GoldenNode {
        const char *name;
        LbNodeType type;
        uint32_t mode, uid, gid;
        const char *user, *group;
        uint64_t size;
        int64_t mtime_ns;
        uint64_t rdev;
        const char *link;
        int subtree_seed;       /* -1: none */
        bool indirect;
        size_t n_content;
        uint8_t content_seed[2];
        uint64_t content_size[2];
        bool has_xxh3;
        uint64_t xxh3;
        size_t n_meta;
        const char *meta[2][2];
} GoldenNode;

static const GoldenNode golden_nodes[] = {
        { .name = "big.dat", .type = LB_NODE_FILE, .mode = 0600, .uid = 0, .gid = 0, .user = "root", .group = "root",
          .size = 5001234567ull, .mtime_ns = 1600000000000000000ll, .subtree_seed = -1, .indirect = true,
          .n_content = 2, .content_seed = { 0x20, 0x21 }, .content_size = { 5000000000ull, 1234567 },
          .has_xxh3 = true, .xxh3 = 0xfedcba9876543210ull },
        { .name = "docs", .type = LB_NODE_DIR, .mode = 02775, .uid = 1000, .gid = 50, .user = "alice",
          .group = "staff", .size = 4096, .mtime_ns = -1000000000ll, .subtree_seed = 0x30 },
        { .name = "empty", .type = LB_NODE_FILE, .mode = 0444, .uid = 1000, .gid = 1000, .mtime_ns = 0,
          .subtree_seed = -1 },
        { .name = "fifo", .type = LB_NODE_FIFO, .mode = 0600, .uid = 1000, .gid = 1000, .mtime_ns = 1,
          .subtree_seed = -1 },
        { .name = "link", .type = LB_NODE_SYMLINK, .mode = 0777, .uid = 1000, .gid = 1000, .size = 15,
          .mtime_ns = 1700000000000000001ll, .link = "docs/readme.txt", .subtree_seed = -1 },
        { .name = "loop0", .type = LB_NODE_BLOCKDEV, .mode = 0660, .uid = 0, .gid = 6, .group = "disk",
          .rdev = 0x700, .mtime_ns = 1700000000000000002ll, .subtree_seed = -1 },
        { .name = "null", .type = LB_NODE_CHARDEV, .mode = 0666, .uid = 0, .gid = 0, .rdev = 0x103,
          .mtime_ns = 1700000000000000003ll, .subtree_seed = -1 },
        { .name = "readme.txt", .type = LB_NODE_FILE, .mode = 0644, .uid = 1000, .gid = 1000, .user = "alice",
          .group = "staff", .size = 8000, .mtime_ns = 1700000000123456789ll, .subtree_seed = -1,
          .n_content = 2, .content_seed = { 0x10, 0x11 }, .content_size = { 5000, 3000 }, .has_xxh3 = true,
          .xxh3 = 0x0123456789abcdefull, .n_meta = 2,
          .meta = { { "user.comment", "hello world" }, { "security.selinux", "system_u:object_r:etc_t:s0" } } },
        { .name = "tmp", .type = LB_NODE_DIR, .mode = 01777, .uid = 0, .gid = 0, .size = 4096,
          .mtime_ns = 1700000000000000004ll, .subtree_seed = 0x31 },
        { .name = "with space\nnewline\xff\xfe", .type = LB_NODE_FILE, .mode = 04755, .uid = 1000, .gid = 1000,
          .size = 1, .mtime_ns = 1700000000000000005ll, .subtree_seed = -1, .n_content = 1,
          .content_seed = { 0x40 }, .content_size = { 1 } },
};

static const struct {
        uint8_t seed;
        uint32_t size;
} golden_chunks[] = { { 0x50, 65536 }, { 0x51, 1 }, { 0x52, LB_CHUNK_MAX_LIMIT } };

static LbTree *golden_tree(void) {
        LbTree *t = tree_new();
        /* added in reverse, so the fixture also exercises lb_tree_sort */
        for (size_t k = LB_ARRAY_SIZE(golden_nodes); k-- > 0;) {
                const GoldenNode *g = &golden_nodes[k];
                LbNode n = { .name = xstrdup(g->name), .type = g->type, .mode = g->mode, .uid = g->uid,
                             .gid = g->gid, .user = g->user ? xstrdup(g->user) : NULL,
                             .group = g->group ? xstrdup(g->group) : NULL, .size = g->size,
                             .mtime_ns = g->mtime_ns, .rdev = g->rdev, .link = g->link ? xstrdup(g->link) : NULL,
                             .has_subtree = g->subtree_seed >= 0, .indirect = g->indirect,
                             .has_xxh3 = g->has_xxh3, .xxh3 = g->xxh3 };
                if (g->subtree_seed >= 0)
                        id_fill(&n.subtree, (uint8_t) g->subtree_seed);
                if (g->n_content) {
                        n.content = calloc(g->n_content, sizeof *n.content);
                        CHECK(n.content);
                        n.n_content = g->n_content;
                        for (size_t i = 0; i < g->n_content; i++) {
                                id_fill(&n.content[i].id, g->content_seed[i]);
                                n.content[i].size = g->content_size[i];
                        }
                }
                for (size_t i = 0; i < g->n_meta; i++)
                        add_meta(&n, g->meta[i][0], g->meta[i][1]);
                add(t, n);
        }
        CHECK_OK(lb_tree_sort(t));
        return t;
}

/* Every field of the decoded golden tree, against the fixture. */
static void check_golden_tree(const LbTree *t) {
        CHECK_EQ_INT(t->n, LB_ARRAY_SIZE(golden_nodes));
        for (size_t k = 0; k < t->n; k++) {
                const GoldenNode *g = &golden_nodes[k];
                const LbNode *n = &t->nodes[k];
                CHECK(strcmp(n->name, g->name) == 0);
                CHECK_EQ_INT(n->type, g->type);
                CHECK_EQ_INT(n->mode, g->mode);
                CHECK_EQ_INT(n->uid, g->uid);
                CHECK_EQ_INT(n->gid, g->gid);
                CHECK(str_eq(n->user, g->user));
                CHECK(str_eq(n->group, g->group));
                CHECK(n->size == g->size);
                CHECK(n->mtime_ns == g->mtime_ns);
                CHECK(n->rdev == g->rdev);
                CHECK(str_eq(n->link, g->link));
                CHECK(n->has_subtree == (g->subtree_seed >= 0));
                if (n->has_subtree) {
                        LbId id;
                        id_fill(&id, (uint8_t) g->subtree_seed);
                        CHECK(memcmp(&id, &n->subtree, LB_ID_SIZE) == 0);
                }
                CHECK(n->indirect == g->indirect);
                CHECK_EQ_INT(n->n_content, g->n_content);
                for (size_t i = 0; i < g->n_content; i++) {
                        LbId id;
                        id_fill(&id, g->content_seed[i]);
                        CHECK(memcmp(&id, &n->content[i].id, LB_ID_SIZE) == 0);
                        CHECK(n->content[i].size == g->content_size[i]);
                }
                CHECK(n->has_xxh3 == g->has_xxh3);
                CHECK(n->xxh3 == g->xxh3);
                CHECK_EQ_INT(n->n_meta, g->n_meta);
                for (size_t i = 0; i < g->n_meta; i++) {
                        CHECK(strcmp(n->meta[i].key, g->meta[i][0]) == 0);
                        CHECK(strcmp(n->meta[i].value, g->meta[i][1]) == 0);
                }
        }
}

static void golden_chunklist(LbBuf *out) {
        LbContentRef refs[LB_ARRAY_SIZE(golden_chunks)];
        for (size_t i = 0; i < LB_ARRAY_SIZE(golden_chunks); i++) {
                id_fill(&refs[i].id, golden_chunks[i].seed);
                refs[i].size = golden_chunks[i].size;
        }
        CHECK_OK(lb_chunklist_encode(refs, LB_ARRAY_SIZE(refs), out));
}

/* ---- bad files: name, how to build it, the error a reader must return ------------------------ */

static void bad_unsorted(LbBuf *out) {
        LbBuf n[2] = {};
        raw_node(&n[0], "b", LB_NODE_FIFO);
        raw_node(&n[1], "a", LB_NODE_FIFO);
        raw_tree(out, 2, n, 2);
        lb_buf_free(&n[0]);
        lb_buf_free(&n[1]);
}
static void bad_duplicate(LbBuf *out) {
        LbBuf n[2] = {};
        raw_node(&n[0], "a", LB_NODE_FIFO);
        raw_node(&n[1], "a", LB_NODE_FIFO);
        raw_tree(out, 2, n, 2);
        lb_buf_free(&n[0]);
        lb_buf_free(&n[1]);
}
static void bad_one(LbBuf *out, const char *name, LbNodeType type) {
        _cleanup_buf_ LbBuf n = {};
        raw_node(&n, name, type);
        raw_tree(out, 1, &n, 1);
}
static void bad_slash(LbBuf *out) {
        bad_one(out, "etc/passwd", LB_NODE_FILE);
}
static void bad_dotdot(LbBuf *out) {
        bad_one(out, "..", LB_NODE_DIR);
}
static void bad_truncated(LbBuf *out) {
        /* the golden tree, cut inside its last entry */
        _cleanup_tree_ LbTree *t = golden_tree();
        CHECK_OK(lb_tree_encode(t, out));
        out->len -= 10;
}
static void bad_record_overrun(LbBuf *out) {
        /* an entry whose last record claims more bytes than the entry has */
        _cleanup_buf_ LbBuf n = {};
        raw_node(&n, "x", LB_NODE_FIFO);
        raw_str(&n, LB_TREE_TAG_USER, "root");
        lb_put_le32(n.data + n.len - 4 - 4, 100);
        raw_tree(out, 1, &n, 1);
}
static void bad_count(LbBuf *out) {
        _cleanup_buf_ LbBuf n = {};
        raw_node(&n, "x", LB_NODE_FIFO);
        raw_tree(out, 1000000, &n, 1);
}
static void bad_count_max(LbBuf *out) {
        _cleanup_buf_ LbBuf n = {};
        raw_node(&n, "x", LB_NODE_FIFO);
        raw_tree(out, UINT32_MAX, &n, 1);
}
static void bad_critical(LbBuf *out) {
        _cleanup_buf_ LbBuf n = {};
        raw_node(&n, "x", LB_NODE_FILE);
        raw(&n, 0x8000 | 200, "future", 6);
        raw_tree(out, 1, &n, 1);
}
static void bad_size(LbBuf *out) {
        uint64_t sz[2] = { 5000, 3000 };
        _cleanup_buf_ LbBuf n = {};
        raw_node(&n, "readme.txt", LB_NODE_FILE);
        raw_u64(&n, LB_TREE_TAG_SIZE, 8001);
        raw_chunks(&n, LB_TREE_TAG_CHUNKS, sz, 2, false);
        raw_tree(out, 1, &n, 1);
}
static void bad_dup_tag(LbBuf *out) {
        _cleanup_buf_ LbBuf n = {};
        raw_node(&n, "x", LB_NODE_FIFO);
        raw_u64(&n, LB_TREE_TAG_SIZE, 1);
        raw_u64(&n, LB_TREE_TAG_SIZE, 2);
        raw_tree(out, 1, &n, 1);
}
static void bad_dir_no_subtree(LbBuf *out) {
        _cleanup_buf_ LbBuf n = {};
        raw_str(&n, LB_TREE_TAG_NAME, "docs");
        raw_u8(&n, LB_TREE_TAG_TYPE, LB_NODE_DIR);
        raw_tree(out, 1, &n, 1);
}
static void bad_magic(LbBuf *out) {
        bad_one(out, "x", LB_NODE_FIFO);
        memcpy(out->data, "LBSN", 4);
}
static void bad_trailing(LbBuf *out) {
        bad_one(out, "x", LB_NODE_FIFO);
        CHECK_OK(lb_buf_append(out, "\0\0\0\0", 4));
}
static void bad_cl_count(LbBuf *out) {
        golden_chunklist(out);
        lb_put_le32(out->data + 4, 4);
}
static void bad_cl_zero(LbBuf *out) {
        golden_chunklist(out);
        lb_put_le32(out->data + 8 + 32, 0);
}
static void bad_cl_trailing(LbBuf *out) {
        golden_chunklist(out);
        CHECK_OK(lb_buf_append_u8(out, 0));
}

typedef struct BadFile {
        const char *name;
        void (*build)(LbBuf *out);
        int expected;
} BadFile;

static const BadFile bad_files[] = {
        { "tree-unsorted-names.bin", bad_unsorted, -EBADMSG },
        { "tree-duplicate-names.bin", bad_duplicate, -EBADMSG },
        { "tree-name-slash.bin", bad_slash, -EBADMSG },
        { "tree-name-dotdot.bin", bad_dotdot, -EBADMSG },
        { "tree-truncated.bin", bad_truncated, -EBADMSG },
        { "tree-record-overrun.bin", bad_record_overrun, -EBADMSG },
        { "tree-count-too-large.bin", bad_count, -EBADMSG },
        { "tree-count-u32-max.bin", bad_count_max, -EBADMSG },
        { "tree-unknown-critical.bin", bad_critical, -EPROTONOSUPPORT },
        { "tree-size-mismatch.bin", bad_size, -EBADMSG },
        { "tree-duplicate-tag.bin", bad_dup_tag, -EBADMSG },
        { "tree-dir-no-subtree.bin", bad_dir_no_subtree, -EBADMSG },
        { "tree-bad-magic.bin", bad_magic, -EBADMSG },
        { "tree-trailing-bytes.bin", bad_trailing, -EBADMSG },
        { "chunklist-count-too-large.bin", bad_cl_count, -EBADMSG },
        { "chunklist-zero-size.bin", bad_cl_zero, -EBADMSG },
        { "chunklist-trailing-bytes.bin", bad_cl_trailing, -EBADMSG },
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

TEST(test_golden_tree) {
        _cleanup_buf_ LbBuf file = {}, b = {};
        read_data("tree-v1.bin", &file);
        _cleanup_tree_ LbTree *t = NULL;
        CHECK_OK(lb_tree_decode(file.data, file.len, &t));
        check_golden_tree(t);
        /* re-encoding gives the identical bytes */
        CHECK_OK(lb_tree_encode(t, &b));
        CHECK(b.len == file.len && memcmp(b.data, file.data, b.len) == 0);
        /* and so does the fixture */
        _cleanup_tree_ LbTree *g = golden_tree();
        CHECK_OK(lb_tree_encode(g, &b));
        CHECK(b.len == file.len && memcmp(b.data, file.data, b.len) == 0);
}

TEST(test_golden_chunklist) {
        _cleanup_buf_ LbBuf file = {}, b = {};
        read_data("chunklist-v1.bin", &file);
        _cleanup_free_ LbContentRef *refs = NULL;
        size_t n = 0;
        CHECK_OK(lb_chunklist_decode(file.data, file.len, &refs, &n));
        CHECK_EQ_INT(n, LB_ARRAY_SIZE(golden_chunks));
        for (size_t i = 0; i < n; i++) {
                LbId id;
                id_fill(&id, golden_chunks[i].seed);
                CHECK(memcmp(&id, &refs[i].id, LB_ID_SIZE) == 0);
                CHECK(refs[i].size == golden_chunks[i].size);
        }
        CHECK_OK(lb_chunklist_encode(refs, n, &b));
        CHECK(b.len == file.len && memcmp(b.data, file.data, b.len) == 0);
}

TEST(test_golden_bad) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad_files); i++) {
                _cleanup_free_ char *name = lb_strdup_printf("bad/%s", bad_files[i].name);
                _cleanup_buf_ LbBuf file = {};
                CHECK(name);
                read_data(name, &file);
                int r;
                if (strncmp(bad_files[i].name, "chunklist-", 10) == 0)
                        r = chunklist_decode_bytes(file.data, file.len);
                else
                        r = decode_bytes(&file);
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
        _cleanup_tree_ LbTree *t = golden_tree();
        CHECK_OK(lb_tree_encode(t, &b));
        write_file(dir, "tree-v1.bin", &b);
        golden_chunklist(&b);
        write_file(dir, "chunklist-v1.bin", &b);

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

        RUN(test_roundtrip_all_types);
        RUN(test_roundtrip_empty_tree);
        RUN(test_deterministic);
        RUN(test_sort_and_find);
        RUN(test_add_takes_ownership);
        RUN(test_encode_rejects);
        RUN(test_decode_minimal);
        RUN(test_decode_unknown_tags);
        RUN(test_decode_rejects_structure);
        RUN(test_decode_rejects_names);
        RUN(test_decode_rejects_fields);
        RUN(test_decode_meta_values);
        RUN(test_chunklist_roundtrip);
        RUN(test_chunklist_rejects);
        RUN(test_chunklist_boundary_rule);
        RUN(test_chunklist_insertion_locality);
        RUN(test_golden_tree);
        RUN(test_golden_chunklist);
        RUN(test_golden_bad);
        return 0;
}
