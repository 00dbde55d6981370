/* SPDX-License-Identifier: MIT */
/*
 * Repository check. Order: structure (key slots, index files), packs
 * (existence and size, or with read_data their whole contents), then every
 * snapshot's trees, so damage found in packs can be attributed to the
 * snapshots that need it.
 */
#include <stdarg.h>
#include <stdio.h>

#include "store/check.h"
#include "store/idset.h"
#include "store/index.h"

typedef struct PackState {
        LbId id;
        uint64_t indexed_size;   /* 0 when not in the index */
        uint64_t actual_size;
        bool present;
        bool damaged;
        char *why;
        /* snapshots needing this damaged pack: short ids, comma separated */
        LbBuf needed_by;
} PackState;

typedef struct Check {
        LbRepo *r;
        const LbCheckOptions *o;
        LbCheckResult *res;
        PackState *packs;
        size_t n_packs;
} Check;

static void report(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(Check *c, const char *fmt, ...) {
        c->res->errors++;
        if (!c->o->report)
                return;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (m)
                c->o->report(c->o->userdata, m);
}

static void info(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info(Check *c, const char *fmt, ...) {
        if (!c->o->info)
                return;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (m)
                c->o->info(c->o->userdata, m);
}

static PackState *pack_find(Check *c, const LbId *id) {
        /* packs is sorted by id once collected */
        size_t lo = 0, hi = c->n_packs;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int d = lb_id_cmp(&c->packs[mid].id, id);
                if (d == 0)
                        return &c->packs[mid];
                if (d < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static int pack_add(Check *c, const LbId *id, PackState **ret) {
        for (size_t i = 0; i < c->n_packs; i++)
                if (lb_id_cmp(&c->packs[i].id, id) == 0) {
                        *ret = &c->packs[i];
                        return 0;
                }
        PackState *v = realloc(c->packs, (c->n_packs + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        c->packs = v;
        c->packs[c->n_packs] = (PackState) { .id = *id };
        *ret = &c->packs[c->n_packs++];
        return 0;
}

static int indexed_pack(const LbId *id, uint64_t size, void *ud) {
        Check *c = ud;
        PackState *p;
        int k = pack_add(c, id, &p);
        if (k < 0)
                return k;
        p->indexed_size = size;
        return 0;
}

static int listed_pack(const char *name, uint64_t size, void *ud) {
        Check *c = ud;
        LbId id;
        if (strlen(name) != 2 * LB_ID_SIZE || lb_id_from_hex(name, &id) < 0)
                return 0;
        PackState *p;
        int k = pack_add(c, &id, &p);
        if (k < 0)
                return k;
        p->present = true;
        p->actual_size = size;
        return 0;
}

static int pack_state_cmp(const void *a, const void *b) {
        return lb_id_cmp(&((const PackState *) a)->id, &((const PackState *) b)->id);
}

static void set_damaged(PackState *p, const char *why) {
        if (p->damaged)
                return;
        p->damaged = true;
        p->why = strdup(why);
}

/* Reads a pack whole: hash, footer, TOC, every blob. */
static int read_pack(Check *c, PackState *p) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&p->id, hex);
        _cleanup_buf_ LbBuf b = {}, out = {};
        int k = c->r->be->get(c->r->be, LB_OBJ_PACK, hex, 0, SIZE_MAX, &b);
        if (k < 0) {
                set_damaged(p, "cannot be read");
                return k == -ENOENT || k == -EBADMSG || k == -EIO ? 0 : k;
        }
        c->res->packs_read++;
        LbId actual;
        lb_object_id(b.data, b.len, &actual);
        if (lb_id_cmp(&actual, &p->id) != 0)
                set_damaged(p, "content does not match its name (hash mismatch)");
        LbPackEntry *e = NULL;
        size_t n = 0;
        k = lb_pack_parse(&c->r->keys, b.data, b.len, &e, &n);
        if (k < 0) {
                set_damaged(p, "its table of contents is unreadable");
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                /* A delta's base is read through the index (from its own pack).
                 * A delta whose base is not indexed is damage only if a
                 * snapshot needs it, which the snapshot walk reports; else
                 * it is a leftover of a prune killed while it removed index
                 * files (docs/design.md "Prune", "Crashes"). */
                if (e[i].codec == LB_CODEC_DELTA && lb_repo_lookup(c->r, &e[i].base, NULL) == -ENOENT)
                        continue;
                k = lb_repo_decode_blob(c->r, &e[i], b.data + e[i].offset, e[i].stored_len, &out);
                if (k == -ENOMEM) {
                        free(e);
                        return k;
                }
                if (k < 0) {
                        char id[2 * LB_ID_SIZE + 1], base[2 * LB_ID_SIZE + 1], why[200];
                        lb_id_hex(&e[i].id, id);
                        lb_id_hex(&e[i].base, base);
                        if (e[i].codec == LB_CODEC_DELTA)
                                snprintf(why, sizeof why,
                                         "delta blob %.16s does not decode (it fails authentication, or its base "
                                         "%.16s is missing or damaged)",
                                         id, base);
                        else
                                snprintf(why, sizeof why, "blob %.16s fails authentication", id);
                        set_damaged(p, why);
                }
        }
        free(e);
        return 0;
}

static int check_packs(Check *c) {
        int k = lb_repo_index_packs(c->r, indexed_pack, c);
        if (k < 0)
                return k;
        k = c->r->be->list(c->r->be, LB_OBJ_PACK, listed_pack, c);
        if (k < 0)
                return k;
        lb_qsort(c->packs, c->n_packs, sizeof *c->packs, pack_state_cmp);
        LbCheckProgress pr = {};
        if (c->o->read_data)
                for (size_t i = 0; i < c->n_packs; i++)
                        if (c->packs[i].indexed_size > 0 && c->packs[i].present &&
                            c->packs[i].actual_size == c->packs[i].indexed_size) {
                                pr.packs_total++;
                                pr.bytes_total += c->packs[i].indexed_size;
                        }
        for (size_t i = 0; i < c->n_packs; i++) {
                PackState *p = &c->packs[i];
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&p->id, hex);
                c->res->packs++;
                if (p->indexed_size == 0) {
                        c->res->unreferenced_packs++;
                        info(c, "pack %s is not in the index (left over from an interrupted backup; prune will remove it)", hex);
                        continue;
                }
                if (!p->present) {
                        set_damaged(p, "is missing");
                        continue;
                }
                if (p->actual_size != p->indexed_size) {
                        char why[128];
                        snprintf(why, sizeof why, "has %llu bytes, the index says %llu",
                                 (unsigned long long) p->actual_size, (unsigned long long) p->indexed_size);
                        set_damaged(p, why);
                        continue;
                }
                if (c->o->read_data) {
                        k = read_pack(c, p);
                        if (k < 0)
                                return k;
                        pr.packs_done++;
                        pr.bytes_done += p->indexed_size;
                        pr.pack = hex;
                        if (c->o->progress)
                                c->o->progress(c->o->userdata, &pr);
                }
        }
        return 0;
}

/* ---- snapshots ---- */

typedef struct Walk {
        Check *c;
        const LbSnapshot *s;
        LbIdSet seen;          /* trees and lists visited in this snapshot */
} Walk;

#define BASE_WHAT "base chunk"

static void need_blob(Walk *w, const LbId *id, const char *what) {
        Check *c = w->c;
        c->res->blobs_referenced++;
        LbBlobLoc l;
        int k = lb_repo_lookup(c->r, id, &l);
        char hex[2 * LB_ID_SIZE + 1], snap[2 * LB_ID_SIZE + 1];
        lb_id_hex(&w->s->id, snap);
        if (k < 0) {
                lb_id_hex(id, hex);
                report(c, "snapshot %.8s needs %s %s, which is not in the index", snap, what, hex);
                return;
        }
        PackState *p = pack_find(c, &l.pack);
        /* Any damage makes the whole pack suspect (its name is the hash of
         * all its bytes): every snapshot with a blob in it needs repair. */
        if (p && p->damaged) {
                /* Record the snapshot once per pack. */
                char tag[16];
                snprintf(tag, sizeof tag, "%.8s", snap);
                if (!p->needed_by.data || !memmem(p->needed_by.data, p->needed_by.len, tag, strlen(tag))) {
                        if ((p->needed_by.len && lb_buf_append(&p->needed_by, ", ", 2) < 0) ||
                            lb_buf_append(&p->needed_by, tag, strlen(tag)) < 0)
                                return;
                }
        }
        /* A delta needs its base, which must be stored whole. */
        bool is_base = strcmp(what, BASE_WHAT) == 0;
        if (l.e.codec == LB_CODEC_DELTA && is_base) {
                lb_id_hex(id, hex);
                report(c, "snapshot %.8s needs base chunk %s, which is itself a delta", snap, hex);
        } else if (l.e.codec == LB_CODEC_DELTA)
                need_blob(w, &l.e.base, BASE_WHAT);
}

static int walk_tree(Walk *w, const LbId *tree, const char *path);

static int walk_node(Walk *w, const LbNode *n, const char *path) {
        Check *c = w->c;
        if (n->type == LB_NODE_DIR && n->has_subtree)
                return walk_tree(w, &n->subtree, path);
        if (n->type != LB_NODE_FILE)
                return 0;
        for (size_t i = 0; i < n->n_content; i++) {
                if (!n->indirect) {
                        need_blob(w, &n->content[i].id, "data chunk");
                        continue;
                }
                need_blob(w, &n->content[i].id, "chunk list");
                int k = lb_idset_add(&w->seen, &n->content[i].id);
                if (k <= 0) {
                        if (k < 0)
                                return k;
                        continue;
                }
                _cleanup_buf_ LbBuf b = {};
                k = lb_repo_read_blob(c->r, &n->content[i].id, &b);
                LbContentRef *refs = NULL;
                size_t nr = 0;
                if (k == 0)
                        k = lb_chunklist_decode(b.data, b.len, &refs, &nr);
                if (k == -ENOMEM)
                        return k;
                if (k < 0) {
                        char hex[2 * LB_ID_SIZE + 1], snap[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&n->content[i].id, hex);
                        lb_id_hex(&w->s->id, snap);
                        report(c, "snapshot %.8s: chunk list %s of %s cannot be read: %s", snap, hex, path,
                               strerror(-k));
                        continue;
                }
                for (size_t j = 0; j < nr; j++)
                        need_blob(w, &refs[j].id, "data chunk");
                free(refs);
        }
        return 0;
}

static int walk_tree(Walk *w, const LbId *tree, const char *path) {
        Check *c = w->c;
        int k = lb_idset_add(&w->seen, tree);
        if (k <= 0)
                return k;
        c->res->trees++;
        need_blob(w, tree, "tree");
        LbTree *t;
        k = lb_repo_load_tree(c->r, tree, &t);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                char snap[2 * LB_ID_SIZE + 1];
                lb_id_hex(&w->s->id, snap);
                report(c, "snapshot %.8s: the tree of %s cannot be read: %s", snap, *path ? path : "/",
                       strerror(-k));
                return 0;
        }
        for (size_t i = 0; i < t->n && k >= 0; i++) {
                _cleanup_free_ char *child = lb_strdup_printf("%s/%s", path, t->nodes[i].name);
                k = child ? walk_node(w, &t->nodes[i], child) : -ENOMEM;
        }
        lb_tree_free(t);
        return k < 0 ? k : 0;
}

static int check_snapshot_file(const char *name, uint64_t size, void *ud) {
        Check *c = ud;
        LbId id;
        if (strlen(name) != 2 * LB_ID_SIZE || lb_id_from_hex(name, &id) < 0)
                return 0;
        LbSnapshot *s;
        int k = lb_repo_snapshot_load(c->r, &id, &s);
        if (k == 0)
                lb_snapshot_free(s);
        else if (k == -ENOMEM)
                return k;
        else if (k != -ENOENT)
                report(c, "snapshot file %s is damaged: %s", name, strerror(-k));
        return 0;
}

static int check_snapshots(Check *c) {
        /* Damaged snapshot files first: the list below leaves them out. */
        int k = c->r->be->list(c->r->be, LB_OBJ_SNAPSHOT, check_snapshot_file, c);
        if (k < 0)
                return k;
        LbSnapshot **v;
        size_t n;
        k = lb_repo_snapshot_list(c->r, &v, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n && k >= 0; i++) {
                Walk w = { .c = c, .s = v[i] };
                c->res->snapshots++;
                k = walk_tree(&w, &v[i]->tree, "");
                lb_idset_free(&w.seen);
        }
        lb_snapshots_free(v, n);
        return k < 0 ? k : 0;
}

static int check_key(const char *name, uint64_t size, void *ud) {
        Check *c = ud;
        _cleanup_buf_ LbBuf b = {};
        int k = c->r->be->get(c->r->be, LB_OBJ_KEY, name, 0, SIZE_MAX, &b);
        LbKeySlot s;
        if (k == 0)
                k = lb_keyslot_parse(b.data, b.len, &s);
        if (k == 0)
                lb_keyslot_clear(&s);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                report(c, "key slot %s is damaged: %s", name, strerror(-k));
        return 0;
}

static int check_index_file(const char *name, uint64_t size, void *ud) {
        Check *c = ud;
        LbId id;
        LbIndexPack *p = NULL;
        size_t n = 0;
        int k = lb_id_from_hex(name, &id);
        if (k < 0)
                return 0; /* not an index file's name: listings skip those */
        k = lb_repo_read_index_file(c->r, &id, &p, &n);
        lb_index_packs_free(p, n);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                report(c, "index file %s is damaged: %s (run longbox index rebuild)", name, strerror(-k));
        return 0;
}

int lb_check_run(LbRepo *r, const LbCheckOptions *o, LbCheckResult *ret) {
        LbCheckResult res = {};
        Check c = { .r = r, .o = o, .res = &res };
        info(&c, "checking key slots and index files");
        int k = r->be->list(r->be, LB_OBJ_KEY, check_key, &c);
        if (k == 0)
                k = r->be->list(r->be, LB_OBJ_INDEX, check_index_file, &c);
        if (k == 0) {
                info(&c, o->read_data ? "reading all packs" : "checking packs");
                k = check_packs(&c);
        }
        if (k == 0) {
                info(&c, "checking snapshots");
                k = check_snapshots(&c);
        }
        if (k == 0)
                for (size_t i = 0; i < c.n_packs; i++) {
                        PackState *p = &c.packs[i];
                        if (!p->damaged)
                                continue;
                        char hex[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&p->id, hex);
                        if (p->needed_by.len)
                                report(&c, "pack %s %s; needed by snapshots %.*s", hex, p->why ? p->why : "is damaged",
                                       (int) p->needed_by.len, (const char *) p->needed_by.data);
                        else
                                report(&c, "pack %s %s; no snapshot needs it", hex, p->why ? p->why : "is damaged");
                }
        for (size_t i = 0; i < c.n_packs; i++) {
                free(c.packs[i].why);
                lb_buf_free(&c.packs[i].needed_by);
        }
        free(c.packs);
        if (k < 0)
                return k;
        *ret = res;
        return 0;
}
