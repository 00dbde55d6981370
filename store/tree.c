/* SPDX-License-Identifier: MIT */
/*
 * Trees and chunk lists: the deterministic encoding of a directory and of a
 * part of a long file's chunk list. Layouts and reader rules:
 * docs/design.md "Trees".
 *
 * One validator (node_check) decides what a valid entry is, for the encoder
 * and the decoder alike: whatever decodes also encodes, and whatever encodes
 * also decodes, to the same struct.
 */
#include "store/tree.h"

#include "store/tlv.h"

#define TREE_NAME_MAX 255
/* user, group, symlink target, metadata key and value */
#define TREE_STRING_MAX 4096
/* META records per entry */
#define TREE_META_MAX 1024
/* The smallest entry: len u32 || NAME (6 + 1) || TYPE (6 + 1). */
#define TREE_NODE_MIN_SIZE (4 + 2 * (LB_TLV_HEADER_SIZE + 1))
/* CHUNKS element: id[32] || size u32; LISTS element: id[32] || size u64. */
#define CHUNK_REF_SIZE (LB_ID_SIZE + 4)
#define LIST_REF_SIZE (LB_ID_SIZE + 8)
#define CHUNKLIST_HEADER_SIZE 8

/* Split rule of chunk lists (see lb_chunklist_is_boundary). */
#define CHUNKLIST_SPLIT_MIN 16
#define CHUNKLIST_SPLIT_MAX 4096
#define CHUNKLIST_SPLIT_MASK 0x3ffu

void lb_node_clear(LbNode *n) {
        if (!n)
                return;
        free(n->name);
        free(n->user);
        free(n->group);
        free(n->link);
        free(n->content);
        lb_meta_free(n->meta, n->n_meta);
        *n = (LbNode) {};
}

void lb_tree_free(LbTree *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                lb_node_clear(&t->nodes[i]);
        free(t->nodes);
        free(t);
}

/* Bytewise order: memcmp over the common prefix, then the shorter name
 * first. NULL sorts as the empty name (only reachable for invalid nodes). */
static int name_cmp(const char *a, const char *b) {
        size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
        size_t m = LB_MIN(la, lb);
        int c = m ? memcmp(a, b, m) : 0;
        if (c != 0)
                return c;
        return (la > lb) - (la < lb);
}

static int node_cmp(const void *a, const void *b) {
        return name_cmp(((const LbNode *) a)->name, ((const LbNode *) b)->name);
}

int lb_tree_add(LbTree *t, LbNode *n) {
        if (t->n >= LB_TREE_MAX_ENTRIES)
                return -E2BIG;
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                LbNode *nodes = reallocarray(t->nodes, cap, sizeof *nodes);
                if (!nodes)
                        return -ENOMEM;
                t->nodes = nodes;
                t->cap = cap;
        }
        t->nodes[t->n++] = *n;
        *n = (LbNode) {};
        return 0;
}

int lb_tree_sort(LbTree *t) {
        if (t->n < 2)
                return 0;
        lb_qsort(t->nodes, t->n, sizeof *t->nodes, node_cmp);
        for (size_t i = 1; i < t->n; i++)
                if (name_cmp(t->nodes[i - 1].name, t->nodes[i].name) == 0)
                        return -EEXIST;
        return 0;
}

const LbNode *lb_tree_find(const LbTree *t, const char *name) {
        if (!t || !name)
                return NULL;
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = name_cmp(name, t->nodes[mid].name);
                if (c == 0)
                        return &t->nodes[mid];
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

/* ---- validation (shared by encoder and decoder) ------------------------- */

bool lb_tree_name_valid(const char *s) {
        if (!s)
                return false;
        size_t len = strnlen(s, TREE_NAME_MAX + 1);
        if (len == 0 || len > TREE_NAME_MAX)
                return false;
        if (strchr(s, '/'))
                return false;
        return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static bool string_ok(const char *s) {
        return s && strnlen(s, TREE_STRING_MAX + 1) <= TREE_STRING_MAX;
}

static bool is_device(LbNodeType type) {
        return type == LB_NODE_CHARDEV || type == LB_NODE_BLOCKDEV;
}

static int content_check(const LbNode *n) {
        if (n->n_content == 0)
                /* An empty file has no content record, hence no LISTS. */
                return n->size == 0 && !n->indirect ? 0 : -EINVAL;
        if (!n->content)
                return -EINVAL;
        size_t ref_size = n->indirect ? LIST_REF_SIZE : CHUNK_REF_SIZE;
        if (!n->indirect && n->n_content > LB_INLINE_CHUNKS_MAX)
                return -EINVAL;
        if (n->n_content > UINT32_MAX / ref_size)
                return -EINVAL;
        uint64_t sum = 0;
        for (size_t i = 0; i < n->n_content; i++) {
                uint64_t s = n->content[i].size;
                if (s == 0)
                        return -EINVAL;
                if (!n->indirect && s > LB_CHUNK_MAX_LIMIT)
                        return -EINVAL;
                if (s > UINT64_MAX - sum)
                        return -EINVAL;
                sum += s;
        }
        return sum == n->size ? 0 : -EINVAL;
}

/* 0 if n is a valid entry, -EINVAL otherwise. */
static int node_check(const LbNode *n) {
        if (!lb_tree_name_valid(n->name))
                return -EINVAL;
        if (n->type < LB_NODE_FILE || n->type >= _LB_NODE_MAX)
                return -EINVAL;
        if (n->user && !string_ok(n->user))
                return -EINVAL;
        if (n->group && !string_ok(n->group))
                return -EINVAL;

        if ((n->type == LB_NODE_SYMLINK) != (n->link != NULL))
                return -EINVAL;
        if (n->link && (n->link[0] == 0 || !string_ok(n->link)))
                return -EINVAL;
        if ((n->type == LB_NODE_DIR) != n->has_subtree)
                return -EINVAL;
        if (!is_device(n->type) && n->rdev != 0)
                return -EINVAL;
        if (n->type == LB_NODE_FILE) {
                if (content_check(n) < 0)
                        return -EINVAL;
        } else if (n->n_content != 0 || n->indirect || n->has_xxh3)
                return -EINVAL;

        if (n->n_meta > TREE_META_MAX || (n->n_meta && !n->meta))
                return -EINVAL;
        for (size_t i = 0; i < n->n_meta; i++) {
                const LbMeta *m = &n->meta[i];
                if (!string_ok(m->key) || m->key[0] == 0 || !string_ok(m->value))
                        return -EINVAL;
        }
        return 0;
}

/* ---- encoding ------------------------------------------------------------ */

static int put_content(LbBuf *b, LbBuf *scratch, const LbNode *n) {
        size_t ref_size = n->indirect ? LIST_REF_SIZE : CHUNK_REF_SIZE;
        uint8_t *p;
        lb_buf_clear(scratch);
        int r = lb_buf_grow(scratch, n->n_content * ref_size, &p);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n_content; i++, p += ref_size) {
                memcpy(p, n->content[i].id.b, LB_ID_SIZE);
                if (n->indirect)
                        lb_put_le64(p + LB_ID_SIZE, n->content[i].size);
                else
                        lb_put_le32(p + LB_ID_SIZE, (uint32_t) n->content[i].size);
        }
        return lb_tlv_put(b, n->indirect ? LB_TREE_TAG_LISTS : LB_TREE_TAG_CHUNKS, scratch->data, scratch->len);
}

/* Records in ascending order of tag number (critical bit ignored). */
static int node_encode(LbBuf *b, LbBuf *scratch, const LbNode *n) {
        int r;
#define PUT(expr)                       \
        do {                            \
                r = (expr);             \
                if (r < 0)              \
                        return r;       \
        } while (0)
        PUT(lb_tlv_put_str(b, LB_TREE_TAG_NAME, n->name));
        PUT(lb_tlv_put_u8(b, LB_TREE_TAG_TYPE, (uint8_t) n->type));
        PUT(lb_tlv_put_u32(b, LB_TREE_TAG_MODE, n->mode));
        PUT(lb_tlv_put_u32(b, LB_TREE_TAG_UID, n->uid));
        PUT(lb_tlv_put_u32(b, LB_TREE_TAG_GID, n->gid));
        if (n->user)
                PUT(lb_tlv_put_str(b, LB_TREE_TAG_USER, n->user));
        if (n->group)
                PUT(lb_tlv_put_str(b, LB_TREE_TAG_GROUP, n->group));
        PUT(lb_tlv_put_u64(b, LB_TREE_TAG_SIZE, n->size));
        PUT(lb_tlv_put_u64(b, LB_TREE_TAG_MTIME, (uint64_t) n->mtime_ns));
        if (n->link)
                PUT(lb_tlv_put_str(b, LB_TREE_TAG_LINK, n->link));
        if (n->has_subtree)
                PUT(lb_tlv_put(b, LB_TREE_TAG_SUBTREE, n->subtree.b, LB_ID_SIZE));
        if (n->n_content)
                PUT(put_content(b, scratch, n));
        if (n->rdev)
                PUT(lb_tlv_put_u64(b, LB_TREE_TAG_RDEV, n->rdev));
        if (n->has_xxh3)
                PUT(lb_tlv_put_u64(b, LB_TREE_TAG_XXH3, n->xxh3));
        for (size_t i = 0; i < n->n_meta; i++)
                PUT(lb_tlv_put_meta(b, scratch, LB_TREE_TAG_META, &n->meta[i]));
#undef PUT
        return 0;
}

static int tree_encode(const LbTree *t, LbBuf *out) {
        if (t->n > LB_TREE_MAX_ENTRIES)
                return -E2BIG;
        for (size_t i = 0; i < t->n; i++) {
                if (node_check(&t->nodes[i]) < 0)
                        return -EINVAL;
                if (i > 0 && name_cmp(t->nodes[i - 1].name, t->nodes[i].name) >= 0)
                        return -EINVAL;
        }

        _cleanup_buf_ LbBuf scratch = {};
        int r = lb_buf_append(out, LB_TREE_MAGIC, 4);
        if (r < 0)
                return r;
        r = lb_buf_append_le32(out, (uint32_t) t->n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < t->n; i++) {
                size_t off = out->len;
                r = lb_buf_grow(out, 4, NULL);
                if (r < 0)
                        return r;
                r = node_encode(out, &scratch, &t->nodes[i]);
                if (r < 0)
                        return r;
                size_t len = out->len - off - 4;
                if (len > UINT32_MAX)
                        return -E2BIG;
                lb_put_le32(out->data + off, (uint32_t) len);
        }
        /* A tree is stored as one blob. */
        if (out->len > LB_BLOB_RAW_MAX)
                return -E2BIG;
        return 0;
}

int lb_tree_encode(const LbTree *t, LbBuf *out) {
        lb_buf_clear(out);
        int r = tree_encode(t, out);
        if (r < 0)
                lb_buf_clear(out);
        return r;
}

/* ---- decoding ------------------------------------------------------------ */

/* key_len u16 || key || value, both strings without NUL and <= max. */
static int content_decode(const uint8_t *v, uint32_t n, bool indirect, LbNode *node) {
        size_t ref_size = indirect ? LIST_REF_SIZE : CHUNK_REF_SIZE;
        if (n == 0 || n % ref_size != 0)
                return -EBADMSG;
        size_t count = n / ref_size;
        if (!indirect && count > LB_INLINE_CHUNKS_MAX)
                return -EBADMSG;
        LbContentRef *c = calloc(count, sizeof *c);
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < count; i++, v += ref_size) {
                memcpy(c[i].id.b, v, LB_ID_SIZE);
                c[i].size = indirect ? lb_get_le64(v + LB_ID_SIZE) : lb_get_le32(v + LB_ID_SIZE);
        }
        node->content = c;
        node->n_content = count;
        node->indirect = indirect;
        return 0;
}

static bool tree_tag_known(uint16_t tag) {
        switch (tag) {
        case LB_TREE_TAG_NAME:
        case LB_TREE_TAG_TYPE:
        case LB_TREE_TAG_MODE:
        case LB_TREE_TAG_UID:
        case LB_TREE_TAG_GID:
        case LB_TREE_TAG_USER:
        case LB_TREE_TAG_GROUP:
        case LB_TREE_TAG_SIZE:
        case LB_TREE_TAG_MTIME:
        case LB_TREE_TAG_LINK:
        case LB_TREE_TAG_SUBTREE:
        case LB_TREE_TAG_CHUNKS:
        case LB_TREE_TAG_LISTS:
        case LB_TREE_TAG_RDEV:
        case LB_TREE_TAG_XXH3:
        case LB_TREE_TAG_META:
                return true;
        default:
                return false;
        }
}

/* Decodes one entry into *node (which starts zeroed; the caller clears it
 * on failure). */
static int node_decode(const uint8_t *p, uint32_t len, LbNode *node) {
        LbReader rd = lb_reader(p, len);
        uint32_t seen = 0;
        int r;

        for (;;) {
                uint16_t tag;
                const uint8_t *v;
                uint32_t n;
                r = lb_tlv_next(&rd, &tag, &v, &n);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;

                r = lb_tlv_check(tag, tree_tag_known(tag), tag == LB_TREE_TAG_META, &seen);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;

                switch (tag) {
                case LB_TREE_TAG_NAME:
                        r = lb_tlv_str(v, n, TREE_NAME_MAX, &node->name);
                        break;
                case LB_TREE_TAG_TYPE: {
                        uint8_t type;
                        r = lb_tlv_u8(v, n, &type);
                        if (r >= 0 && (type < LB_NODE_FILE || type >= _LB_NODE_MAX))
                                r = -EBADMSG;
                        if (r >= 0)
                                node->type = (LbNodeType) type;
                        break;
                }
                case LB_TREE_TAG_MODE:
                        r = lb_tlv_u32(v, n, &node->mode);
                        break;
                case LB_TREE_TAG_UID:
                        r = lb_tlv_u32(v, n, &node->uid);
                        break;
                case LB_TREE_TAG_GID:
                        r = lb_tlv_u32(v, n, &node->gid);
                        break;
                case LB_TREE_TAG_USER:
                        r = lb_tlv_str(v, n, TREE_STRING_MAX, &node->user);
                        break;
                case LB_TREE_TAG_GROUP:
                        r = lb_tlv_str(v, n, TREE_STRING_MAX, &node->group);
                        break;
                case LB_TREE_TAG_SIZE:
                        r = lb_tlv_u64(v, n, &node->size);
                        break;
                case LB_TREE_TAG_MTIME: {
                        uint64_t t;
                        r = lb_tlv_u64(v, n, &t);
                        if (r >= 0)
                                node->mtime_ns = (int64_t) t;
                        break;
                }
                case LB_TREE_TAG_LINK:
                        r = lb_tlv_str(v, n, TREE_STRING_MAX, &node->link);
                        break;
                case LB_TREE_TAG_SUBTREE:
                        if (n != LB_ID_SIZE)
                                return -EBADMSG;
                        memcpy(node->subtree.b, v, LB_ID_SIZE);
                        node->has_subtree = true;
                        break;
                case LB_TREE_TAG_CHUNKS:
                case LB_TREE_TAG_LISTS:
                        /* CHUNKS and LISTS exclude each other. */
                        if (node->content)
                                return -EBADMSG;
                        r = content_decode(v, n, tag == LB_TREE_TAG_LISTS, node);
                        break;
                case LB_TREE_TAG_RDEV:
                        r = lb_tlv_u64(v, n, &node->rdev);
                        break;
                case LB_TREE_TAG_XXH3:
                        r = lb_tlv_u64(v, n, &node->xxh3);
                        if (r >= 0)
                                node->has_xxh3 = true;
                        break;
                case LB_TREE_TAG_META:
                        r = lb_tlv_meta_append(v, n, TREE_STRING_MAX, TREE_META_MAX, &node->meta, &node->n_meta);
                        break;
                default:
                        /* unreachable: tree_tag_known() */
                        return -EBADMSG;
                }
                if (r < 0)
                        return r;
        }

        /* Missing NAME or TYPE, or fields that do not fit the type. */
        return node_check(node) < 0 ? -EBADMSG : 0;
}

int lb_tree_decode(const uint8_t *p, size_t n, LbTree **ret) {
        if (n > LB_BLOB_RAW_MAX)
                return -EBADMSG;
        LbReader rd = lb_reader(p, n);
        const uint8_t *magic;
        uint32_t count;
        int r = lb_reader_bytes(&rd, 4, &magic);
        if (r < 0)
                return r;
        if (memcmp(magic, LB_TREE_MAGIC, 4) != 0)
                return -EBADMSG;
        r = lb_reader_le32(&rd, &count);
        if (r < 0)
                return r;
        /* Check the count against the limit and the bytes left before
         * allocating anything for it. */
        if (count > LB_TREE_MAX_ENTRIES || count > lb_reader_left(&rd) / TREE_NODE_MIN_SIZE)
                return -EBADMSG;

        _cleanup_tree_ LbTree *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        if (count > 0) {
                t->nodes = calloc(count, sizeof *t->nodes);
                if (!t->nodes)
                        return -ENOMEM;
                t->cap = count;
        }

        for (uint32_t i = 0; i < count; i++) {
                uint32_t len;
                const uint8_t *v;
                r = lb_reader_le32(&rd, &len);
                if (r < 0)
                        return r;
                r = lb_reader_bytes(&rd, len, &v);
                if (r < 0)
                        return r;
                t->n = i + 1;  /* so the cleanup frees a partly decoded node */
                r = node_decode(v, len, &t->nodes[i]);
                if (r < 0)
                        return r;
                if (i > 0 && name_cmp(t->nodes[i - 1].name, t->nodes[i].name) >= 0)
                        return -EBADMSG;
        }
        if (lb_reader_left(&rd) != 0)
                return -EBADMSG;

        *ret = LB_TAKE_PTR(t);
        return 0;
}

/* ---- chunk lists ----------------------------------------------------------- */

static bool chunk_size_ok(uint64_t size) {
        return size >= 1 && size <= LB_CHUNK_MAX_LIMIT;
}

int lb_chunklist_encode(const LbContentRef *refs, size_t n, LbBuf *out) {
        lb_buf_clear(out);
        if (n == 0 || n > LB_CHUNKLIST_MAX_ENTRIES || !refs)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!chunk_size_ok(refs[i].size))
                        return -EINVAL;
        uint8_t *p;
        int r = lb_buf_grow(out, CHUNKLIST_HEADER_SIZE + n * CHUNK_REF_SIZE, &p);
        if (r < 0)
                return r;
        memcpy(p, LB_CHUNKLIST_MAGIC, 4);
        lb_put_le32(p + 4, (uint32_t) n);
        p += CHUNKLIST_HEADER_SIZE;
        for (size_t i = 0; i < n; i++, p += CHUNK_REF_SIZE) {
                memcpy(p, refs[i].id.b, LB_ID_SIZE);
                lb_put_le32(p + LB_ID_SIZE, (uint32_t) refs[i].size);
        }
        return 0;
}

int lb_chunklist_decode(const uint8_t *p, size_t n, LbContentRef **ret, size_t *ret_n) {
        if (n < CHUNKLIST_HEADER_SIZE || memcmp(p, LB_CHUNKLIST_MAGIC, 4) != 0)
                return -EBADMSG;
        uint32_t count = lb_get_le32(p + 4);
        if (count == 0 || count > LB_CHUNKLIST_MAX_ENTRIES)
                return -EBADMSG;
        if (n - CHUNKLIST_HEADER_SIZE != (size_t) count * CHUNK_REF_SIZE)
                return -EBADMSG;
        _cleanup_free_ LbContentRef *refs = calloc(count, sizeof *refs);
        if (!refs)
                return -ENOMEM;
        const uint8_t *q = p + CHUNKLIST_HEADER_SIZE;
        for (uint32_t i = 0; i < count; i++, q += CHUNK_REF_SIZE) {
                memcpy(refs[i].id.b, q, LB_ID_SIZE);
                refs[i].size = lb_get_le32(q + LB_ID_SIZE);
                if (!chunk_size_ok(refs[i].size))
                        return -EBADMSG;
        }
        *ret = LB_TAKE_PTR(refs);
        *ret_n = count;
        return 0;
}

/*
 * The split rule. Walking a long file's chunks in order, the current list
 * blob ends after a chunk when, counting that chunk, the list holds
 * entries_in_current_list entries and
 *
 *   entries_in_current_list >= 4096                     (hard cap), or
 *   entries_in_current_list >= 16 and
 *     (le16(chunk_id[0..2]) & 0x3ff) == 0               (content-defined cut).
 *
 * Chunk ids are keyed hashes, so the second condition holds for one chunk
 * in 1024: lists average about 1024 entries (~36 KiB), never exceed 4096
 * and, except for a file's last list, never hold fewer than 16. Because the
 * cut depends on the chunk itself and not on its position in the file, an
 * insertion or deletion in a long file changes only the list blob(s)
 * around the edit; from the next cut on, the lists are the same as before
 * and deduplicate.
 */
bool lb_chunklist_is_boundary(const LbId *chunk_id, size_t entries_in_current_list) {
        if (entries_in_current_list >= CHUNKLIST_SPLIT_MAX)
                return true;
        if (entries_in_current_list < CHUNKLIST_SPLIT_MIN)
                return false;
        return (lb_get_le16(chunk_id->b) & CHUNKLIST_SPLIT_MASK) == 0;
}

static bool same_content(const LbNode *a, const LbNode *b) {
        if (a->indirect != b->indirect || a->n_content != b->n_content)
                return false;
        for (size_t i = 0; i < a->n_content; i++)
                if (memcmp(a->content[i].id.b, b->content[i].id.b, LB_ID_SIZE) != 0 || a->content[i].size != b->content[i].size)
                        return false;
        return true;
}

bool lb_node_changed(const LbNode *a, const LbNode *b) {
        if (a->type != b->type || a->mode != b->mode || a->mtime_ns != b->mtime_ns || a->uid != b->uid ||
            a->gid != b->gid)
                return true;
        switch (a->type) {
        case LB_NODE_FILE:
                return a->size != b->size || !same_content(a, b);
        case LB_NODE_SYMLINK:
                return !a->link || !b->link || strcmp(a->link, b->link) != 0;
        case LB_NODE_CHARDEV:
        case LB_NODE_BLOCKDEV:
                return a->rdev != b->rdev;
        default:
                return false;
        }
}
