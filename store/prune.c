/* SPDX-License-Identifier: MIT */
#include "store/prune.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
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
/* Mark set lookups of a list of ids start this many ids ahead. */
#define PREFETCH 8
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
        uint32_t second_copies;   /* live blobs it holds that another pack owns */
        uint32_t deltas;          /* its codec-2 entries; their bases are numbers */
        uint32_t first_base;      /* first_base .. first_base + deltas - 1 */
        uint32_t dead_deltas;     /* codec-2 entries that are dead (pass B) */
        uint64_t live_bytes, dead_bytes;   /* stored bytes of its entries */
        PackAction action;
        bool in_backend;
        bool copied;          /* repack wrote its live blobs elsewhere */
        uint32_t *files;      /* ordinals of the index files listing it */
        uint32_t n_files;
} PackInfo;

typedef struct IndexFileInfo {
        LbId id;
        bool affected;        /* lists a pack being deleted: rewritten */
} IndexFileInfo;

/* ---- work ahead on the second core ---- */

/* A worker thread that runs fn on the jobs the main thread submits, in
 * order and at most AHEAD_DEPTH ahead; the main thread takes the results
 * back in the same order. Reading and decoding (index files, chunk lists)
 * then overlaps the main thread's work on the mark set, which only the
 * main thread touches. */
#define AHEAD_DEPTH 8

typedef struct Ahead {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        void (*fn)(void *job, void *ud);
        void *ud;
        uint8_t *jobs;           /* AHEAD_DEPTH jobs of job_size bytes */
        size_t job_size;
        uint64_t head, submitted, done;
        bool stop, started;
        pthread_t thread;
} Ahead;

static void *ahead_main(void *ud) {
        Ahead *a = ud;
        pthread_mutex_lock(&a->lock);
        for (;;) {
                while (a->done == a->submitted && !a->stop)
                        pthread_cond_wait(&a->cond, &a->lock);
                if (a->stop)
                        break;
                void *job = a->jobs + (a->done % AHEAD_DEPTH) * a->job_size;
                pthread_mutex_unlock(&a->lock);
                a->fn(job, a->ud);
                pthread_mutex_lock(&a->lock);
                a->done++;
                pthread_cond_broadcast(&a->cond);
        }
        pthread_mutex_unlock(&a->lock);
        return NULL;
}

static int ahead_start(Ahead *a, size_t job_size, void (*fn)(void *job, void *ud), void *ud) {
        *a = (Ahead) { .fn = fn, .ud = ud, .job_size = job_size };
        a->jobs = calloc(AHEAD_DEPTH, job_size);
        if (!a->jobs)
                return -ENOMEM;
        pthread_mutex_init(&a->lock, NULL);
        pthread_cond_init(&a->cond, NULL);
        int k = -pthread_create(&a->thread, NULL, ahead_main, a);
        if (k < 0) {
                pthread_cond_destroy(&a->cond);
                pthread_mutex_destroy(&a->lock);
                free(a->jobs);
                a->jobs = NULL;
                return k;
        }
        a->started = true;
        return 0;
}

/* The slot to fill for the next job, or NULL when AHEAD_DEPTH are out. */
static void *ahead_slot(Ahead *a) {
        if (a->submitted - a->head == AHEAD_DEPTH)
                return NULL;
        return a->jobs + (a->submitted % AHEAD_DEPTH) * a->job_size;
}

static void ahead_submit(Ahead *a) {
        pthread_mutex_lock(&a->lock);
        a->submitted++;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
}

/* The oldest job, done, or NULL when none is out; ahead_release frees it. */
static void *ahead_take(Ahead *a) {
        if (a->head == a->submitted)
                return NULL;
        pthread_mutex_lock(&a->lock);
        while (a->done == a->head)
                pthread_cond_wait(&a->cond, &a->lock);
        pthread_mutex_unlock(&a->lock);
        return a->jobs + (a->head % AHEAD_DEPTH) * a->job_size;
}

static void ahead_release(Ahead *a) {
        a->head++;
}

/* Stops the worker; drop(job) frees what the jobs still out hold (done
 * or not: a job not run is as the main thread filled it). */
static void ahead_stop(Ahead *a, void (*drop)(void *job)) {
        if (!a->started)
                return;
        pthread_mutex_lock(&a->lock);
        a->stop = true;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
        for (; a->head < a->submitted; a->head++)
                drop(a->jobs + (a->head % AHEAD_DEPTH) * a->job_size);
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
        free(a->jobs);
        a->jobs = NULL;
        a->started = false;
}

/* A tree or chunk list that an index file lists: mark reads them at these
 * locations, so phase 1 never searches the local index (a lookup faults
 * in pages all over it). */
typedef struct MetaBlob {
        LbPackEntry e;
        uint32_t pack;        /* ordinal in Prune.packs */
} MetaBlob;

/* Pass A copies every index entry here (an unlinked temporary file next
 * to the mark set), grouped by pack in the order of Prune.packs: pass B
 * reads it back instead of opening and decoding every index file again,
 * and the repack takes the entries of the blobs it copies from it. The
 * stored length is not kept: it is lb_pad_length(payload_len) +
 * LB_SEAL_OVERHEAD by construction (docs/design.md "Packs"). The base
 * ids of deltas (codec 2) go to a second temporary file, in pass A order;
 * a delta's record names its base by number there. */
typedef struct SpillRec {
        uint8_t id[LB_ID_SIZE];
        uint32_t pack;           /* ordinal in Prune.packs */
        uint32_t offset;         /* packs are smaller than 4 GiB */
        uint32_t base;           /* codec 2: number of its base id; else 0 */
        uint32_t payload_len, raw_len;
        uint8_t type, codec, reserved[2];
} SpillRec;
_Static_assert(sizeof(SpillRec) == 56, "spill record");
#define SPILL_BUF 16384          /* records: 896 KiB */
#define BASE_BUF 4096            /* base ids: 128 KiB */

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

        MetaBlob *meta;       /* trees and chunk lists of the index files, sorted */
        size_t n_meta, cap_meta;

        int spill_fd;         /* -1 when none */
        SpillRec *spill;      /* SPILL_BUF records */
        size_t n_spill;       /* buffered, not yet written */
        uint64_t n_recs;      /* records written */
        uint8_t *owned;       /* bit per record: the blob is owned there (pass B) */

        int base_fd;          /* the base ids of deltas; -1 when pass A met none */
        LbId *base_buf;       /* BASE_BUF ids, not yet written */
        size_t n_base_buf;
        uint32_t n_bases;     /* written (numbered) */
        const LbId *bases;    /* after pass A: the file, mapped (n_bases ids) */
        uint32_t *kept;       /* phase 2: packs kept whole whose deltas' bases stay */
        size_t n_kept;
        LbId *own_files;      /* index files the repack wrote */
        size_t n_own_files;

        Ahead lists;          /* reads chunk lists while the mark runs */
        LbBuf repack_buf;     /* the repack worker's, for a whole pack */
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

static int meta_cmp(const void *a, const void *b) {
        return lb_id_cmp(&((const MetaBlob *) a)->e.id, &((const MetaBlob *) b)->e.id);
}

/* Reads a tree or chunk list where an index file of phase 1 says it is;
 * a blob they do not list (a snapshot written since), or a copy that
 * cannot be read there, through the local index. */
static int read_meta_blob(Prune *p, const LbId *id, LbBuf *out) {
        const MetaBlob key = { .e.id = *id };
        const MetaBlob *m = lb_bsearch(&key, p->meta, p->n_meta, sizeof *p->meta, meta_cmp);
        if (m) {
                LbBlobLoc l = { .pack = p->packs[m->pack].id, .e = m->e };
                int k = lb_repo_read_blob_at(p->r, &l, out);
                if (k >= 0 || k == -ENOMEM)
                        return k;
                int k2 = lb_repo_read_blob(p->r, id, out);
                return k2 == -ENOENT ? k : k2;
        }
        return lb_repo_read_blob(p->r, id, out);
}

static int mark_tree(Prune *p, const LbId *snap, const LbId *tree);

/* A chunk list read and decoded by the worker. */
typedef struct ListJob {
        LbId id;
        LbContentRef *refs;
        size_t n;
        int error;
} ListJob;

static void list_job_run(void *job, void *ud) {
        ListJob *j = job;
        _cleanup_buf_ LbBuf b = {};
        j->refs = NULL;
        j->n = 0;
        j->error = read_meta_blob(ud, &j->id, &b);
        if (j->error == 0)
                j->error = lb_chunklist_decode(b.data, b.len, &j->refs, &j->n);
}

static void list_job_drop(void *job) {
        ListJob *j = job;
        free(j->refs);
        j->refs = NULL;
}

static int mark_list_done(Prune *p, const LbId *snap, ListJob *j) {
        int k = j->error;
        if (k < 0) {
                char hs[2 * LB_ID_SIZE + 1], hl[2 * LB_ID_SIZE + 1];
                lb_id_hex(snap, hs);
                lb_id_hex(&j->id, hl);
                return fail(p, k == -ENOENT ? -EBADMSG : k, "snapshot %.8s: chunk list %s cannot be read: %s; "
                            "nothing was deleted: run 'longbox check'", hs, hl, k == -ENOENT ? "not in the index" : strerror(-k));
        }
        for (size_t i = 0; i < j->n && k >= 0; i++) {
                if (i + PREFETCH < j->n)
                        lb_markset_prefetch(p->mark, &j->refs[i + PREFETCH].id);
                k = mark_live(p, &j->refs[i].id, 0, NULL);
        }
        return k;
}

/* Marks a long file's chunk lists and their chunks: the worker reads and
 * decodes the lists ahead while this thread marks. A list already walked
 * (by another snapshot) is not read again. */
static int mark_chunk_lists(Prune *p, const LbId *snap, const LbContentRef *lists, size_t n) {
        size_t next = 0;
        int k = 0;
        for (;;) {
                ListJob *j;
                while (k >= 0 && next < n && (j = ahead_slot(&p->lists))) {
                        uint32_t old;
                        k = mark_live(p, &lists[next].id, MARK_LIST_WALKED, &old);
                        if (k >= 0 && !(old & MARK_LIST_WALKED)) {
                                *j = (ListJob) { .id = lists[next].id };
                                ahead_submit(&p->lists);
                        }
                        next++;
                }
                if (k < 0 || !(j = ahead_take(&p->lists)))
                        break;
                k = mark_list_done(p, snap, j);
                list_job_drop(j);
                ahead_release(&p->lists);
        }
        /* On an error, what is still out is dropped when the worker stops. */
        return k;
}

static int mark_tree(Prune *p, const LbId *snap, const LbId *tree) {
        uint32_t old;
        int k = mark_live(p, tree, MARK_TREE_WALKED, &old);
        if (k < 0 || (old & MARK_TREE_WALKED))
                return k;
        _cleanup_tree_ LbTree *t = NULL;
        {
                _cleanup_buf_ LbBuf b = {};
                k = read_meta_blob(p, tree, &b);
                if (k >= 0)
                        k = lb_tree_decode(b.data, b.len, &t);
        }
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
                else if (n->type == LB_NODE_FILE && n->indirect)
                        k = mark_chunk_lists(p, snap, n->content, n->n_content);
                else if (n->type == LB_NODE_FILE)
                        for (size_t j = 0; j < n->n_content && k >= 0; j++)
                                k = mark_live(p, &n->content[j].id, 0, NULL);
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

/* Marks every snapshot of listed (listing them if NULL); in phase 2 only
 * those phase 1 did not see. Frees the listing. */
static int mark_snapshots(Prune *p, ListedIds *given) {
        /* Every snapshot file, so one that does not load stops prune
         * rather than letting it delete that snapshot's data. */
        ListedIds listed = {};
        int k = 0;
        if (given)
                listed = *given;
        else
                k = list_ids(p, LB_OBJ_SNAPSHOT, &listed);
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
        k = todo ? ahead_start(&p->lists, sizeof(ListJob), list_job_run, p) : 0;
        if (k < 0)
                k = fail(p, k, "start a thread: %s", strerror(-k));
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
        ahead_stop(&p->lists, list_job_drop);
        if (k >= 0) {
                free(p->snaps);
                p->snaps = LB_TAKE_PTR(ids);
                p->n_snaps = n_ids;
        }
        free(ids);
        return k < 0 ? k : 0;
}

/* ---- accounting ---- */

/* Pass A: numbers a delta's base id and appends it to the base file
 * (created at the first delta). A pack's records are spilled together,
 * so its bases are numbered consecutively. */
static int spill_base(Prune *p, PackInfo *pi, const LbId *base, uint32_t *ret) {
        if (p->base_fd < 0) {
                p->base_buf = malloc(BASE_BUF * sizeof *p->base_buf);
                if (!p->base_buf)
                        return -ENOMEM;
                p->base_fd = lb_open_tmpfile(p->r->index_dir);
                if (p->base_fd < 0)
                        return p->base_fd;
        }
        if (p->n_base_buf == BASE_BUF) {
                int k = lb_write_all(p->base_fd, p->base_buf, p->n_base_buf * sizeof *p->base_buf);
                if (k < 0)
                        return k;
                p->n_base_buf = 0;
        }
        if (p->n_bases == UINT32_MAX || pi->deltas == UINT32_MAX)
                return -E2BIG;
        if (pi->deltas++ == 0)
                pi->first_base = p->n_bases;
        p->base_buf[p->n_base_buf++] = *base;
        *ret = p->n_bases++;
        return 0;
}

/* After pass A: the base file, mapped for reading. */
static int map_bases(Prune *p) {
        if (p->base_fd < 0 || p->n_bases == 0)
                return 0;
        int k = lb_write_all(p->base_fd, p->base_buf, p->n_base_buf * sizeof *p->base_buf);
        if (k < 0)
                return k;
        p->n_base_buf = 0;
        void *m = mmap(NULL, (size_t) p->n_bases * sizeof *p->bases, PROT_READ, MAP_SHARED, p->base_fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        p->bases = m;
        return 0;
}

/* Pass A over the index files: the packs, which files list them, and
 * where the trees and chunk lists are. */
static int scan_pack(Prune *p, uint32_t file, const LbIndexPack *ip) {
        PackInfo *pi;
        int k = pack_add(p, &ip->pack_id, ip->pack_size, &pi);
        if (k < 0)
                return k;
        uint32_t *f = realloc(pi->files, (pi->n_files + 1) * sizeof *f);
        if (!f)
                return -ENOMEM;
        pi->files = f;
        pi->files[pi->n_files++] = file;
        if (pi->n_files > 1)
                return 0; /* listed by another index file too */
        uint32_t ord = pack_ordinal(p, pi);
        for (size_t i = 0; i < ip->n; i++) {
                if (p->n_spill == SPILL_BUF) {
                        k = lb_write_all(p->spill_fd, p->spill, p->n_spill * sizeof *p->spill);
                        if (k < 0)
                                return k;
                        p->n_spill = 0;
                }
                const LbPackEntry *e = &ip->entries[i];
                if (e->offset > UINT32_MAX)
                        return -EBADMSG; /* cannot happen: index files are checked against pack sizes */
                uint32_t base = 0;
                if (e->codec == LB_CODEC_DELTA) {
                        k = spill_base(p, pi, &e->base, &base);
                        if (k < 0)
                                return k;
                }
                p->spill[p->n_spill++] = (SpillRec) {
                        .pack = ord,
                        .offset = (uint32_t) e->offset,
                        .base = base,
                        .payload_len = e->payload_len,
                        .raw_len = e->raw_len,
                        .type = e->type,
                        .codec = e->codec,
                };
                memcpy(p->spill[p->n_spill - 1].id, e->id.b, LB_ID_SIZE);
                p->n_recs++;
                if (ip->entries[i].type == LB_BLOB_DATA)
                        continue;
                if (p->n_meta == p->cap_meta) {
                        size_t cap = p->cap_meta ? 2 * p->cap_meta : 1024;
                        MetaBlob *v = reallocarray(p->meta, cap, sizeof *v);
                        if (!v)
                                return -ENOMEM;
                        p->meta = v;
                        p->cap_meta = cap;
                }
                p->meta[p->n_meta++] = (MetaBlob) { .e = ip->entries[i], .pack = ord };
        }
        return 0;
}

/* An index file read and decoded by the worker. */
typedef struct FileJob {
        LbId id;
        LbIndexPack *packs;
        size_t n;
        int error;
} FileJob;

static void file_job_run(void *job, void *ud) {
        FileJob *j = job;
        Prune *p = ud;
        j->packs = NULL;
        j->n = 0;
        j->error = lb_repo_read_index_file(p->r, &j->id, &j->packs, &j->n);
}

static void file_job_drop(void *job) {
        FileJob *j = job;
        lb_index_packs_free(j->packs, j->n);
        j->packs = NULL;
        j->n = 0;
}

static int scan_index_files(Prune *p) {
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
        p->spill = malloc(SPILL_BUF * sizeof *p->spill);
        if (!p->spill)
                return -ENOMEM;
        p->spill_fd = lb_open_tmpfile(p->r->index_dir);
        if (p->spill_fd < 0)
                return fail(p, p->spill_fd, "create a temporary file in %s: %s", p->r->index_dir,
                            strerror(-p->spill_fd));
        /* The worker reads and decodes the files ahead. */
        Ahead a;
        k = ahead_start(&a, sizeof(FileJob), file_job_run, p);
        if (k < 0)
                return fail(p, k, "start a thread: %s", strerror(-k));
        size_t next = 0;
        for (size_t f = 0; f < p->n_files && k >= 0; f++) {
                FileJob *j;
                while (next < p->n_files && (j = ahead_slot(&a))) {
                        *j = (FileJob) { .id = p->files[next++].id };
                        ahead_submit(&a);
                }
                j = ahead_take(&a);
                k = j->error;
                if (k < 0) {
                        char hex[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&j->id, hex);
                        k = fail(p, k, "read index file %s: %s; nothing was deleted: run 'longbox check'", hex,
                                 strerror(-k));
                        break;
                }
                for (size_t i = 0; i < j->n && k >= 0; i++)
                        k = scan_pack(p, (uint32_t) f, &j->packs[i]);
                file_job_drop(j);
                ahead_release(&a);
                if (k < 0)
                        k = fail(p, k, "read the index: %s", strerror(-k));
        }
        ahead_stop(&a, file_job_drop);
        if (k < 0)
                return k;
        if (p->n_spill > 0) {
                k = lb_write_all(p->spill_fd, p->spill, p->n_spill * sizeof *p->spill);
                if (k < 0)
                        return fail(p, k, "write a temporary file in %s: %s", p->r->index_dir, strerror(-k));
                p->n_spill = 0;
        }
        k = map_bases(p);
        if (k < 0)
                return fail(p, k, "write a temporary file in %s: %s", p->r->index_dir, strerror(-k));
        lb_qsort(p->meta, p->n_meta, sizeof *p->meta, meta_cmp);
        return 0;
}

/* Reads the spill back, record by record. */
typedef struct SpillCursor {
        size_t pos, n;           /* in p->spill */
        uint64_t index;          /* of the record at pos */
        bool eof;
} SpillCursor;

static int spill_rewind(Prune *p, SpillCursor *c) {
        *c = (SpillCursor) {};
        return lseek(p->spill_fd, 0, SEEK_SET) < 0 ? -errno : 0;
}

/* The record at the cursor (borrowed until the next call), NULL at the end. */
static int spill_peek(Prune *p, SpillCursor *c, const SpillRec **ret) {
        if (c->pos == c->n && !c->eof) {
                size_t got;
                int k = lb_read_all(p->spill_fd, p->spill, SPILL_BUF * sizeof *p->spill, &got);
                if (k < 0)
                        return k;
                if (got % sizeof *p->spill != 0 || c->index + got / sizeof *p->spill > p->n_recs)
                        return -EIO;
                c->pos = 0;
                c->n = got / sizeof *p->spill;
                c->eof = c->n == 0;
        }
        if (c->eof) {
                *ret = NULL;
                return 0;
        }
        const SpillRec *r = &p->spill[c->pos];
        if (r->pack >= p->n_packs || (r->codec == LB_CODEC_DELTA && r->base >= p->n_bases))
                return -EIO;
        *ret = r;
        return 0;
}

static void spill_next(SpillCursor *c) {
        c->pos++;
        c->index++;
}

/* The stored length of a record's blob: its payload padded, sealed. The
 * index files were checked (lb_entry_decode), so this cannot wrap. */
static uint32_t rec_stored_len(const SpillRec *r) {
        return lb_pad_length(r->payload_len) + LB_SEAL_OVERHEAD;
}

/* The entry of a record from spill_peek (whose base number is checked). */
static LbPackEntry spill_entry(const Prune *p, const SpillRec *r) {
        LbPackEntry e = {
                .offset = r->offset,
                .stored_len = rec_stored_len(r),
                .payload_len = r->payload_len,
                .raw_len = r->raw_len,
                .type = r->type,
                .codec = r->codec,
        };
        memcpy(e.id.b, r->id, LB_ID_SIZE);
        if (r->codec == LB_CODEC_DELTA)
                e.base = p->bases[r->base];
        return e;
}

/* Step 1, last: marks the base of every delta whose id is marked, each
 * copy's (copies of one chunk may name different bases, and pass B has
 * not chosen the copy that stays yet). Bases are never deltas, so one
 * pass over the spill does it. */
static int mark_bases(Prune *p) {
        if (p->n_bases == 0)
                return 0;
        SpillCursor c;
        int k = spill_rewind(p, &c);
        for (;;) {
                const SpillRec *r;
                if (k >= 0)
                        k = spill_peek(p, &c, &r);
                if (k < 0 || !r)
                        break;
                if (c.pos + PREFETCH < c.n && p->spill[c.pos + PREFETCH].codec == LB_CODEC_DELTA) {
                        LbId ahead;
                        memcpy(ahead.b, p->spill[c.pos + PREFETCH].id, LB_ID_SIZE);
                        lb_markset_prefetch(p->mark, &ahead);
                }
                if (r->codec == LB_CODEC_DELTA) {
                        LbId id;
                        memcpy(id.b, r->id, LB_ID_SIZE);
                        k = lb_markset_get(p->mark, &id, NULL);
                        if (k == 0)
                                k = mark_live(p, &p->bases[r->base], 0, NULL);
                        else if (k == -ENOENT)
                                k = 0;
                }
                spill_next(&c);
        }
        if (k < 0)
                return fail(p, k, "mark the bases of deltas: %s", strerror(-k));
        return 0;
}

/* Pass B, after the mark: each pack's entries (from the first index file
 * listing it), read back from the spill. The first copy of a marked blob
 * met is owned by its pack; an unmarked blob, or a further copy, is dead. */
static int account_entry(Prune *p, const SpillRec *rec, uint64_t index) {
        PackInfo *pi = &p->packs[rec->pack];
        LbId id;
        memcpy(id.b, rec->id, LB_ID_SIZE);
        uint32_t v;
        pi->blobs++;
        int k = lb_markset_get(p->mark, &id, &v);
        if (k == -ENOENT || (k == 0 && (v & MARK_OWNED))) {
                /* Unused, or a second copy of a blob another pack holds. */
                pi->dead_bytes += rec_stored_len(rec);
                pi->second_copies += k == 0;
                pi->dead_deltas += rec->codec == LB_CODEC_DELTA;
                return 0;
        }
        if (k < 0)
                return k;
        k = lb_markset_put(p->mark, &id, (v & MARK_FLAGS) | MARK_OWNED | (rec->pack << MARK_OWNER_SHIFT));
        if (k < 0)
                return k;
        p->owned[index / 8] |= (uint8_t) (1u << (index % 8));
        pi->live_blobs++;
        pi->live_bytes += rec_stored_len(rec);
        return 0;
}

static int account(Prune *p) {
        p->owned = calloc(p->n_recs / 8 + 1, 1);
        if (!p->owned)
                return -ENOMEM;
        SpillCursor c;
        int k = spill_rewind(p, &c);
        for (;;) {
                const SpillRec *r;
                if (k >= 0)
                        k = spill_peek(p, &c, &r);
                if (k < 0 || !r)
                        break;
                /* Prefetch within the buffer. */
                if (c.pos + PREFETCH < c.n) {
                        LbId ahead;
                        memcpy(ahead.b, p->spill[c.pos + PREFETCH].id, LB_ID_SIZE);
                        lb_markset_prefetch(p->mark, &ahead);
                }
                k = account_entry(p, r, c.index);
                spill_next(&c);
        }
        if (k < 0)
                return fail(p, k, "account packs: %s", strerror(-k));
        for (size_t i = 0; i < p->n_packs; i++) {
                p->res.blobs += p->packs[i].blobs;
                p->res.blobs_live += p->packs[i].live_blobs;
        }
        return 0;
}

struct unowned {
        Prune *p;
        uint64_t n;
        uint8_t first[LB_MARKSET_KEY_SIZE];
};

static int find_unowned(const uint8_t *id, uint32_t v, void *ud) {
        struct unowned *u = ud;
        if ((v & MARK_LIVE) && !(v & MARK_OWNED)) {
                if (u->n == 0)
                        memcpy(u->first, id, sizeof u->first);
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
                char h[2 * LB_MARKSET_KEY_SIZE + 1];
                lb_hex_encode(u.first, sizeof u.first, h); /* the set keeps this much of an id */
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
                /* A dead delta is never kept: its base may be going. */
                if (pi->live_blobs == 0)
                        pi->action = PACK_DELETE;
                else if (pi->dead_bytes * 100 > (uint64_t) p->o->max_unused_percent * pi->size ||
                         pi->dead_deltas > 0)
                        pi->action = PACK_REPACK;
        }
        return 0;
}

/* ---- repack ---- */

/* A blob in the pack being built, in the order added: where it was
 * copied from (offsets fit u32: packs are smaller than 4 GiB). */
typedef struct Source {
        uint32_t pack;           /* ordinal in Prune.packs */
        uint32_t offset;
} Source;

typedef struct Repack {
        Prune *p;
        LbPackWriter *pw;
        Source *src;             /* the blobs in pw */
        size_t n_src, cap_src;
        LbIndexPack *done;       /* packs written, not yet in an index file */
        LbIndexMove **from;      /* for each, where its entries came from */
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

static void repack_free_done(Repack *rp) {
        for (size_t i = 0; i < rp->n_done; i++)
                free(rp->from[i]);
        free(rp->from);
        lb_index_packs_free(rp->done, rp->n_done);
        rp->from = NULL;
        rp->done = NULL;
        rp->n_done = rp->entries = 0;
}

static int repack_flush_index(Repack *rp) {
        if (rp->n_done == 0)
                return 0;
        LbId file;
        int k = lb_repo_write_index_file(rp->p->r, rp->done, rp->n_done, &file);
        if (k < 0)
                return fail(rp->p, k, "write an index file: %s", strerror(-k));
        rp->p->res.index_files_written++;
        LbId *own = realloc(rp->p->own_files, (rp->p->n_own_files + 1) * sizeof *own);
        if (!own)
                return -ENOMEM;
        rp->p->own_files = own;
        own[rp->p->n_own_files++] = file;
        crash_point("repack-index");
        /* Lookups find the copies once the source packs are forgotten. */
        k = lb_index_add_copies(rp->p->r->index, &file, rp->done, rp->n_done, rp->from);
        if (k < 0)
                return fail(rp->p, k, "update the local index: %s", strerror(-k));
        repack_free_done(rp);
        return 0;
}

static int repack_flush_pack(Repack *rp) {
        if (!rp->pw || lb_pack_writer_count(rp->pw) == 0)
                return 0;
        LbIndexPack ip = {};
        const struct iovec *iov;
        size_t n_iov;
        _cleanup_free_ uint32_t *order = NULL;
        /* The pack is written from the writer's buffer, not copied together. */
        int k = lb_pack_writer_finish_iov(rp->pw, &iov, &n_iov, &ip.pack_size, &ip.entries, &ip.n, &order);
        if (k < 0)
                return fail(rp->p, k, "build a pack: %s", strerror(-k));
        /* Where each entry (in the pack's shuffled order) came from. */
        _cleanup_free_ LbIndexMove *from = calloc(ip.n + 1, sizeof *from);
        if (!from || ip.n != rp->n_src) {
                free(ip.entries);
                return from ? -EIO : -ENOMEM; /* EIO cannot happen: the writer returns what it was given */
        }
        for (size_t i = 0; i < ip.n; i++) {
                const Source *s = &rp->src[order[i]];
                from[i] = (LbIndexMove) { .pack = rp->p->packs[s->pack].id, .offset = s->offset };
        }
        rp->n_src = 0;
        k = lb_repo_put_object_iov(rp->p->r, LB_OBJ_PACK, iov, n_iov, &ip.pack_id);
        /* Empty again: kept, with its buffers, for the next pack. */
        lb_pack_writer_reset(rp->pw);
        if (k < 0) {
                free(ip.entries);
                return fail(rp->p, k, "write a pack: %s", strerror(-k));
        }
        crash_point("repack-pack");
        LbIndexPack *v = realloc(rp->done, (rp->n_done + 1) * sizeof *v);
        LbIndexMove **f = v ? realloc(rp->from, (rp->n_done + 1) * sizeof *f) : NULL;
        if (v)
                rp->done = v;
        if (!f) {
                free(ip.entries);
                return -ENOMEM;
        }
        rp->from = f;
        rp->from[rp->n_done] = LB_TAKE_PTR(from);
        rp->done[rp->n_done++] = ip;
        rp->entries += ip.n;
        rp->p->res.packs_written++;
        rp->p->res.bytes_written += ip.pack_size;
        if (rp->n_done >= REWRITE_PACKS_MAX || rp->entries >= REWRITE_ENTRIES_MAX)
                return repack_flush_index(rp);
        return 0;
}

/* One pack read by the worker: the blobs it owns, verified. */
typedef struct ReadJob {
        PackInfo *pi;
        LbBuf blobs;             /* their sealed bytes, one after the other */
        LbPackEntry *owned;      /* with their offsets in the pack */
        size_t n_owned;
        int error;               /* < 0: the pack is kept (damaged), or fatal */
        bool fatal;              /* error stops prune */
} ReadJob;

/* The worker reads ahead at most this much of the blobs to copy (at least
 * one pack). */
#define READ_AHEAD_BYTES (8u << 20)

static void read_job_drop(void *job) {
        ReadJob *j = job;
        lb_buf_free(&j->blobs);
        free(j->owned);
        j->owned = NULL;
        j->n_owned = 0;
}

/* In the worker: the sealed bytes of the blobs j->pi owns (their entries,
 * from the index files, in j->owned), each verified: its AEAD tag, which
 * covers the entry's id, type, codec and lengths. The sealed bytes move
 * unchanged, so that is all a copy needs. Nothing else of the pack is read
 * or checked (its name against its hash, its TOC): it is going away. The
 * pack is mapped where the backend can (else read whole into a buffer kept
 * for the next), so the ~85% of it that is dead is not copied. */
static void read_job_run(void *job, void *ud) {
        ReadJob *j = job;
        Prune *p = ud;
        LbBackend *be = p->r->be;
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&j->pi->id, hex);
        const uint8_t *pack = NULL;
        size_t len = 0;
        int k;
        if (be->map)
                k = be->map(be, LB_OBJ_PACK, hex, &pack, &len);
        else {
                k = be->get(be, LB_OBJ_PACK, hex, 0, SIZE_MAX, &p->repack_buf);
                pack = p->repack_buf.data;
                len = p->repack_buf.len;
        }
        size_t bytes = 0;
        for (size_t i = 0; k == 0 && i < j->n_owned; i++) {
                const LbPackEntry *e = &j->owned[i];
                if (e->offset > len || e->stored_len > len - e->offset)
                        k = -EBADMSG; /* the pack is shorter than its index file says */
                else
                        k = lb_blob_verify(&p->r->keys, e, pack + e->offset, e->stored_len);
                bytes += e->stored_len;
        }
        /* Only the owned blobs wait for the main thread, not the whole pack. */
        if (k == 0)
                k = lb_buf_reserve(&j->blobs, bytes);
        for (size_t i = 0; k == 0 && i < j->n_owned; i++)
                k = lb_buf_append(&j->blobs, pack + j->owned[i].offset, j->owned[i].stored_len);
        if (be->map && pack)
                be->unmap(be, pack, len);
        else
                lb_buf_clear(&p->repack_buf);
        j->fatal = k == -ENOMEM;
        j->error = k;
}

/* The next pack to repack from the spill, with the entries of the blobs
 * it owns (*ret, caller frees): 1, or 0 at the end. */
static int next_repack(Prune *p, SpillCursor *c, PackInfo **ret_pi, LbPackEntry **ret, size_t *ret_n) {
        for (;;) {
                const SpillRec *r;
                int k = spill_peek(p, c, &r);
                if (k < 0 || !r)
                        return k;
                uint32_t ord = r->pack;
                PackInfo *pi = &p->packs[ord];
                bool want = pi->action == PACK_REPACK;
                _cleanup_free_ LbPackEntry *e = want ? calloc(pi->live_blobs + 1, sizeof *e) : NULL;
                if (want && !e)
                        return -ENOMEM;
                size_t n = 0;
                while (r && r->pack == ord) {
                        if (want && (p->owned[c->index / 8] & (1u << (c->index % 8)))) {
                                if (n == pi->live_blobs)
                                        return -EIO; /* cannot happen: counted in pass B */
                                e[n++] = spill_entry(p, r);
                        }
                        spill_next(c);
                        k = spill_peek(p, c, &r);
                        if (k < 0)
                                return k;
                }
                if (want) {
                        *ret_pi = pi;
                        *ret = LB_TAKE_PTR(e);
                        *ret_n = n;
                        return 1;
                }
        }
}

/* Copies the verified blobs of a pack into new packs. A pack that could
 * not be read, or holds a damaged blob it owns, is kept. */
static int repack_one(Repack *rp, ReadJob *j) {
        Prune *p = rp->p;
        PackInfo *pi = j->pi;
        if (j->fatal)
                return j->error;
        if (j->error < 0) {
                /* Its live blobs stay where they are; check tells the user more. */
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&pi->id, hex);
                info(p, "pack %s cannot be read, or a blob in use in it is damaged (%s): kept", hex,
                     strerror(-j->error));
                p->res.packs_damaged++;
                return 0;
        }
        uint32_t ord = pack_ordinal(p, pi);
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&pi->id, hex);
        size_t at = 0;
        for (size_t i = 0; i < j->n_owned; i++) {
                const LbPackEntry *e = &j->owned[i];
                const uint8_t *stored = j->blobs.data + at;
                at += e->stored_len;
                int k;
                if (!rp->pw) {
                        k = lb_pack_writer_new(&p->r->keys, &rp->pw);
                        if (k < 0)
                                return k;
                }
                if (rp->n_src == rp->cap_src) {
                        size_t cap = rp->cap_src ? 2 * rp->cap_src : 4096;
                        Source *sv = reallocarray(rp->src, cap, sizeof *sv);
                        if (!sv)
                                return -ENOMEM;
                        rp->src = sv;
                        rp->cap_src = cap;
                }
                k = lb_pack_writer_add(rp->pw, e, stored, e->stored_len);
                if (k < 0)
                        return k;
                rp->src[rp->n_src++] = (Source) { .pack = ord, .offset = (uint32_t) e->offset };
                if (lb_pack_writer_size(rp->pw) >= p->r->cfg.pack_target) {
                        k = repack_flush_pack(rp);
                        if (k < 0)
                                return k;
                }
                repack_progress(rp, hex, LB_MIN(e->offset + e->stored_len, pi->size));
        }
        pi->copied = true;
        return 0;
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
        /* The worker reads and verifies packs while this thread builds and
         * writes the new ones: the two cores share the work, and one's
         * I/O overlaps the other's. */
        Ahead a;
        int k = ahead_start(&a, sizeof(ReadJob), read_job_run, p);
        if (k < 0)
                return fail(p, k, "start a thread: %s", strerror(-k));
        Repack rp = { .p = p, .read_total = read_total, .packs_total = todo };
        SpillCursor c;
        k = spill_rewind(p, &c);
        /* The next pack to submit, taken from the spill. */
        ReadJob next = {};
        bool have_next = false, exhausted = false;
        uint64_t ahead_bytes = 0;
        for (;;) {
                ReadJob *j;
                while (k >= 0 && !exhausted && (j = ahead_slot(&a))) {
                        if (!have_next) {
                                next = (ReadJob) {};
                                k = next_repack(p, &c, &next.pi, &next.owned, &next.n_owned);
                                exhausted = k == 0;
                                have_next = k > 0;
                                if (k <= 0)
                                        break;
                                k = 0;
                        }
                        if (a.submitted > a.head && ahead_bytes + next.pi->live_bytes > READ_AHEAD_BYTES)
                                break;
                        *j = next;
                        have_next = false;
                        ahead_bytes += j->pi->live_bytes;
                        ahead_submit(&a);
                }
                if (k < 0) {
                        k = fail(p, k, "read a temporary file: %s", strerror(-k));
                        break;
                }
                if (!(j = ahead_take(&a)))
                        break;
                ahead_bytes -= j->pi->live_bytes;
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&j->pi->id, hex);
                repack_progress(&rp, hex, 0);
                k = repack_one(&rp, j);
                rp.read_done += j->pi->size;
                rp.packs_done++;
                if (k >= 0)
                        repack_progress(&rp, hex, 0);
                read_job_drop(j);
                ahead_release(&a);
                if (k < 0)
                        break;
        }
        ahead_stop(&a, read_job_drop);
        if (have_next)
                read_job_drop(&next);
        lb_buf_free(&p->repack_buf);
        if (k >= 0)
                k = repack_flush_pack(&rp);
        if (k >= 0)
                k = repack_flush_index(&rp);
        lb_pack_writer_free(rp.pw);
        free(rp.src);
        repack_free_done(&rp);
        if (k < 0 && !p->error)
                fail(p, k, "repack: %s", strerror(-k));
        return k;
}

/* ---- phase 2 ---- */

/* A pack that was going stays whole; the bases of its deltas must then
 * stay too: it joins the list keep_busy_packs works through. */
static void keep_pack(Prune *p, PackInfo *pi) {
        if (!pack_goes(pi))
                return;
        pi->action = PACK_KEEP;
        pi->copied = false;
        p->res.packs_busy++;
        if (pi->deltas > 0 && pi->in_backend)
                p->kept[p->n_kept++] = pack_ordinal(p, pi); /* once: it goes no more */
}

/* The base of a delta that stays: nothing to do when phase 1 chose a copy
 * of it to keep (owned), else the pack the index has it in stays. A delta
 * a new snapshot uses needs its base indexed; a dead one whose base is
 * gone already has nothing to keep. */
static int keep_base(Prune *p, const LbId *base, bool needed) {
        uint32_t v;
        int k = lb_markset_get(p->mark, base, &v);
        if (k == 0 && (v & MARK_OWNED))
                return 0;
        if (k < 0 && k != -ENOENT)
                return k;
        LbBlobLoc l;
        k = lb_repo_lookup(p->r, base, &l);
        if (k == -ENOENT && !needed)
                return 0;
        if (k < 0) {
                char h[2 * LB_ID_SIZE + 1];
                lb_id_hex(base, h);
                return fail(p, k == -ENOENT ? -EBADMSG : k, "a new snapshot uses a delta whose base %s is not in "
                            "the index; nothing was deleted: run 'longbox check'", h);
        }
        PackInfo *pi = pack_find(p, &l.pack);
        if (pi)
                keep_pack(p, pi);
        return 0;
}

static int file_cmp(const void *a, const void *b) {
        return lb_id_cmp(&((const IndexFileInfo *) a)->id, &((const IndexFileInfo *) b)->id);
}

/* The deltas of the packs written since phase 1 listed the index files
 * (by backups beside it: also those of a backup that failed before its
 * snapshot, which no snapshot uses): their bases stay. Only the index
 * files that are new are read; those the repack wrote hold copies of live
 * blobs, whose bases are owned. */
static int keep_new_bases(Prune *p) {
        ListedIds listed;
        int k = list_ids(p, LB_OBJ_INDEX, &listed);
        if (k < 0)
                return k;
        for (size_t i = 0; i < listed.n && k >= 0; i++) {
                const IndexFileInfo key = { .id = listed.v[i].id };
                if (lb_bsearch(&key, p->files, p->n_files, sizeof *p->files, file_cmp))
                        continue;
                bool own = false;
                for (size_t j = 0; j < p->n_own_files && !own; j++)
                        own = lb_id_cmp(&p->own_files[j], &key.id) == 0;
                if (own)
                        continue;
                LbIndexPack *packs = NULL;
                size_t n = 0;
                k = lb_repo_read_index_file(p->r, &key.id, &packs, &n);
                if (k == -ENOENT) {
                        k = 0; /* cannot happen under the exclusive lock */
                        continue;
                }
                if (k < 0) {
                        char hex[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&key.id, hex);
                        k = fail(p, k, "read index file %s: %s; nothing was deleted: run 'longbox check'", hex,
                                 strerror(-k));
                        break;
                }
                for (size_t j = 0; j < n && k >= 0; j++) {
                        if (pack_find(p, &packs[j].pack_id))
                                continue; /* a pack phase 1 knows: its deltas are accounted for */
                        for (size_t x = 0; x < packs[j].n && k >= 0; x++)
                                if (packs[j].entries[x].codec == LB_CODEC_DELTA)
                                        k = keep_base(p, &packs[j].entries[x].base, false);
                }
                lb_index_packs_free(packs, n);
        }
        free(listed.v);
        return k;
}

/* A blob phase 1 found dead and a snapshot written since uses: the pack
 * the index has it in stays, and for a delta (phase 1 dead or new) its
 * base's. So do the bases of the deltas in packs written meanwhile. Then,
 * for every pack kept whole that phase 1 meant to delete or repack (kept
 * here, or whose repack found it damaged), the bases of its deltas, live
 * or dead, stay: until no more packs are kept. */
static int keep_busy_packs(Prune *p) {
        p->kept = calloc(p->n_packs + 1, sizeof *p->kept);
        if (!p->kept)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_packs; i++) {
                const PackInfo *pi = &p->packs[i];
                if (pi->action == PACK_REPACK && !pi->copied && pi->deltas > 0 && pi->in_backend)
                        p->kept[p->n_kept++] = (uint32_t) i;
        }
        int k = 0;
        for (size_t i = 0; i < p->n_fresh && k >= 0; i++) {
                LbBlobLoc l;
                k = lb_repo_lookup(p->r, &p->fresh[i], &l);
                if (k < 0) {
                        char h[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&p->fresh[i], h);
                        return fail(p, k == -ENOENT ? -EBADMSG : k, "a new snapshot uses blob %s, which is not in "
                                    "the index; nothing was deleted: run 'longbox check'", h);
                }
                PackInfo *pi = pack_find(p, &l.pack);
                if (pi)
                        keep_pack(p, pi);
                if (l.e.codec == LB_CODEC_DELTA)
                        k = keep_base(p, &l.e.base, true);
        }
        if (k >= 0)
                k = keep_new_bases(p);
        while (k >= 0 && p->n_kept > 0) {
                const PackInfo *pi = &p->packs[p->kept[--p->n_kept]];
                for (uint32_t j = 0; j < pi->deltas && k >= 0; j++)
                        k = keep_base(p, &p->bases[pi->first_base + j], false);
        }
        if (k < 0 && !p->error)
                fail(p, k, "keep the packs new snapshots use: %s", strerror(-k));
        return k < 0 ? k : 0;
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
        /* The entries come from the spill of pass A (each pack's, as the
         * first file listing it has them), not from the files again. */
        SpillCursor c;
        int k = spill_rewind(p, &c);
        if (k < 0)
                return fail(p, k, "read a temporary file: %s", strerror(-k));
        for (;;) {
                const SpillRec *r;
                k = spill_peek(p, &c, &r);
                if (k < 0 || !r)
                        break;
                PackInfo *pi = &p->packs[r->pack];
                /* A going pack holding second copies of live blobs, or a
                 * staying one listed by affected files only. */
                bool goes = pack_goes(pi);
                bool want = goes ? pi->second_copies > 0 : !listed_elsewhere(p, pi);
                LbIndexPack ip = { .pack_id = pi->id, .pack_size = pi->size };
                if (want && !(ip.entries = calloc(pi->blobs + 1, sizeof *ip.entries)))
                        return -ENOMEM;
                uint32_t ord = r->pack;
                while (k >= 0 && r && r->pack == ord) {
                        if (want && ip.n < pi->blobs)
                                ip.entries[ip.n++] = spill_entry(p, r);
                        spill_next(&c);
                        k = spill_peek(p, &c, &r);
                }
                if (k >= 0 && want && goes)
                        k = relocate_second_copies(p, pi, &ip);
                else if (k >= 0 && want) {
                        LbIndexPack *v = realloc(w->keep, (w->n_keep + 1) * sizeof *v);
                        if (v) {
                                w->keep = v;
                                w->keep[w->n_keep++] = ip;
                                w->entries += ip.n;
                                ip.entries = NULL;
                                if (w->n_keep >= REWRITE_PACKS_MAX || w->entries >= REWRITE_ENTRIES_MAX)
                                        k = rewrite_flush(w);
                        } else
                                k = -ENOMEM;
                }
                free(ip.entries);
                if (k < 0)
                        break;
        }
        if (k < 0)
                return p->error ? k : fail(p, k, "rewrite the index: %s", strerror(-k));
        return rewrite_flush(w);
}

/* Removals wait for no directory sync each: index files are synced as a
 * whole before the first pack goes (step 8 before step 9); a pack whose
 * removal a system crash undid is a leftover the next prune removes. */
static int remove_object(Prune *p, LbObjType t, const LbId *id) {
        int k = lb_repo_remove_nosync(p->r, t, id);
        if (k < 0 && k != -ENOENT) {
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(id, hex);
                return fail(p, k, "remove %s %s: %s", lb_obj_type_dir(t), hex, strerror(-k));
        }
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
        k = mark_snapshots(p, NULL);
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
        if (k >= 0) {
                k = lb_repo_sync_removals(r, LB_OBJ_INDEX);
                if (k < 0)
                        return fail(p, k, "sync the removal of index files: %s", strerror(-k));
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
        free(p->meta);
        free(p->spill);
        free(p->owned);
        if (p->spill_fd >= 0)
                close(p->spill_fd);
        if (p->bases)
                munmap((void *) p->bases, (size_t) p->n_bases * sizeof *p->bases);
        if (p->base_fd >= 0)
                close(p->base_fd);
        free(p->base_buf);
        free(p->kept);
        free(p->own_files);
        lb_buf_free(&p->repack_buf);
        free(p->snaps);
        free(p->fresh);
}

int lb_prune_run(LbRepo *r, const LbPruneOptions *o, LbPruneResult *ret, char **ret_error) {
        if (!r->index)
                return -EINVAL;
        Prune p = { .r = r, .o = o, .spill_fd = -1, .base_fd = -1 };
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
        /* Snapshots first, then the index files: a snapshot is written
         * after the index files of every blob it uses, so those are listed. */
        ListedIds snaps = {};
        k = list_ids(&p, LB_OBJ_SNAPSHOT, &snaps);
        if (k == 0)
                k = scan_index_files(&p);
        if (k == 0)
                k = mark_snapshots(&p, &snaps);
        else
                free(snaps.v);
        if (k == 0)
                k = mark_bases(&p);
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
