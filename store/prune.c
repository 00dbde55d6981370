/* SPDX-License-Identifier: MIT */
#include "store/prune.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/index.h"
#include "store/markset.h"
#include "store/indexfile.h"
#include "store/pack.h"

/* Mark set values: flags in the low 4 bits, the owning pack's ordinal
 * (its slot in Prune.packs) above them. */
enum {
        MARK_LIVE = 1 << 0,        /* a snapshot references it */
        MARK_TREE_WALKED = 1 << 1, /* read as a tree, children marked */
        MARK_LIST_WALKED = 1 << 2, /* read as a chunk list, chunks marked */
        MARK_OWNED = 1 << 3,       /* a pack copy was chosen as the live one */
};
#define MARK_FLAGS 0xfu
#define MARK_OWNER_SHIFT 4
#define PACKS_MAX (UINT32_C(1) << (32 - MARK_OWNER_SHIFT))

/* Index files rewritten by prune hold at most this many blob entries, so
 * reading one back later costs a few MiB. */
#define REWRITE_ENTRIES_MAX 65536
#define REWRITE_PACKS_MAX 256

typedef enum PackAction {
        PACK_KEEP,
        PACK_DELETE,     /* no live blob */
        PACK_REPACK,     /* live blobs copied out, then deleted */
} PackAction;

typedef struct PackInfo {
        LbId id;
        uint64_t size;
        uint32_t blobs, live_blobs;
        uint64_t live_bytes, dead_bytes;   /* stored bytes of its entries */
        PackAction action;
        bool accounted;       /* its entries were counted (it may be listed twice) */
        bool in_backend;
        bool copied;          /* repack wrote its live blobs elsewhere */
        uint32_t *files;      /* ordinals of the index files listing it */
        uint32_t n_files;
} PackInfo;

typedef struct IndexFileInfo {
        LbId id;
        bool affected;        /* lists a pack being deleted: rewritten */
} IndexFileInfo;

typedef struct Prune {
        LbRepo *r;
        const LbPruneOptions *o;
        LbPruneResult res;
        char *error;
        LbMarkSet *mark;

        LbId *snaps;          /* phase 1's snapshots, sorted */
        size_t n_snaps;

        PackInfo *packs;
        size_t n_packs;
        uint32_t *slots;      /* open addressing over packs: ordinal + 1, 0 empty */
        size_t n_slots;       /* power of two */

        IndexFileInfo *files;
        size_t n_files;

        LbId *fresh;          /* ids first marked in phase 2 */
        size_t n_fresh;
        bool phase2;
} Prune;

static void info(Prune *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info(Prune *p, const char *fmt, ...) {
        if (!p->o->info)
                return;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (m)
                p->o->info(p->o->userdata, m);
}

/* Records the first error message; returns err. */
static int fail(Prune *p, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Prune *p, int err, const char *fmt, ...) {
        if (!p->error) {
                va_list ap;
                va_start(ap, fmt);
                p->error = lb_strdup_vprintf(fmt, ap);
                va_end(ap);
        }
        return err;
}

static bool hook_matches(const char *var, const char *step) {
        const char *at = getenv(var);
        return at && strncmp(at, "prune:", 6) == 0 && strcmp(at + 6, step) == 0;
}

/* Test hooks (docs/design.md "Prune"): LONGBOX_TEST_CRASH_AT=prune:STEP
 * kills prune at STEP; LONGBOX_TEST_PAUSE_AT=prune:STEP creates the file
 * LONGBOX_TEST_PAUSE_FILE there and waits (up to 5 minutes) until the
 * test removes it. */
static void crash_point(const char *step) {
        if (hook_matches("LONGBOX_TEST_CRASH_AT", step))
                raise(SIGKILL);
        const char *file = getenv("LONGBOX_TEST_PAUSE_FILE");
        if (!file || !hook_matches("LONGBOX_TEST_PAUSE_AT", step))
                return;
        int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return;
        close(fd);
        struct timespec ts = { 0, 50 * 1000000L };
        for (int i = 0; i < 6000 && access(file, F_OK) == 0; i++)
                nanosleep(&ts, NULL);
}

/* ---- the pack table ---- */

static uint64_t id_hash(const LbId *id) {
        uint64_t h;
        memcpy(&h, id->b, sizeof h); /* keyed or content hashes: uniform */
        return h;
}

static PackInfo *pack_find(Prune *p, const LbId *id) {
        if (p->n_slots == 0)
                return NULL;
        for (size_t i = id_hash(id) & (p->n_slots - 1);; i = (i + 1) & (p->n_slots - 1)) {
                uint32_t s = p->slots[i];
                if (s == 0)
                        return NULL;
                if (lb_id_cmp(&p->packs[s - 1].id, id) == 0)
                        return &p->packs[s - 1];
        }
}

static int slots_grow(Prune *p) {
        size_t n = p->n_slots ? p->n_slots * 2 : 1024;
        uint32_t *s = calloc(n, sizeof *s);
        if (!s)
                return -ENOMEM;
        for (size_t j = 0; j < p->n_packs; j++) {
                size_t i = id_hash(&p->packs[j].id) & (n - 1);
                while (s[i])
                        i = (i + 1) & (n - 1);
                s[i] = (uint32_t) j + 1;
        }
        free(p->slots);
        p->slots = s;
        p->n_slots = n;
        return 0;
}

static int pack_add(Prune *p, const LbId *id, uint64_t size, PackInfo **ret) {
        PackInfo *pi = pack_find(p, id);
        if (pi) {
                *ret = pi;
                return 0;
        }
        if (p->n_packs + 1 >= PACKS_MAX)
                return -E2BIG;
        if ((p->n_packs + 1) * 2 > p->n_slots) {
                int k = slots_grow(p);
                if (k < 0)
                        return k;
        }
        PackInfo *v = realloc(p->packs, (p->n_packs + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        p->packs = v;
        v[p->n_packs] = (PackInfo) { .id = *id, .size = size };
        size_t i = id_hash(id) & (p->n_slots - 1);
        while (p->slots[i])
                i = (i + 1) & (p->n_slots - 1);
        p->slots[i] = (uint32_t) p->n_packs + 1;
        *ret = &v[p->n_packs++];
        return 0;
}

static uint32_t pack_ordinal(Prune *p, const PackInfo *pi) {
        return (uint32_t) (pi - p->packs);
}

static bool pack_goes(const PackInfo *pi) {
        return pi->action == PACK_DELETE || (pi->action == PACK_REPACK && pi->copied);
}

/* ---- mark ---- */

/* Adds id as live; *ret_new tells whether it was unmarked before. */
static int mark_live(Prune *p, const LbId *id, uint32_t extra, uint32_t *ret_old) {
        uint32_t v = 0;
        int k = lb_markset_get(p->mark, id, &v);
        if (k < 0 && k != -ENOENT)
                return k;
        bool fresh = k == -ENOENT;
        if (ret_old)
                *ret_old = fresh ? 0 : v;
        if (!fresh && (v & (MARK_LIVE | extra)) == (MARK_LIVE | extra))
                return 0;
        k = lb_markset_put(p->mark, id, v | MARK_LIVE | extra);
        if (k < 0)
                return k;
        if (fresh && p->phase2) {
                /* A blob phase 1 found dead that a new snapshot uses now. */
                LbId *f = realloc(p->fresh, (p->n_fresh + 1) * sizeof *f);
                if (!f)
                        return -ENOMEM;
                p->fresh = f;
                p->fresh[p->n_fresh++] = *id;
        }
        return 0;
}

static int mark_tree(Prune *p, const LbId *snap, const LbId *tree);

static int mark_chunk_list(Prune *p, const LbId *snap, const LbId *list) {
        uint32_t old;
        int k = mark_live(p, list, MARK_LIST_WALKED, &old);
        if (k < 0 || (old & MARK_LIST_WALKED))
                return k;
        _cleanup_buf_ LbBuf b = {};
        LbContentRef *refs = NULL;
        size_t n = 0;
        k = lb_repo_read_blob(p->r, list, &b);
        if (k == 0)
                k = lb_chunklist_decode(b.data, b.len, &refs, &n);
        if (k < 0) {
                char hs[2 * LB_ID_SIZE + 1], hl[2 * LB_ID_SIZE + 1];
                lb_id_hex(snap, hs);
                lb_id_hex(list, hl);
                return fail(p, k == -ENOENT ? -EBADMSG : k, "snapshot %.8s: chunk list %s cannot be read: %s; "
                            "nothing was deleted: run 'longbox check'", hs, hl, k == -ENOENT ? "not in the index" : strerror(-k));
        }
        for (size_t i = 0; i < n && k >= 0; i++)
                k = mark_live(p, &refs[i].id, 0, NULL);
        free(refs);
        return k;
}

static int mark_tree(Prune *p, const LbId *snap, const LbId *tree) {
        uint32_t old;
        int k = mark_live(p, tree, MARK_TREE_WALKED, &old);
        if (k < 0 || (old & MARK_TREE_WALKED))
                return k;
        _cleanup_tree_ LbTree *t = NULL;
        k = lb_repo_load_tree(p->r, tree, &t);
        if (k < 0) {
                char hs[2 * LB_ID_SIZE + 1], ht[2 * LB_ID_SIZE + 1];
                lb_id_hex(snap, hs);
                lb_id_hex(tree, ht);
                return fail(p, k == -ENOENT ? -EBADMSG : k, "snapshot %.8s: tree %s cannot be read: %s; "
                            "nothing was deleted: run 'longbox check'", hs, ht, k == -ENOENT ? "not in the index" : strerror(-k));
        }
        for (size_t i = 0; i < t->n && k >= 0; i++) {
                const LbNode *n = &t->nodes[i];
                if (n->type == LB_NODE_DIR && n->has_subtree)
                        k = mark_tree(p, snap, &n->subtree);
                else if (n->type == LB_NODE_FILE)
                        for (size_t j = 0; j < n->n_content && k >= 0; j++)
                                k = n->indirect ? mark_chunk_list(p, snap, &n->content[j].id)
                                                : mark_live(p, &n->content[j].id, 0, NULL);
        }
        return k;
}

/* What a namespace of the backend lists, as ids (names that are not ids
 * are not objects of ours) with sizes, sorted by id. */
typedef struct Listed {
        LbId id;
        uint64_t size;
} Listed;

typedef struct ListedIds {
        Listed *v;
        size_t n;
} ListedIds;

static int collect_id(const char *name, uint64_t size, void *ud) {
        ListedIds *l = ud;
        LbId id;
        if (strlen(name) != 2 * LB_ID_SIZE || lb_id_from_hex(name, &id) < 0)
                return 0;
        Listed *v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        l->v = v;
        l->v[l->n++] = (Listed) { .id = id, .size = size };
        return 0;
}

static int id_cmp(const void *a, const void *b);

static int list_ids(Prune *p, LbObjType t, ListedIds *ret) {
        ListedIds l = {};
        int k = p->r->be->list(p->r->be, t, collect_id, &l);
        if (k < 0) {
                free(l.v);
                return fail(p, k, "list %s: %s", lb_obj_type_dir(t), strerror(-k));
        }
        lb_qsort(l.v, l.n, sizeof *l.v, id_cmp);
        *ret = l;
        return 0;
}

static int id_cmp(const void *a, const void *b) {
        return lb_id_cmp(a, b);
}

/* Marks every snapshot; in phase 2 only those phase 1 did not see. */
static int mark_snapshots(Prune *p) {
        /* Every snapshot file, so one that does not load stops prune
         * rather than letting it delete that snapshot's data. */
        ListedIds listed;
        int k = list_ids(p, LB_OBJ_SNAPSHOT, &listed);
        if (k < 0)
                return k;
        LbId *ids = calloc(listed.n + 1, sizeof *ids);
        size_t n_ids = 0;
        for (size_t i = 0; ids && i < listed.n; i++)
                ids[n_ids++] = listed.v[i].id;
        free(listed.v);
        if (!ids)
                return -ENOMEM;
        if (p->o->dry_run && p->o->n_ignore_snapshots > 0) {
                size_t m = 0;
                for (size_t i = 0; i < n_ids; i++) {
                        bool ignored = false;
                        for (size_t j = 0; j < p->o->n_ignore_snapshots; j++)
                                ignored |= lb_id_cmp(&ids[i], &p->o->ignore_snapshots[j]) == 0;
                        if (!ignored)
                                ids[m++] = ids[i];
                }
                n_ids = m;
        }
        size_t todo = 0;
        for (size_t i = 0; i < n_ids; i++)
                if (!lb_bsearch(&ids[i], p->snaps, p->n_snaps, sizeof *p->snaps, id_cmp))
                        todo++;
        info(p, "marking the blobs of %zu snapshot%s", todo, todo == 1 ? "" : "s");
        for (size_t i = 0; i < n_ids && k >= 0; i++) {
                if (lb_bsearch(&ids[i], p->snaps, p->n_snaps, sizeof *p->snaps, id_cmp))
                        continue;
                LbSnapshot *s = NULL;
                k = lb_repo_snapshot_load(p->r, &ids[i], &s);
                if (k == -ENOENT) {
                        k = 0; /* forgotten meanwhile */
                        continue;
                }
                if (k < 0) {
                        char h[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&ids[i], h);
                        k = fail(p, k, "snapshot file %s cannot be read (%s); nothing was deleted: run 'longbox "
                                 "check', and 'longbox forget %.8s' if it is beyond repair", h, strerror(-k), h);
                        break;
                }
                k = mark_tree(p, &s->id, &s->tree);
                lb_snapshot_free(s);
                p->res.snapshots++;
        }
        if (k >= 0) {
                free(p->snaps);
                p->snaps = LB_TAKE_PTR(ids);
                p->n_snaps = n_ids;
        }
        free(ids);
        return k < 0 ? k : 0;
}

/* ---- accounting ---- */

static int read_index_file(Prune *p, const LbId *id, LbIndexPack **ret, size_t *ret_n) {
        int k = lb_repo_read_index_file(p->r, id, ret, ret_n);
        if (k < 0) {
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(id, hex);
                return fail(p, k, "read index file %s: %s; nothing was deleted: run 'longbox check'", hex,
                            strerror(-k));
        }
        return 0;
}

static int account_pack(Prune *p, uint32_t file, const LbIndexPack *ip) {
        PackInfo *pi;
        int k = pack_add(p, &ip->pack_id, ip->pack_size, &pi);
        if (k < 0)
                return k;
        uint32_t *f = realloc(pi->files, (pi->n_files + 1) * sizeof *f);
        if (!f)
                return -ENOMEM;
        pi->files = f;
        pi->files[pi->n_files++] = file;
        if (pi->accounted)
                return 0; /* listed by another index file too */
        pi->accounted = true;
        uint32_t ord = pack_ordinal(p, pi);
        for (size_t i = 0; i < ip->n; i++) {
                const LbPackEntry *e = &ip->entries[i];
                uint32_t v;
                pi->blobs++;
                k = lb_markset_get(p->mark, &e->id, &v);
                if (k == -ENOENT || (k == 0 && (v & MARK_OWNED))) {
                        /* Unused, or a second copy of a blob another pack holds. */
                        pi->dead_bytes += e->stored_len;
                        continue;
                }
                if (k < 0)
                        return k;
                k = lb_markset_put(p->mark, &e->id, (v & MARK_FLAGS) | MARK_OWNED | (ord << MARK_OWNER_SHIFT));
                if (k < 0)
                        return k;
                pi->live_blobs++;
                pi->live_bytes += e->stored_len;
        }
        p->res.blobs += pi->blobs;
        p->res.blobs_live += pi->live_blobs;
        return 0;
}

static int account(Prune *p) {
        ListedIds listed;
        int k = list_ids(p, LB_OBJ_INDEX, &listed);
        if (k < 0)
                return k;
        p->files = calloc(listed.n + 1, sizeof *p->files);
        for (size_t i = 0; p->files && i < listed.n; i++)
                p->files[p->n_files++] = (IndexFileInfo) { .id = listed.v[i].id };
        free(listed.v);
        if (!p->files)
                return -ENOMEM;
        info(p, "reading %zu index file%s", p->n_files, p->n_files == 1 ? "" : "s");
        for (size_t f = 0; f < p->n_files; f++) {
                LbIndexPack *packs;
                size_t n;
                k = read_index_file(p, &p->files[f].id, &packs, &n);
                if (k < 0)
                        return k;
                for (size_t i = 0; i < n && k >= 0; i++)
                        k = account_pack(p, (uint32_t) f, &packs[i]);
                lb_index_packs_free(packs, n);
                if (k < 0)
                        return fail(p, k, "account packs: %s", strerror(-k));
        }
        return 0;
}

struct unowned {
        Prune *p;
        uint64_t n;
        LbId first;
};

static int find_unowned(const LbId *id, uint32_t v, void *ud) {
        struct unowned *u = ud;
        if ((v & MARK_LIVE) && !(v & MARK_OWNED)) {
                if (u->n == 0)
                        u->first = *id;
                u->n++;
        }
        return 0;
}

/* Every blob a snapshot uses must be in some index file, or prune would
 * not know which pack holds it and could delete it. */
static int check_all_owned(Prune *p) {
        struct unowned u = { .p = p };
        int k = lb_markset_foreach(p->mark, find_unowned, &u);
        if (k < 0)
                return fail(p, k, "scan the mark set: %s", strerror(-k));
        if (u.n > 0) {
                char h[2 * LB_ID_SIZE + 1];
                lb_id_hex(&u.first, h);
                return fail(p, -EBADMSG, "%" PRIu64 " blob%s that snapshots use (first %s) %s in no index file; "
                            "nothing was deleted: run 'longbox check' and 'longbox index rebuild --from-packs'",
                            u.n, u.n == 1 ? "" : "s", h, u.n == 1 ? "is" : "are");
        }
        return 0;
}

/* Decides each pack's fate from the counts. */
static int plan(Prune *p) {
        ListedIds listed;
        int k = list_ids(p, LB_OBJ_PACK, &listed);
        if (k < 0)
                return k;
        for (size_t i = 0; i < listed.n; i++) {
                PackInfo *pi = pack_find(p, &listed.v[i].id);
                if (pi)
                        pi->in_backend = true;
        }
        free(listed.v);
        for (size_t i = 0; i < p->n_packs; i++) {
                PackInfo *pi = &p->packs[i];
                p->res.packs++;
                p->res.bytes += pi->size;
                if (!pi->in_backend && pi->live_blobs > 0) {
                        char h[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&pi->id, h);
                        return fail(p, -EBADMSG, "pack %s holds %" PRIu32 " blob%s that snapshots use but is "
                                    "missing; nothing was deleted: run 'longbox check'", h, pi->live_blobs,
                                    pi->live_blobs == 1 ? "" : "s");
                }
                if (pi->live_blobs == 0)
                        pi->action = PACK_DELETE;
                else if (pi->dead_bytes * 100 > (uint64_t) p->o->max_unused_percent * pi->size)
                        pi->action = PACK_REPACK;
        }
        return 0;
}

/* ---- repack ---- */

typedef struct Repack {
        Prune *p;
        LbPackWriter *pw;
        LbIndexPack *done;       /* packs written, not yet in an index file */
        size_t n_done, entries;
        uint64_t read_done, read_total;  /* bytes of the packs to repack, for progress */
        uint64_t packs_done, packs_total;
} Repack;

/* Progress: bytes read of the packs before pi, plus at of pi's. */
static void repack_progress(Repack *rp, const char *hex, uint64_t at) {
        if (rp->p->o->progress)
                rp->p->o->progress(rp->p->o->userdata, rp->read_done + at, rp->read_total, rp->packs_done,
                                   rp->packs_total, hex);
}

static int repack_flush_index(Repack *rp) {
        if (rp->n_done == 0)
                return 0;
        LbId file;
        int k = lb_repo_write_index_file(rp->p->r, rp->done, rp->n_done, &file);
        if (k < 0)
                return fail(rp->p, k, "write an index file: %s", strerror(-k));
        rp->p->res.index_files_written++;
        crash_point("repack-index");
        /* The copies are now where lookups find them. */
        k = lb_index_add_full(rp->p->r->index, &file, rp->done, rp->n_done, true);
        if (k < 0)
                return fail(rp->p, k, "update the local index: %s", strerror(-k));
        lb_index_packs_free(rp->done, rp->n_done);
        rp->done = NULL;
        rp->n_done = rp->entries = 0;
        return 0;
}

static int repack_flush_pack(Repack *rp) {
        if (!rp->pw || lb_pack_writer_count(rp->pw) == 0)
                return 0;
        _cleanup_buf_ LbBuf bytes = {};
        LbIndexPack ip = {};
        int k = lb_pack_writer_finish(rp->pw, &bytes, &ip.entries, &ip.n);
        rp->pw = lb_pack_writer_free(rp->pw);
        if (k < 0)
                return fail(rp->p, k, "build a pack: %s", strerror(-k));
        ip.pack_size = bytes.len;
        k = lb_repo_put_object(rp->p->r, LB_OBJ_PACK, bytes.data, bytes.len, &ip.pack_id);
        if (k < 0) {
                free(ip.entries);
                return fail(rp->p, k, "write a pack: %s", strerror(-k));
        }
        crash_point("repack-pack");
        LbIndexPack *v = realloc(rp->done, (rp->n_done + 1) * sizeof *v);
        if (!v) {
                free(ip.entries);
                return -ENOMEM;
        }
        rp->done = v;
        rp->done[rp->n_done++] = ip;
        rp->entries += ip.n;
        rp->p->res.packs_written++;
        rp->p->res.bytes_written += ip.pack_size;
        if (rp->n_done >= REWRITE_PACKS_MAX || rp->entries >= REWRITE_ENTRIES_MAX)
                return repack_flush_index(rp);
        return 0;
}

/* Copies the blobs of pi that the mark set says it owns into new packs.
 * The sealed bytes move as they are (their AD does not name the pack),
 * each verified first. A pack that cannot be read whole is kept. */
static int repack_one(Repack *rp, PackInfo *pi) {
        Prune *p = rp->p;
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&pi->id, hex);
        repack_progress(rp, hex, 0);
        _cleanup_buf_ LbBuf pack = {}, plain = {};
        int k = p->r->be->get(p->r->be, LB_OBJ_PACK, hex, 0, SIZE_MAX, &pack);
        LbPackEntry *entries = NULL;
        size_t n = 0;
        if (k == 0) {
                LbId actual;
                lb_object_id(pack.data, pack.len, &actual);
                k = lb_id_cmp(&actual, &pi->id) == 0 ? 0 : -EBADMSG;
        }
        if (k == 0)
                k = lb_pack_parse(&p->r->keys, pack.data, pack.len, &entries, &n);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                goto damaged;
        uint32_t ord = pack_ordinal(p, pi);
        for (size_t i = 0; i < n; i++) {
                uint32_t v;
                k = lb_markset_get(p->mark, &entries[i].id, &v);
                if (k == -ENOENT || (k == 0 && (!(v & MARK_OWNED) || (v >> MARK_OWNER_SHIFT) != ord)))
                        continue;
                if (k < 0)
                        goto done;
                const uint8_t *stored = pack.data + entries[i].offset;
                k = lb_blob_decode(&p->r->keys, &entries[i], stored, entries[i].stored_len, &plain);
                if (k == -ENOMEM)
                        goto done;
                if (k < 0)
                        goto damaged;
                if (!rp->pw) {
                        k = lb_pack_writer_new(&p->r->keys, &rp->pw);
                        if (k < 0)
                                goto done;
                }
                k = lb_pack_writer_add(rp->pw, &entries[i], stored, entries[i].stored_len);
                if (k < 0)
                        goto done;
                if (lb_pack_writer_size(rp->pw) >= p->r->cfg.pack_target) {
                        k = repack_flush_pack(rp);
                        if (k < 0)
                                goto done;
                }
                repack_progress(rp, hex, LB_MIN(entries[i].offset + entries[i].stored_len, pi->size));
        }
        pi->copied = true;
        k = 0;
        goto done;
damaged:
        /* Its live blobs stay where they are; check tells the user more. */
        info(p, "pack %s cannot be read whole (%s): kept", hex, strerror(-k));
        p->res.packs_damaged++;
        k = 0;
done:
        free(entries);
        return k;
}

static int repack(Prune *p) {
        size_t todo = 0;
        uint64_t bytes = 0, read_total = 0;
        for (size_t i = 0; i < p->n_packs; i++)
                if (p->packs[i].action == PACK_REPACK) {
                        todo++;
                        bytes += p->packs[i].live_bytes;
                        read_total += p->packs[i].size;
                }
        if (todo == 0)
                return 0;
        info(p, "repacking %zu pack%s (%.1f MiB of live blobs)", todo, todo == 1 ? "" : "s",
             (double) bytes / (1 << 20));
        Repack rp = { .p = p, .read_total = read_total, .packs_total = todo };
        int k = 0;
        for (size_t i = 0; i < p->n_packs && k >= 0; i++)
                if (p->packs[i].action == PACK_REPACK) {
                        k = repack_one(&rp, &p->packs[i]);
                        rp.read_done += p->packs[i].size;
                        rp.packs_done++;
                        if (k >= 0) {
                                char hex[2 * LB_ID_SIZE + 1];
                                lb_id_hex(&p->packs[i].id, hex);
                                repack_progress(&rp, hex, 0);
                        }
                }
        if (k >= 0)
                k = repack_flush_pack(&rp);
        if (k >= 0)
                k = repack_flush_index(&rp);
        lb_pack_writer_free(rp.pw);
        lb_index_packs_free(rp.done, rp.n_done);
        return k;
}

/* ---- phase 2 ---- */

/* A blob phase 1 found dead and a snapshot written since uses: the pack
 * the index has it in stays. */
static int keep_busy_packs(Prune *p) {
        for (size_t i = 0; i < p->n_fresh; i++) {
                LbBlobLoc l;
                int k = lb_repo_lookup(p->r, &p->fresh[i], &l);
                if (k < 0) {
                        char h[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&p->fresh[i], h);
                        return fail(p, k == -ENOENT ? -EBADMSG : k, "a new snapshot uses blob %s, which is not in "
                                    "the index; nothing was deleted: run 'longbox check'", h);
                }
                PackInfo *pi = pack_find(p, &l.pack);
                if (pi && pack_goes(pi)) {
                        pi->action = PACK_KEEP;
                        pi->copied = false;
                        p->res.packs_busy++;
                }
        }
        return 0;
}

/* The new index files: every pack the affected files list that stays and
 * that no unaffected file lists. Also moves the index entry of any live
 * blob that points into a pack going away (a second copy, the one the
 * mark did not choose) to the copy that stays. */
typedef struct Rewrite {
        Prune *p;
        LbIndexPack *keep;
        size_t n_keep, entries;
        LbId *written;
        size_t n_written;
} Rewrite;

static int rewrite_flush(Rewrite *w) {
        if (w->n_keep == 0)
                return 0;
        LbId file;
        int k = lb_repo_write_index_file(w->p->r, w->keep, w->n_keep, &file);
        if (k < 0)
                return fail(w->p, k, "write an index file: %s", strerror(-k));
        LbId *v = realloc(w->written, (w->n_written + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        w->written = v;
        w->written[w->n_written++] = file;
        /* Its packs are in the local index already (merged from the files
         * it replaces). */
        k = lb_index_add_file(w->p->r->index, &file);
        if (k < 0)
                return fail(w->p, k, "update the local index: %s", strerror(-k));
        w->p->res.index_files_written++;
        lb_index_packs_free(w->keep, w->n_keep);
        w->keep = NULL;
        w->n_keep = w->entries = 0;
        return 0;
}

static bool listed_elsewhere(Prune *p, const PackInfo *pi) {
        for (uint32_t i = 0; i < pi->n_files; i++)
                if (!p->files[pi->files[i]].affected)
                        return true;
        return false;
}

/* Entries of going packs whose blob is live and owned elsewhere, and that
 * the local index locates in the going pack: point them at the owner. */
static int relocate_second_copies(Prune *p, const PackInfo *pi, const LbIndexPack *ip) {
        uint32_t ord = pack_ordinal(p, pi);
        for (size_t i = 0; i < ip->n; i++) {
                uint32_t v;
                int k = lb_markset_get(p->mark, &ip->entries[i].id, &v);
                if (k == -ENOENT)
                        continue;
                if (k < 0)
                        return k;
                if (!(v & MARK_OWNED) || (v >> MARK_OWNER_SHIFT) == ord)
                        continue; /* new in phase 2 (its pack stays), or copied by repack */
                LbBlobLoc l;
                k = lb_repo_lookup(p->r, &ip->entries[i].id, &l);
                if (k < 0 && k != -ENOENT)
                        return k;
                if (k == 0 && lb_id_cmp(&l.pack, &pi->id) != 0)
                        continue;
                /* Read the owner's table of contents for the location. */
                const PackInfo *owner = &p->packs[v >> MARK_OWNER_SHIFT];
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&owner->id, hex);
                LbIndexPack op = { .pack_id = owner->id, .pack_size = owner->size };
                k = lb_repo_read_pack_toc(p->r, hex, owner->size, &op.entries, &op.n);
                if (k < 0)
                        return fail(p, k, "read the table of contents of pack %s: %s", hex, strerror(-k));
                LbIndexPack one = op;
                one.n = 0;
                for (size_t j = 0; j < op.n; j++)
                        if (lb_id_cmp(&op.entries[j].id, &ip->entries[i].id) == 0) {
                                one.entries = &op.entries[j];
                                one.n = 1;
                        }
                k = one.n ? lb_index_relocate(p->r->index, &one) : -EBADMSG;
                free(op.entries);
                if (k < 0)
                        return fail(p, k, "move a blob's index entry to pack %s: %s", hex, strerror(-k));
        }
        return 0;
}

static int rewrite_index(Prune *p, Rewrite *w) {
        for (size_t i = 0; i < p->n_packs; i++)
                if (pack_goes(&p->packs[i]))
                        for (uint32_t j = 0; j < p->packs[i].n_files; j++)
                                p->files[p->packs[i].files[j]].affected = true;
        for (size_t f = 0; f < p->n_files; f++) {
                if (!p->files[f].affected)
                        continue;
                LbIndexPack *packs;
                size_t n;
                int k = read_index_file(p, &p->files[f].id, &packs, &n);
                if (k < 0)
                        return k;
                for (size_t i = 0; i < n && k >= 0; i++) {
                        PackInfo *pi = pack_find(p, &packs[i].pack_id);
                        if (!pi)
                                continue; /* cannot happen: phase 1 read this file */
                        if (pack_goes(pi)) {
                                k = relocate_second_copies(p, pi, &packs[i]);
                                continue;
                        }
                        if (listed_elsewhere(p, pi))
                                continue;
                        /* Listed by affected files only: once, in a new
                         * file, when the first of them is read. */
                        if (pi->files[0] != f)
                                continue;
                        LbIndexPack *v = realloc(w->keep, (w->n_keep + 1) * sizeof *v);
                        if (!v) {
                                k = -ENOMEM;
                                break;
                        }
                        w->keep = v;
                        w->keep[w->n_keep++] = packs[i];
                        w->entries += packs[i].n;
                        packs[i] = (LbIndexPack) {};
                        if (w->n_keep >= REWRITE_PACKS_MAX || w->entries >= REWRITE_ENTRIES_MAX)
                                k = rewrite_flush(w);
                }
                lb_index_packs_free(packs, n);
                if (k < 0)
                        return k;
        }
        return rewrite_flush(w);
}

static int remove_object(Prune *p, LbObjType t, const LbId *id) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(id, hex);
        int k = p->r->be->remove(p->r->be, t, hex);
        if (k < 0 && k != -ENOENT)
                return fail(p, k, "remove %s %s: %s", lb_obj_type_dir(t), hex, strerror(-k));
        return 0;
}

static int phase2(Prune *p) {
        LbRepo *r = p->r;
        int k = lb_repo_unlock(r);
        if (k < 0)
                return fail(p, k, "release the shared lock: %s", strerror(-k));
        info(p, "waiting for the exclusive lock (backups wait for prune from here on)");
        k = lb_repo_lock(r, true, p->o->lock_wait_ns);
        if (k < 0)
                return k; /* the caller names the holder */
        int64_t t0 = lb_mono_ns();
        crash_point("exclusive");
        k = lb_repo_index_update(r);
        if (k < 0)
                return fail(p, k, "update the local index: %s", strerror(-k));
        p->phase2 = true;
        k = mark_snapshots(p);
        if (k < 0)
                return k;
        k = keep_busy_packs(p);
        if (k < 0)
                return k;

        Rewrite w = { .p = p };
        k = rewrite_index(p, &w);
        lb_index_packs_free(w.keep, w.n_keep);
        free(w.written);
        if (k < 0)
                return k;
        crash_point("index-written");

        /* The local index first, then the repository: a crash in between
         * leaves old index files the next open merges again (harmless). */
        _cleanup_free_ LbId *gone = NULL, *old = NULL;
        size_t n_gone = 0, n_old = 0;
        gone = calloc(p->n_packs + 1, sizeof *gone);
        old = calloc(p->n_files + 1, sizeof *old);
        if (!gone || !old)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_packs; i++)
                if (pack_goes(&p->packs[i]))
                        gone[n_gone++] = p->packs[i].id;
        for (size_t f = 0; f < p->n_files; f++)
                if (p->files[f].affected)
                        old[n_old++] = p->files[f].id;
        k = lb_index_forget(r->index, gone, n_gone, old, n_old);
        if (k < 0)
                return fail(p, k, "update the local index: %s", strerror(-k));
        crash_point("local-index");

        for (size_t i = 0; i < n_old && k >= 0; i++) {
                k = remove_object(p, LB_OBJ_INDEX, &old[i]);
                p->res.index_files_removed++;
                crash_point("index-removed");
        }
        if (n_gone)
                info(p, "removing %zu pack%s", n_gone, n_gone == 1 ? "" : "s");
        for (size_t i = 0; i < p->n_packs && k >= 0; i++) {
                PackInfo *pi = &p->packs[i];
                if (!pack_goes(pi))
                        continue;
                if (pi->in_backend)
                        k = remove_object(p, LB_OBJ_PACK, &pi->id);
                if (pi->action == PACK_DELETE)
                        p->res.packs_deleted++;
                else
                        p->res.packs_repacked++;
                p->res.bytes_deleted += pi->in_backend ? pi->size : 0;
                crash_point("pack-removed");
        }
        if (k < 0)
                return k;

        /* Under the exclusive lock no backup is between writing a pack and
         * its index file: a pack no index file lists is a leftover of a
         * crash, and no snapshot needs it (the mark found every blob they
         * use in an index file). */
        ListedIds listed;
        k = list_ids(p, LB_OBJ_PACK, &listed);
        for (size_t i = 0; i < listed.n && k >= 0; i++) {
                k = lb_index_has_pack(r->index, &listed.v[i].id);
                if (k != 0)
                        continue; /* indexed (1), or an error that ends the loop */
                k = remove_object(p, LB_OBJ_PACK, &listed.v[i].id);
                p->res.packs_unindexed++;
                p->res.bytes_deleted += listed.v[i].size;
                crash_point("leftover-removed");
        }
        free(listed.v);
        if (k < 0)
                return fail(p, k, "remove leftover packs: %s", strerror(-k));
        if (r->be->remove_temporaries) {
                unsigned n = 0;
                k = r->be->remove_temporaries(r->be, &n);
                if (k < 0)
                        return fail(p, k, "remove temporary files: %s", strerror(-k));
                p->res.temporaries_removed = n;
        }
        p->res.exclusive_ns = lb_mono_ns() - t0;
        return 0;
}

/* ---- the whole run ---- */

static void prune_done(Prune *p) {
        lb_markset_free(p->mark);
        for (size_t i = 0; i < p->n_packs; i++)
                free(p->packs[i].files);
        free(p->packs);
        free(p->slots);
        free(p->files);
        free(p->snaps);
        free(p->fresh);
}

int lb_prune_run(LbRepo *r, const LbPruneOptions *o, LbPruneResult *ret, char **ret_error) {
        if (!r->index)
                return -EINVAL;
        Prune p = { .r = r, .o = o };
        int64_t t0 = lb_mono_ns();
        /* Sized for every indexed blob: the live ones are among them. */
        uint64_t blobs = 0, stored = 0;
        int k = lb_index_totals(r->index, &blobs, &stored);
        if (k == 0)
                k = lb_markset_open(r->index_dir, blobs, &p.mark);
        if (k < 0) {
                fail(&p, k, "create the mark set in %s: %s", r->index_dir, strerror(-k));
                goto done;
        }
        k = mark_snapshots(&p);
        if (k < 0)
                goto done;
        p.res.mark_ns = lb_mono_ns() - t0;
        k = account(&p);
        if (k == 0)
                k = check_all_owned(&p);
        if (k == 0)
                k = plan(&p);
        if (k < 0)
                goto done;
        crash_point("marked");
        if (o->dry_run) {
                for (size_t i = 0; i < p.n_packs; i++) {
                        PackInfo *pi = &p.packs[i];
                        if (pi->action == PACK_DELETE)
                                p.res.packs_deleted++;
                        else if (pi->action == PACK_REPACK)
                                p.res.packs_repacked++;
                        if (pi->action != PACK_KEEP)
                                p.res.bytes_deleted += pi->size;
                }
                goto done;
        }
        int64_t t1 = lb_mono_ns();
        k = repack(&p);
        if (k < 0)
                goto done;
        p.res.repack_ns = lb_mono_ns() - t1;
        k = phase2(&p);
done:
        p.res.total_ns = lb_mono_ns() - t0;
        if (k >= 0)
                *ret = p.res;
        if (ret_error)
                *ret_error = LB_TAKE_PTR(p.error);
        free(p.error);
        prune_done(&p);
        return k < 0 ? k : 0;
}
