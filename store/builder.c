/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <xxhash.h>

#include "lb-config.h"
#include "store/builder.h"

typedef struct BNode {
        LbNode node;
        struct BNode **kids;
        size_t n;
        bool implicit;         /* a directory created as a parent, metadata defaulted */
} BNode;

struct LbBuilder {
        LbRepo *repo;
        LbWriter *writer;
        pthread_mutex_t lock;
        BNode root;
        LbSnapshotStats stats;
        LbChangeCounts changes;
        int64_t start;
};

/* The same file in an earlier snapshot, to find each new chunk's base:
 * its chunks with their end offsets, and their ids sorted to find a chunk
 * both versions share. */
typedef struct PrevChunk {
        LbId id;
        uint64_t end;          /* offset just past the chunk in prev */
} PrevChunk;

typedef struct Prev {
        PrevChunk *chunks;     /* in file order */
        uint32_t *by_id;       /* indexes into chunks, sorted by id */
        size_t n;
        /* The last chunk both versions share ends at new_at in the new
         * file and at old_at in prev: the place of a new chunk in prev is
         * its offset shifted by old_at - new_at. */
        uint64_t new_at, old_at;
} Prev;

struct LbBuilderFile {
        LbBuilder *b;
        Prev prev;
        uint64_t cut;          /* offset of the next chunk */
        char *path;
        LbNode node;
        uint8_t *buf;
        size_t have, cap;
        LbContentRef *refs;
        size_t n, refs_cap;
        XXH3_state_t *xxh;
        uint64_t size;
        int error;
};

static void bnode_free(BNode *b) {
        for (size_t i = 0; i < b->n; i++) {
                bnode_free(b->kids[i]);
                free(b->kids[i]);
        }
        free(b->kids);
        lb_node_clear(&b->node);
        *b = (BNode) {};
}

int lb_builder_new(LbRepo *r, LbBuilder **ret) {
        LbBuilder *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        int k = lb_writer_new(r, &b->writer);
        if (k < 0) {
                free(b);
                return k;
        }
        b->repo = r;
        b->start = lb_mono_ns();
        b->root.node = (LbNode) { .type = LB_NODE_DIR, .mode = 0755 };
        pthread_mutex_init(&b->lock, NULL);
        *ret = b;
        return 0;
}

LbBuilder *lb_builder_free(LbBuilder *b) {
        if (!b)
                return NULL;
        bnode_free(&b->root);
        lb_writer_free(b->writer);
        pthread_mutex_destroy(&b->lock);
        free(b);
        return NULL;
}

static bool component_ok(const char *c, size_t len) {
        return len > 0 && len <= 255 && !(len == 1 && c[0] == '.') && !(len == 2 && c[0] == '.' && c[1] == '.');
}

static BNode *kid_find(BNode *dir, const char *name, size_t len) {
        for (size_t i = 0; i < dir->n; i++)
                if (strlen(dir->kids[i]->node.name) == len && memcmp(dir->kids[i]->node.name, name, len) == 0)
                        return dir->kids[i];
        return NULL;
}

static BNode *kid_new(BNode *dir, const char *name, size_t len) {
        BNode **v = realloc(dir->kids, (dir->n + 1) * sizeof *v);
        if (!v)
                return NULL;
        dir->kids = v;
        BNode *k = calloc(1, sizeof *k);
        if (!k || !(k->node.name = strndup(name, len))) {
                free(k);
                return NULL;
        }
        dir->kids[dir->n++] = k;
        return k;
}

/* Finds or creates the node for path under the builder lock; parents are
 * created as implicit directories. *ret_last is the final component's node. */
static int place(LbBuilder *b, const char *path, BNode **ret_last) {
        if (path[0] != '/')
                return -EINVAL;
        BNode *cur = &b->root;
        const char *p = path;
        for (;;) {
                while (*p == '/')
                        p++;
                if (!*p)
                        return -EINVAL; /* the root itself, or a trailing slash */
                const char *end = strchrnul(p, '/');
                size_t len = (size_t) (end - p);
                if (!component_ok(p, len))
                        return -EINVAL;
                bool last = true;
                for (const char *q = end; *q; q++)
                        if (*q != '/') {
                                last = false;
                                break;
                        }
                BNode *kid = kid_find(cur, p, len);
                if (last) {
                        if (!kid && !(kid = kid_new(cur, p, len)))
                                return -ENOMEM;
                        *ret_last = kid;
                        return 0;
                }
                if (!kid) {
                        kid = kid_new(cur, p, len);
                        if (!kid)
                                return -ENOMEM;
                        kid->node.type = LB_NODE_DIR;
                        kid->node.mode = 0755;
                        kid->node.uid = (uint32_t) getuid();
                        kid->node.gid = (uint32_t) getgid();
                        kid->node.mtime_ns = lb_now_ns();
                        kid->implicit = true;
                } else if (kid->node.type != LB_NODE_DIR)
                        return -ENOTDIR;
                cur = kid;
                p = end;
        }
}

/* Moves n into the placed node: a fresh node, or an implicit directory
 * that now gets real metadata. */
static int settle(BNode *at, LbNode *n) {
        bool fresh = at->node.type == 0;
        if (!fresh && !(at->implicit && n->type == LB_NODE_DIR))
                return -EEXIST;
        char *name = LB_TAKE_PTR(at->node.name);
        lb_node_clear(&at->node);
        free(n->name);
        n->name = name;
        n->has_subtree = false;
        at->node = *n;
        *n = (LbNode) {};
        at->implicit = false;
        return 0;
}

static int node_copy(const LbNode *src, LbNode *ret) {
        LbNode n = *src;
        n.name = NULL;
        n.user = n.group = n.link = NULL;
        n.content = NULL;
        n.n_content = 0;
        n.meta = NULL;
        n.n_meta = 0;
        if ((src->user && !(n.user = strdup(src->user))) || (src->group && !(n.group = strdup(src->group))) ||
            (src->link && !(n.link = strdup(src->link)))) {
                lb_node_clear(&n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

static int meta_copy(LbNode *n, const LbMeta *meta, size_t n_meta) {
        if (n_meta == 0)
                return 0;
        n->meta = calloc(n_meta, sizeof *n->meta);
        if (!n->meta)
                return -ENOMEM;
        for (size_t i = 0; i < n_meta; i++) {
                n->meta[i].key = strdup(meta[i].key);
                n->meta[i].value = strdup(meta[i].value);
                n->n_meta++;
                if (!n->meta[i].key || !n->meta[i].value)
                        return -ENOMEM;
        }
        return 0;
}

int lb_builder_add_node(LbBuilder *b, const char *path, const LbNode *n) {
        if (n->type == LB_NODE_FILE)
                return -EINVAL; /* files go through lb_builder_file_open */
        LbNode copy;
        int k = node_copy(n, &copy);
        if (k < 0)
                return k;
        pthread_mutex_lock(&b->lock);
        BNode *at;
        k = place(b, path, &at);
        if (k == 0)
                k = settle(at, &copy);
        if (k == 0 && n->type == LB_NODE_DIR)
                b->stats.dirs++;
        pthread_mutex_unlock(&b->lock);
        lb_node_clear(&copy);
        return k;
}

int lb_builder_file_open(LbBuilder *b, const char *path, const LbNode *tmpl, LbBuilderFile **ret) {
        if (path[0] != '/')
                return -EINVAL;
        LbBuilderFile *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->b = b;
        int k = 0;
        if (tmpl)
                k = node_copy(tmpl, &f->node);
        else
                f->node = (LbNode) { .mode = 0600, .uid = (uint32_t) getuid(), .gid = (uint32_t) getgid(),
                                     .mtime_ns = lb_now_ns() };
        f->node.type = LB_NODE_FILE;
        f->cap = (size_t) LB_MAX(4u * b->repo->cfg.chunker.max, 1u << 20);
        f->buf = malloc(f->cap);
        f->path = strdup(path);
        f->xxh = XXH3_createState();
        if (k == 0 && (!f->buf || !f->path || !f->xxh))
                k = -ENOMEM;
        if (k == 0 && XXH3_64bits_reset(f->xxh) != XXH_OK)
                k = -EIO;
        if (k < 0) {
                lb_builder_file_abort(f);
                return k;
        }
        *ret = f;
        return 0;
}

void lb_builder_file_abort(LbBuilderFile *f) {
        if (!f)
                return;
        free(f->prev.chunks);
        free(f->prev.by_id);
        lb_node_clear(&f->node);
        free(f->buf);
        free(f->path);
        free(f->refs);
        if (f->xxh)
                XXH3_freeState(f->xxh);
        free(f);
}

static int by_id_cmp(const void *a, const void *b, void *chunks) {
        const PrevChunk *c = chunks;
        return lb_id_cmp(&c[*(const uint32_t *) a].id, &c[*(const uint32_t *) b].id);
}

static int prev_append(Prev *v, size_t *cap, const LbContentRef *r) {
        if (v->n == *cap) {
                size_t c = *cap ? 2 * *cap : 256;
                PrevChunk *a = reallocarray(v->chunks, c, sizeof *a);
                if (!a)
                        return -ENOMEM;
                v->chunks = a;
                *cap = c;
        }
        uint64_t start = v->n ? v->chunks[v->n - 1].end : 0;
        v->chunks[v->n++] = (PrevChunk) { .id = r->id, .end = start + r->size };
        return 0;
}

int lb_builder_file_set_prev(LbBuilderFile *f, const LbNode *prev) {
        if (prev->type != LB_NODE_FILE || f->prev.n > 0 || f->cut > 0)
                return 0;
        Prev v = {};
        size_t cap = 0;
        int k = 0;
        for (size_t i = 0; k == 0 && i < prev->n_content; i++) {
                if (!prev->indirect) {
                        k = prev_append(&v, &cap, &prev->content[i]);
                        continue;
                }
                _cleanup_buf_ LbBuf b = {};
                LbContentRef *refs = NULL;
                size_t n = 0;
                k = lb_repo_read_blob(f->b->repo, &prev->content[i].id, &b);
                if (k == 0)
                        k = lb_chunklist_decode(b.data, b.len, &refs, &n);
                for (size_t j = 0; k == 0 && j < n; j++)
                        k = prev_append(&v, &cap, &refs[j]);
                free(refs);
        }
        if (k == 0 && v.n > UINT32_MAX)
                k = -EFBIG;
        if (k == 0 && !(v.by_id = malloc(LB_MAX(v.n, (size_t) 1) * sizeof *v.by_id)))
                k = -ENOMEM;
        if (k < 0) {
                free(v.chunks);
                free(v.by_id);
                return k == -ENOMEM ? k : 0; /* no prev: whole chunks */
        }
        for (size_t i = 0; i < v.n; i++)
                v.by_id[i] = (uint32_t) i;
        if (v.n > 0)
                qsort_r(v.by_id, v.n, sizeof *v.by_id, by_id_cmp, v.chunks);
        f->prev = v;
        return 0;
}

/* The chunk of prev to store the new chunk [at, at + n) against, or NULL.
 * A chunk prev has too moves the anchor instead. */
static const LbId *prev_like(Prev *v, const LbId *id, uint64_t at, size_t n) {
        if (v->n == 0)
                return NULL;
        size_t lo = 0, hi = v->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = lb_id_cmp(&v->chunks[v->by_id[mid]].id, id);
                if (c == 0) {
                        v->new_at = at + n;
                        v->old_at = v->chunks[v->by_id[mid]].end;
                        return NULL;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        /* The middle of the new chunk, moved into prev's offsets. */
        uint64_t mid_new = at + n / 2;
        if (v->old_at + (mid_new - v->new_at) < v->old_at)
                return NULL;
        uint64_t place = v->old_at + (mid_new - v->new_at);
        if (place >= v->chunks[v->n - 1].end)
                return NULL;
        lo = 0, hi = v->n;
        while (lo < hi) { /* the first chunk ending past place */
                size_t mid = lo + (hi - lo) / 2;
                if (v->chunks[mid].end <= place)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return &v->chunks[lo].id;
}

static int add_chunk(LbBuilderFile *f, const uint8_t *p, size_t n) {
        if (f->n == f->refs_cap) {
                size_t cap = f->refs_cap ? f->refs_cap * 2 : 64;
                LbContentRef *v = realloc(f->refs, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                f->refs = v;
                f->refs_cap = cap;
        }
        LbId id;
        lb_chunk_id(&f->b->repo->keys, p, n, &id);
        const LbId *like = prev_like(&f->prev, &id, f->cut, n);
        int k = lb_writer_add_like(f->b->writer, &id, p, n, like);
        if (k < 0)
                return k;
        f->refs[f->n++] = (LbContentRef) { .id = id, .size = n };
        f->cut += n;
        return 0;
}

/* Cuts and stores every chunk the buffer can decide (all of it at eof). */
static int cut_chunks(LbBuilderFile *f, bool eof) {
        const LbChunker *c = &f->b->repo->chunker;
        size_t off = 0;
        while (off < f->have && (eof || f->have - off >= c->p.max)) {
                size_t cut = lb_chunker_cut(c, f->buf + off, f->have - off, eof);
                if (cut == 0)
                        break;
                int k = add_chunk(f, f->buf + off, cut);
                if (k < 0)
                        return k;
                off += cut;
        }
        memmove(f->buf, f->buf + off, f->have - off);
        f->have -= off;
        return 0;
}

int lb_builder_file_write(LbBuilderFile *f, const void *p, size_t n) {
        if (f->error)
                return f->error;
        const uint8_t *c = p;
        if (XXH3_64bits_update(f->xxh, p, n) != XXH_OK)
                return f->error = -EIO;
        f->size += n;
        while (n > 0) {
                size_t take = LB_MIN(n, f->cap - f->have);
                memcpy(f->buf + f->have, c, take);
                f->have += take;
                c += take;
                n -= take;
                if (f->have == f->cap) {
                        int k = cut_chunks(f, false);
                        if (k < 0)
                                return f->error = k;
                }
        }
        return 0;
}

uint64_t lb_builder_file_xxh3(LbBuilderFile *f) {
        return XXH3_64bits_digest(f->xxh);
}

uint64_t lb_builder_file_size(LbBuilderFile *f) {
        return f->size;
}

int lb_builder_file_close(LbBuilderFile *f, const LbMeta *meta, size_t n_meta) {
        int k = f->error;
        if (k == 0)
                k = cut_chunks(f, true);
        LbBuilder *b = f->b;
        size_t chunks = f->n;
        if (k == 0) {
                k = lb_writer_set_content(b->writer, &f->node, f->refs, f->n);
                if (k == 0)
                        f->refs = NULL;
        }
        if (k == 0) {
                f->node.has_xxh3 = true;
                f->node.xxh3 = XXH3_64bits_digest(f->xxh);
                k = meta_copy(&f->node, meta, n_meta);
        }
        if (k == 0) {
                pthread_mutex_lock(&b->lock);
                BNode *at;
                k = place(b, f->path, &at);
                if (k == 0)
                        k = settle(at, &f->node);
                if (k == 0) {
                        b->stats.files++;
                        b->stats.bytes_read += f->size;
                        b->stats.chunks += chunks;
                }
                pthread_mutex_unlock(&b->lock);
        }
        lb_builder_file_abort(f);
        return k;
}

static int node_name_cmp(const void *x, const void *y) {
        return strcmp((*(BNode *const *) x)->node.name, (*(BNode *const *) y)->node.name);
}

static bool same_file_content(const LbNode *p, const LbNode *n) {
        if (p->type != LB_NODE_FILE || p->size != n->size || p->indirect != n->indirect ||
            p->n_content != n->n_content)
                return false;
        for (size_t i = 0; i < n->n_content; i++)
                if (lb_id_cmp(&p->content[i].id, &n->content[i].id) != 0)
                        return false;
        return true;
}

/* Stores the tree of dir (recursively) and returns its id; ptree is the
 * same directory in the parent snapshot (or NULL). Moves the nodes out of
 * the BNodes. */
static int store_dir(LbBuilder *b, BNode *dir, const LbTree *ptree, LbId *ret) {
        lb_qsort(dir->kids, dir->n, sizeof *dir->kids, node_name_cmp);
        LbTree t = {};
        int k = 0;
        LbChangeCounts *c = &b->changes;
        for (size_t i = 0; i < dir->n && k == 0; i++) {
                BNode *kid = dir->kids[i];
                LbNode *n = &kid->node;
                const LbNode *p = ptree ? lb_tree_find(ptree, n->name) : NULL;
                if (n->type == 0) {
                        k = -EINVAL; /* placed but never settled: cannot happen */
                        break;
                }
                if (n->type == LB_NODE_DIR) {
                        LbTree *psub = NULL;
                        if (p && p->type == LB_NODE_DIR && p->has_subtree &&
                            lb_repo_load_tree(b->repo, &p->subtree, &psub) < 0)
                                psub = NULL; /* an unreadable parent only costs the comparison */
                        k = store_dir(b, kid, psub, &n->subtree);
                        lb_tree_free(psub);
                        n->has_subtree = true;
                        bool same = k == 0 && p && p->type == LB_NODE_DIR && p->has_subtree &&
                                    lb_id_cmp(&p->subtree, &n->subtree) == 0;
                        if (same && kid->implicit)
                                n->mtime_ns = p->mtime_ns;
                        (*(!p ? &c->dirs_new : same ? &c->dirs_unmodified : &c->dirs_changed))++;
                } else if (n->type == LB_NODE_FILE) {
                        bool same = p && same_file_content(p, n);
                        if (same)
                                n->mtime_ns = p->mtime_ns;
                        (*(!p ? &c->files_new : same ? &c->files_unmodified : &c->files_changed))++;
                }
                if (k == 0)
                        k = lb_tree_add(&t, n);
        }
        _cleanup_buf_ LbBuf enc = {};
        if (k == 0)
                k = lb_tree_encode(&t, &enc);
        if (k == 0)
                k = lb_writer_add(b->writer, LB_BLOB_TREE, enc.data, enc.len, ret);
        for (size_t i = 0; i < t.n; i++)
                lb_node_clear(&t.nodes[i]);
        free(t.nodes);
        return k;
}

int lb_builder_commit(LbBuilder *b, const LbSnapshot *s, LbId *ret_id, LbSnapshotStats *ret_stats,
                      LbChangeCounts *ret_changes) {
        LbSnapshot snap = *s;
        LbSnapshot *parent = NULL;
        LbTree *ptree = NULL;
        if (s->has_parent && lb_repo_snapshot_load(b->repo, &s->parent, &parent) == 0 &&
            lb_repo_load_tree(b->repo, &parent->tree, &ptree) < 0)
                ptree = NULL;
        lb_snapshot_free(parent);
        int k = store_dir(b, &b->root, ptree, &snap.tree);
        lb_tree_free(ptree);
        if (k == 0)
                k = lb_writer_flush(b->writer);
        if (k == 0) {
                LbWriterStats ws;
                lb_writer_stats(b->writer, &ws);
                snap.stats = b->stats;
                snap.stats.bytes_new = ws.data_bytes_new;
                snap.stats.bytes_stored = ws.bytes_stored;
                snap.stats.chunks_new = ws.data_new;
                snap.stats.duration_ns = (uint64_t) (lb_mono_ns() - b->start);
                snap.program = (char *) "longbox " LB_VERSION;
                if (!snap.time_ns)
                        snap.time_ns = lb_now_ns();
                k = lb_repo_snapshot_save(b->repo, &snap, ret_id);
        }
        if (k == 0 && ret_stats)
                *ret_stats = snap.stats;
        if (k == 0 && ret_changes)
                *ret_changes = b->changes;
        lb_builder_free(b);
        return k;
}
