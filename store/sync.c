/* SPDX-License-Identifier: MIT */
/* Repository sync between two backends (store/sync.h). */
#include <pthread.h>

#include "store/crypto.h"
#include "store/sync.h"

typedef struct Obj {
        char *name;
        uint64_t size;
} Obj;

typedef struct ObjList {
        Obj *v;
        size_t n;
} ObjList;

static void objlist_free(ObjList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i].name);
        free(l->v);
        *l = (ObjList) {};
}

static int collect(const char *name, uint64_t size, void *ud) {
        ObjList *l = ud;
        if (l->n % 256 == 0) {
                Obj *v = realloc(l->v, (l->n + 256) * sizeof *v);
                if (!v)
                        return -ENOMEM;
                l->v = v;
        }
        l->v[l->n].name = strdup(name);
        if (!l->v[l->n].name)
                return -ENOMEM;
        l->v[l->n++].size = size;
        return 0;
}

static int obj_cmp(const void *a, const void *b) {
        return strcmp(((const Obj *) a)->name, ((const Obj *) b)->name);
}

static int list_sorted(LbBackend *b, LbObjType t, ObjList *ret) {
        ObjList l = {};
        int k = b->list(b, t, collect, &l);
        if (k < 0) {
                objlist_free(&l);
                return k;
        }
        lb_qsort(l.v, l.n, sizeof *l.v, obj_cmp);
        *ret = l;
        return 0;
}

static const Obj *find(const ObjList *l, const char *name) {
        Obj key = { .name = (char *) name };
        return lb_bsearch(&key, l->v, l->n, sizeof *l->v, obj_cmp);
}

static int copy_object(LbBackend *src, LbBackend *dst, LbObjType t, const char *name, uint64_t size, LbBuf *buf) {
        int k = src->get(src, t, name, 0, SIZE_MAX, buf);
        if (k == -ENOENT)
                return 0; /* removed meanwhile (a prune): nothing to copy */
        if (k < 0)
                return k;
        if (buf->len != size && t != LB_OBJ_KEY)
                return -EBADMSG;
        if (t == LB_OBJ_PACK || t == LB_OBJ_INDEX || t == LB_OBJ_SNAPSHOT || t == LB_OBJ_EVENT) {
                LbId id, want;
                lb_object_id(buf->data, buf->len, &id);
                if (lb_id_from_hex(name, &want) < 0 || lb_id_cmp(&id, &want) != 0)
                        return -EBADMSG;
        }
        return dst->put(dst, t, name, buf->data, buf->len);
}

int lb_sync_prepare(LbBackend *src, LbBackend *dst, LbSyncStats *stats) {
        _cleanup_buf_ LbBuf scfg = {}, dcfg = {}, buf = {};
        int k = src->get(src, LB_OBJ_CONFIG, "config", 0, SIZE_MAX, &scfg);
        if (k < 0)
                return k;
        k = dst->exists(dst);
        if (k == 0) {
                k = dst->get(dst, LB_OBJ_CONFIG, "config", 0, SIZE_MAX, &dcfg);
                if (k < 0)
                        return k;
                if (dcfg.len != scfg.len || memcmp(dcfg.data, scfg.data, scfg.len) != 0)
                        return -EEXIST;
                return 0;
        }
        if (k != -ENOENT && k != -ENXIO)
                return k;
        /* A new destination (-ENXIO: its folder is missing; create() makes
         * it where the backend can, else fails with -ENXIO again); or one an interrupted sync began (it has key
         * slots but no config yet): go on filling it. */
        k = dst->create(dst);
        if (k == -ENOTEMPTY) {
                ObjList keys = {};
                k = list_sorted(dst, LB_OBJ_KEY, &keys);
                bool ours = k == 0 && keys.n > 0;
                objlist_free(&keys);
                if (k < 0)
                        return k;
                if (!ours)
                        return -ENOTEMPTY;
        } else if (k < 0)
                return k;
        stats->created = true;
        ObjList keys = {};
        k = list_sorted(src, LB_OBJ_KEY, &keys);
        for (size_t i = 0; k == 0 && i < keys.n; i++) {
                k = copy_object(src, dst, LB_OBJ_KEY, keys.v[i].name, keys.v[i].size, &buf);
                if (k == 0)
                        stats->copied[LB_OBJ_KEY]++;
        }
        objlist_free(&keys);
        if (k < 0)
                return k;
        /* The config last: a location with a config is a repository, and it
         * must open the moment it is one. */
        k = dst->put(dst, LB_OBJ_CONFIG, "config", scfg.data, scfg.len);
        if (k == 0)
                stats->copied[LB_OBJ_CONFIG]++;
        return k;
}

int lb_sync_open_peer(const LbRepo *src, LbBackend *be, LbRepo **ret) {
        LbRepo *r = calloc(1, sizeof *r);
        if (!r) {
                lb_backend_free(be);
                return -ENOMEM;
        }
        r->be = be;
        r->cfg = src->cfg;
        r->keys = src->keys;
        memcpy(r->key_name, src->key_name, sizeof r->key_name);
        *ret = r;
        return 0;
}

/* ---- parallel copy ---- */

typedef struct Job {
        LbObjType t;
        const Obj *o;
} Job;

typedef struct Pool {
        LbBackend *src, *dst;
        const LbSyncOptions *opt;
        LbSyncStats *stats;
        Job *jobs;
        size_t n;
        pthread_mutex_t lock;
        size_t next;
        int error;
        LbSyncProgress progress;
} Pool;

static void *worker(void *ud) {
        Pool *p = ud;
        LbBuf buf = {};
        for (;;) {
                pthread_mutex_lock(&p->lock);
                if (p->error || p->next >= p->n) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                Job j = p->jobs[p->next++];
                pthread_mutex_unlock(&p->lock);

                int k = copy_object(p->src, p->dst, j.t, j.o->name, j.o->size, &buf);
                if (buf.cap > (64u << 20))
                        lb_buf_free(&buf); /* do not keep a huge pack's buffer around */

                pthread_mutex_lock(&p->lock);
                if (k == -EBADMSG)
                        p->stats->damaged++;
                else if (k < 0) {
                        if (!p->error)
                                p->error = k;
                } else {
                        p->stats->copied[j.t]++;
                        p->stats->bytes_copied += j.o->size;
                }
                p->progress.objects_done++;
                p->progress.bytes_done += j.o->size;
                if (p->opt->progress)
                        p->opt->progress(&p->progress, p->opt->userdata);
                pthread_mutex_unlock(&p->lock);
        }
        lb_buf_free(&buf);
        return NULL;
}

/* Copies jobs[0..n) with the workers; every job of a phase is done (or
 * the sync failed) before the next phase starts. */
static int run_phase(Pool *p, Job *jobs, size_t n) {
        if (n == 0)
                return 0;
        p->jobs = jobs;
        p->n = n;
        p->next = 0;
        unsigned nthreads = p->opt->parallel ? p->opt->parallel : 4;
        if (nthreads > n)
                nthreads = (unsigned) n;
        if (nthreads > 64)
                nthreads = 64;
        pthread_t th[64];
        unsigned started = 0;
        for (; started < nthreads; started++)
                if (pthread_create(&th[started], NULL, worker, p) != 0)
                        break;
        if (started == 0)
                worker(p);
        for (unsigned i = 0; i < started; i++)
                pthread_join(th[i], NULL);
        return p->error;
}

/* Events (results of unattended commands, docs/design.md "Events") come
 * last: they refer to nothing. */
static const LbObjType copy_order[] = { LB_OBJ_PACK, LB_OBJ_INDEX, LB_OBJ_SNAPSHOT, LB_OBJ_EVENT };

int lb_sync_run(LbBackend *src, LbBackend *dst, const LbSyncOptions *o, LbSyncStats *stats) {
        ObjList sl[_LB_OBJ_MAX] = {}, dl[_LB_OBJ_MAX] = {};
        Job *jobs[_LB_OBJ_MAX] = {};
        size_t njobs[_LB_OBJ_MAX] = {};
        Pool p = { .src = src, .dst = dst, .opt = o, .stats = stats };
        pthread_mutex_init(&p.lock, NULL);
        int k = 0;

        /* Source listings newest-first in write order: snapshots, index, packs. */
        static const LbObjType list_order[] = { LB_OBJ_EVENT, LB_OBJ_SNAPSHOT, LB_OBJ_INDEX, LB_OBJ_PACK, LB_OBJ_KEY };
        for (size_t i = 0; k == 0 && i < LB_ARRAY_SIZE(list_order); i++)
                k = list_sorted(src, list_order[i], &sl[list_order[i]]);
        for (size_t i = 0; k == 0 && i < LB_ARRAY_SIZE(list_order); i++)
                k = list_sorted(dst, list_order[i], &dl[list_order[i]]);
        if (k < 0)
                goto done;

        /* What dst lacks (or holds with another size: a damaged copy). */
        for (size_t i = 0; i < LB_ARRAY_SIZE(list_order); i++) {
                LbObjType t = list_order[i];
                jobs[t] = calloc(sl[t].n ? sl[t].n : 1, sizeof *jobs[t]);
                if (!jobs[t]) {
                        k = -ENOMEM;
                        goto done;
                }
                for (size_t j = 0; j < sl[t].n; j++) {
                        const Obj *have = find(&dl[t], sl[t].v[j].name);
                        if (have && have->size == sl[t].v[j].size) {
                                stats->present++;
                                continue;
                        }
                        jobs[t][njobs[t]++] = (Job) { .t = t, .o = &sl[t].v[j] };
                        p.progress.objects_total++;
                        p.progress.bytes_total += sl[t].v[j].size;
                }
        }
        /* New key slots first (a passphrase added locally opens the remote too). */
        k = run_phase(&p, jobs[LB_OBJ_KEY], njobs[LB_OBJ_KEY]);
        for (size_t i = 0; k == 0 && i < LB_ARRAY_SIZE(copy_order); i++)
                k = run_phase(&p, jobs[copy_order[i]], njobs[copy_order[i]]);
        if (k < 0 || !o->delete_extra)
                goto done;
        /* A damaged source object was not copied: deleting the remote's copy
         * of anything now would be premature. */
        if (stats->damaged)
                goto done;

        /* Not events: the copy has its own (a drill run from it records
         * there), and each side trims its events itself. */
        static const LbObjType delete_order[] = { LB_OBJ_SNAPSHOT, LB_OBJ_INDEX, LB_OBJ_PACK, LB_OBJ_KEY };
        for (size_t i = 0; k == 0 && i < LB_ARRAY_SIZE(delete_order); i++) {
                LbObjType t = delete_order[i];
                if (t == LB_OBJ_KEY && sl[t].n == 0)
                        break; /* never leave the remote without a key slot */
                for (size_t j = 0; k == 0 && j < dl[t].n; j++) {
                        if (find(&sl[t], dl[t].v[j].name))
                                continue;
                        k = dst->remove(dst, t, dl[t].v[j].name);
                        if (k == -ENOENT)
                                k = 0;
                        if (k == 0)
                                stats->deleted[t]++;
                }
        }
done:
        if (k == 0 && stats->damaged)
                k = -EBADMSG;
        for (size_t t = 0; t < _LB_OBJ_MAX; t++) {
                objlist_free(&sl[t]);
                objlist_free(&dl[t]);
                free(jobs[t]);
        }
        pthread_mutex_destroy(&p.lock);
        return k;
}
