/* SPDX-License-Identifier: MIT */
/*
 * The file system of `longbox mount` (layout in fs.h). Paths are resolved
 * on every call against an immutable, reference-counted list of snapshots
 * and a cache of decoded trees; file contents are read at random through
 * store/fileread.h and a shared chunk cache; a PostgreSQL snapshot's
 * restore.sql through the same plan `restore --sql` writes
 * (lb_pg_sql_plan_read).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "cmd/mount/fs.h"
#include "store/crypto.h"
#include "store/fileread.h"
#include "store/pg/load.h"
#include "store/walk.h"

#define TREE_SLOTS 4096
#define TREE_BYTES_MAX (64u << 20)
#define PLAN_SLOTS 8
#define SNAP_NAME_MAX 48
static const char restore_sql_name[] = "restore.sql";

/* ---- the snapshot list ---- */

typedef struct Version {
        size_t snap;             /* index in the list */
        LbNode node;             /* the data file */
} Version;

typedef struct TableHist {
        char *name;              /* the data file's name: <schema>.<table> */
        Version *v;
        size_t n, cap;
} TableHist;

typedef struct TableDb {
        char *name;              /* the database directory's name */
        TableHist *t;
        size_t n, cap;
} TableDb;

typedef struct SnapInfo {
        LbSnapshot *s;
        char name[SNAP_NAME_MAX];
        bool is_pg;
} SnapInfo;

typedef struct SnapList {
        unsigned refs;
        SnapInfo *v;             /* oldest first */
        size_t n;
        char **names;            /* snapshot object names seen, sorted (to notice changes) */
        size_t n_names;
        char **tags, **hosts;    /* escaped, sorted, unique */
        size_t n_tags, n_hosts;
        pthread_mutex_t tables_lock;
        bool tables_built;
        TableDb *dbs;
        size_t n_dbs;
} SnapList;

/* ---- caches ---- */

typedef struct CTree {
        unsigned refs;
        LbId id;
        LbTree *t;
        size_t cost;
} CTree;

typedef struct CPlan {
        unsigned refs;
        LbId snap;
        LbPgSqlPlan *plan;
} CPlan;

struct LbFs {
        LbRepo *r;
        LbFsOptions o;
        LbChunkCache *cache;
        pthread_mutex_t lock;            /* list, list_mono, trees, plans */
        pthread_mutex_t refresh_lock;    /* one refresh at a time */
        SnapList *list;
        int64_t list_mono;
        CTree *trees[TREE_SLOTS];
        size_t tree_bytes;
        size_t tree_hand;
        CPlan *plans[PLAN_SLOTS];
        unsigned plan_next;
        int64_t start_ns;
        uid_t uid;
        gid_t gid;
};

static void fs_log(LbFs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fs_log(LbFs *fs, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (m && fs->o.log)
                fs->o.log(m);
        free(m);
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void snaplist_unref(SnapList *l) {
        if (!l || --l->refs > 0)
                return;
        for (size_t i = 0; i < l->n; i++)
                lb_snapshot_free(l->v[i].s);
        free(l->v);
        strv_free(l->names, l->n_names);
        strv_free(l->tags, l->n_tags);
        strv_free(l->hosts, l->n_hosts);
        for (size_t d = 0; d < l->n_dbs; d++) {
                for (size_t t = 0; t < l->dbs[d].n; t++) {
                        for (size_t i = 0; i < l->dbs[d].t[t].n; i++)
                                lb_node_clear(&l->dbs[d].t[t].v[i].node);
                        free(l->dbs[d].t[t].v);
                        free(l->dbs[d].t[t].name);
                }
                free(l->dbs[d].t);
                free(l->dbs[d].name);
        }
        free(l->dbs);
        pthread_mutex_destroy(&l->tables_lock);
        free(l);
}

/* A name for a directory entry: '/' and '%' as %2F and %25, "." and ".."
 * as %2E and %2E%2E (as the PostgreSQL layout's file names). NULL for an
 * empty string or on ENOMEM. */
static char *escape_name(const char *s) {
        if (!s || !*s)
                return NULL;
        if (strcmp(s, ".") == 0)
                return strdup("%2E");
        if (strcmp(s, "..") == 0)
                return strdup("%2E%2E");
        size_t n = strlen(s);
        char *out = malloc(3 * n + 1), *q = out;
        if (!out)
                return NULL;
        for (const char *p = s; *p; p++) {
                if (*p == '/' || *p == '%') {
                        q += sprintf(q, "%%%02X", (unsigned char) *p);
                } else
                        *q++ = *p;
        }
        *q = 0;
        if (q - out > 255) {
                free(out);
                return NULL;
        }
        return out;
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Adds an escaped copy of s to a set (sorted and deduplicated later). */
static int set_add(char ***v, size_t *n, const char *s) {
        char *e = escape_name(s);
        if (!e)
                return 0;    /* empty or too long for a name: not listed */
        char **nv = realloc(*v, (*n + 1) * sizeof *nv);
        if (!nv) {
                free(e);
                return -ENOMEM;
        }
        nv[(*n)++] = e;
        *v = nv;
        return 0;
}

static void set_finish(char **v, size_t *n) {
        lb_qsort(v, *n, sizeof *v, cmp_strp);
        size_t j = 0;
        for (size_t i = 0; i < *n; i++) {
                if (j > 0 && strcmp(v[j - 1], v[i]) == 0) {
                        free(v[i]);
                        continue;
                }
                v[j++] = v[i];
        }
        *n = j;
}

static bool set_has(char *const *v, size_t n, const char *s) {
        return lb_bsearch(&s, v, n, sizeof *v, cmp_strp) != NULL;
}

static void snap_name(const LbSnapshot *s, char out[SNAP_NAME_MAX]) {
        time_t t = (time_t) (s->time_ns / 1000000000);
        if (s->time_ns < 0 && s->time_ns % 1000000000)
                t--;
        struct tm tm;
        gmtime_r(&t, &tm);
        char id[9];
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&s->id, hex);
        memcpy(id, hex, 8);
        id[8] = 0;
        snprintf(out, SNAP_NAME_MAX, "%04d-%02d-%02dT%02d:%02d:%02dZ_%s", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, id);
}

typedef struct Names {
        char **v;
        size_t n;
} Names;

static int collect_name(const char *name, uint64_t size, void *userdata) {
        Names *n = userdata;
        if (!lb_is_hex(name, 2 * LB_ID_SIZE))
                return 0;
        char **nv = realloc(n->v, (n->n + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        n->v = nv;
        if (!(n->v[n->n] = strdup(name)))
                return -ENOMEM;
        n->n++;
        return 0;
}

static bool same_names(const Names *a, const SnapList *l) {
        if (!l || a->n != l->n_names)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (strcmp(a->v[i], l->names[i]) != 0)
                        return false;
        return true;
}

static int snaplist_load(LbFs *fs, Names *names, SnapList **ret) {
        SnapList *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->refs = 1;
        pthread_mutex_init(&l->tables_lock, NULL);
        l->names = LB_TAKE_PTR(names->v);
        l->n_names = names->n;
        names->n = 0;

        LbSnapshot **v = NULL;
        size_t n = 0;
        int k = lb_repo_snapshot_list(fs->r, &v, &n);
        if (k < 0) {
                snaplist_unref(l);
                return k;
        }
        l->v = calloc(n ? n : 1, sizeof *l->v);
        if (!l->v) {
                lb_snapshots_free(v, n);
                snaplist_unref(l);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                l->v[i].s = v[i];
                snap_name(v[i], l->v[i].name);
                l->v[i].is_pg = v[i]->source && strcmp(v[i]->source, "postgresql") == 0;
        }
        l->n = n;
        free(v);
        for (size_t i = 0; k == 0 && i < n; i++) {
                for (size_t t = 0; k == 0 && t < l->v[i].s->n_tags; t++)
                        k = set_add(&l->tags, &l->n_tags, l->v[i].s->tags[t]);
                if (k == 0 && l->v[i].s->hostname)
                        k = set_add(&l->hosts, &l->n_hosts, l->v[i].s->hostname);
        }
        if (k < 0) {
                snaplist_unref(l);
                return k;
        }
        set_finish(l->tags, &l->n_tags);
        set_finish(l->hosts, &l->n_hosts);
        *ret = l;
        return 0;
}

/* Reloads the snapshot list when the repository's snapshot files changed
 * (their names are listed first: cheap), and merges new index files. */
static int do_refresh(LbFs *fs) {
        pthread_mutex_lock(&fs->refresh_lock);
        Names names = {};
        int k = fs->r->be->list(fs->r->be, LB_OBJ_SNAPSHOT, collect_name, &names);
        if (k == 0)
                lb_qsort(names.v, names.n, sizeof *names.v, cmp_strp);
        pthread_mutex_lock(&fs->lock);
        bool same = k == 0 && same_names(&names, fs->list);
        if (same)
                fs->list_mono = lb_mono_ns();
        pthread_mutex_unlock(&fs->lock);
        if (k == 0 && !same) {
                /* New snapshots may reference blobs of new index files. */
                k = lb_repo_index_update(fs->r);
                SnapList *l = NULL;
                if (k == 0)
                        k = snaplist_load(fs, &names, &l);
                if (k == 0) {
                        pthread_mutex_lock(&fs->lock);
                        SnapList *old = fs->list;
                        fs->list = l;
                        fs->list_mono = lb_mono_ns();
                        snaplist_unref(old);
                        pthread_mutex_unlock(&fs->lock);
                }
        }
        strv_free(names.v, names.n);
        pthread_mutex_unlock(&fs->refresh_lock);
        return k;
}

int lb_fs_refresh(LbFs *fs) {
        return do_refresh(fs);
}

/* The current list (a reference); with refresh, reloaded first when it is
 * older than the refresh interval. */
static SnapList *get_list(LbFs *fs, bool refresh) {
        pthread_mutex_lock(&fs->lock);
        bool stale = !fs->list || lb_mono_ns() - fs->list_mono > fs->o.refresh_ns;
        pthread_mutex_unlock(&fs->lock);
        if (refresh && stale) {
                int k = do_refresh(fs);
                if (k < 0)
                        fs_log(fs, "Failed to refresh the snapshot list: %s", strerror(-k));
        }
        pthread_mutex_lock(&fs->lock);
        SnapList *l = fs->list;
        if (l)
                l->refs++;
        pthread_mutex_unlock(&fs->lock);
        return l;
}

static void put_list(LbFs *fs, SnapList *l) {
        if (!l)
                return;
        pthread_mutex_lock(&fs->lock);
        snaplist_unref(l);
        pthread_mutex_unlock(&fs->lock);
}

static SnapInfo *find_snap(SnapList *l, const char *name) {
        for (size_t i = l->n; i-- > 0;)
                if (strcmp(l->v[i].name, name) == 0)
                        return &l->v[i];
        return NULL;
}

/* ---- decoded trees ---- */

static size_t tree_cost(const LbTree *t) {
        size_t c = sizeof *t + t->n * (sizeof(LbNode) + 64);
        for (size_t i = 0; i < t->n; i++)
                c += t->nodes[i].n_content * sizeof(LbContentRef) + t->nodes[i].n_meta * 64;
        return c;
}

static void ctree_unref(CTree *c) {
        if (c && --c->refs == 0) {
                lb_tree_free(c->t);
                free(c);
        }
}

static void put_tree(LbFs *fs, CTree *c) {
        pthread_mutex_lock(&fs->lock);
        ctree_unref(c);
        pthread_mutex_unlock(&fs->lock);
}

static int get_tree(LbFs *fs, const LbId *id, CTree **ret) {
        size_t slot = (size_t) lb_get_le64(id->b) % TREE_SLOTS;
        pthread_mutex_lock(&fs->lock);
        CTree *c = fs->trees[slot];
        if (c && memcmp(c->id.b, id->b, LB_ID_SIZE) == 0) {
                c->refs++;
                pthread_mutex_unlock(&fs->lock);
                *ret = c;
                return 0;
        }
        pthread_mutex_unlock(&fs->lock);

        LbTree *t = NULL;
        int k = lb_repo_load_tree(fs->r, id, &t);
        if (k < 0)
                return k;
        c = calloc(1, sizeof *c);
        if (!c) {
                lb_tree_free(t);
                return -ENOMEM;
        }
        c->refs = 2; /* the slot's and the caller's */
        c->id = *id;
        c->t = t;
        c->cost = tree_cost(t);

        pthread_mutex_lock(&fs->lock);
        if (fs->trees[slot]) {
                fs->tree_bytes -= fs->trees[slot]->cost;
                ctree_unref(fs->trees[slot]);
        }
        fs->trees[slot] = c;
        fs->tree_bytes += c->cost;
        /* Over budget: drop other slots, clock-wise. */
        for (size_t i = 0; fs->tree_bytes > TREE_BYTES_MAX && i < TREE_SLOTS; i++) {
                size_t s = fs->tree_hand++ % TREE_SLOTS;
                if (s == slot || !fs->trees[s])
                        continue;
                fs->tree_bytes -= fs->trees[s]->cost;
                ctree_unref(fs->trees[s]);
                fs->trees[s] = NULL;
        }
        pthread_mutex_unlock(&fs->lock);
        *ret = c;
        return 0;
}

/* ---- restore.sql plans ---- */

static void cplan_unref(CPlan *p) {
        if (p && --p->refs == 0) {
                lb_pg_sql_plan_free(p->plan);
                free(p);
        }
}

static void put_plan(LbFs *fs, CPlan *p) {
        pthread_mutex_lock(&fs->lock);
        cplan_unref(p);
        pthread_mutex_unlock(&fs->lock);
}

static int get_plan(LbFs *fs, const LbSnapshot *s, CPlan **ret) {
        pthread_mutex_lock(&fs->lock);
        for (size_t i = 0; i < PLAN_SLOTS; i++) {
                CPlan *p = fs->plans[i];
                if (p && memcmp(p->snap.b, s->id.b, LB_ID_SIZE) == 0) {
                        p->refs++;
                        pthread_mutex_unlock(&fs->lock);
                        *ret = p;
                        return 0;
                }
        }
        pthread_mutex_unlock(&fs->lock);

        CPlan *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        char *error = NULL;
        int k = lb_pg_sql_plan_new(fs->r, s, &p->plan, &error);
        if (k < 0) {
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&s->id, hex);
                fs_log(fs, "Failed to plan restore.sql of snapshot %.8s: %s", hex, error ? error : strerror(-k));
                free(error);
                free(p);
                return k;
        }
        p->snap = s->id;
        p->refs = 2;
        pthread_mutex_lock(&fs->lock);
        unsigned slot = fs->plan_next++ % PLAN_SLOTS;
        cplan_unref(fs->plans[slot]);
        fs->plans[slot] = p;
        pthread_mutex_unlock(&fs->lock);
        *ret = p;
        return 0;
}

/* ---- the tables/ index ---- */

static int tables_add(SnapList *l, const char *db, const char *table, size_t snap, const LbNode *node) {
        TableDb *d = NULL;
        for (size_t i = 0; i < l->n_dbs; i++)
                if (strcmp(l->dbs[i].name, db) == 0)
                        d = &l->dbs[i];
        if (!d) {
                TableDb *nd = realloc(l->dbs, (l->n_dbs + 1) * sizeof *nd);
                if (!nd)
                        return -ENOMEM;
                l->dbs = nd;
                d = &l->dbs[l->n_dbs];
                *d = (TableDb) { .name = strdup(db) };
                if (!d->name)
                        return -ENOMEM;
                l->n_dbs++;
        }
        TableHist *h = NULL;
        for (size_t i = 0; i < d->n; i++)
                if (strcmp(d->t[i].name, table) == 0)
                        h = &d->t[i];
        if (!h) {
                if (d->n == d->cap) {
                        size_t nc = d->cap ? 2 * d->cap : 16;
                        TableHist *nt = realloc(d->t, nc * sizeof *nt);
                        if (!nt)
                                return -ENOMEM;
                        d->t = nt;
                        d->cap = nc;
                }
                h = &d->t[d->n];
                *h = (TableHist) { .name = strdup(table) };
                if (!h->name)
                        return -ENOMEM;
                d->n++;
        }
        if (h->n == h->cap) {
                size_t nc = h->cap ? 2 * h->cap : 8;
                Version *nv = realloc(h->v, nc * sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                h->v = nv;
                h->cap = nc;
        }
        Version *v = &h->v[h->n];
        *v = (Version) { .snap = snap };
        int k = lb_node_copy(node, &v->node);
        if (k < 0)
                return k;
        h->n++;
        return 0;
}

static int cmp_db(const void *a, const void *b) {
        return strcmp(((const TableDb *) a)->name, ((const TableDb *) b)->name);
}
static int cmp_hist(const void *a, const void *b) {
        return strcmp(((const TableHist *) a)->name, ((const TableHist *) b)->name);
}

/* Builds l's tables/ index once (the layout of every PostgreSQL snapshot). */
static void tables_build(LbFs *fs, SnapList *l) {
        pthread_mutex_lock(&l->tables_lock);
        if (l->tables_built) {
                pthread_mutex_unlock(&l->tables_lock);
                return;
        }
        for (size_t i = 0; i < l->n; i++) {
                if (!l->v[i].is_pg)
                        continue;
                LbPgLayout *lay = NULL;
                char *error = NULL;
                int k = lb_pg_layout_load(fs->r, l->v[i].s, &lay, &error);
                if (k < 0) {
                        fs_log(fs, "Snapshot %s left out of tables/: %s", l->v[i].name, error ? error : strerror(-k));
                        free(error);
                        continue;
                }
                const char *db = lay->dir[0] == '/' ? lay->dir + 1 : lay->dir;
                for (size_t t = 0; k == 0 && t < lay->n_tables; t++)
                        if (lay->tables[t].node.name)
                                k = tables_add(l, db, lay->tables[t].node.name, i, &lay->tables[t].node);
                lb_pg_layout_free(lay);
                if (k < 0)
                        fs_log(fs, "Snapshot %s left out of tables/: %s", l->v[i].name, strerror(-k));
        }
        lb_qsort(l->dbs, l->n_dbs, sizeof *l->dbs, cmp_db);
        for (size_t d = 0; d < l->n_dbs; d++)
                lb_qsort(l->dbs[d].t, l->dbs[d].n, sizeof *l->dbs[d].t, cmp_hist);
        l->tables_built = true;
        pthread_mutex_unlock(&l->tables_lock);
}

static TableDb *find_db(SnapList *l, const char *name) {
        for (size_t i = 0; i < l->n_dbs; i++)
                if (strcmp(l->dbs[i].name, name) == 0)
                        return &l->dbs[i];
        return NULL;
}

static TableHist *find_hist(TableDb *d, const char *name) {
        TableHist key = { .name = (char *) name };
        return lb_bsearch(&key, d->t, d->n, sizeof *d->t, cmp_hist);
}

/* ---- path resolution ---- */

typedef enum Kind {
        K_ROOT,
        K_SNAPSHOTS,      /* /snapshots */
        K_GROUPS,         /* /tags, /hosts */
        K_GROUP,          /* /tags/<tag>, /hosts/<host> */
        K_TABLES,         /* /tables */
        K_TABLEDB,        /* /tables/<db> */
        K_TABLE,          /* /tables/<db>/<table> */
        K_LINK,           /* a symlink made up here */
        K_NODE,           /* a tree entry (or a table version) */
        K_RESTORE_SQL,
} Kind;

typedef struct Res {
        Kind kind;
        SnapList *l;             /* a reference */
        bool hosts;              /* K_GROUPS, K_GROUP: hosts rather than tags */
        char *group;             /* K_GROUP: the escaped tag or host */
        TableDb *db;             /* K_TABLEDB, K_TABLE */
        TableHist *hist;         /* K_TABLE */
        char *link;              /* K_LINK */
        LbNode node;             /* K_NODE */
        bool is_dbdir;           /* K_NODE: the database directory of a PostgreSQL snapshot */
        SnapInfo *snap;          /* K_NODE in a snapshot, K_RESTORE_SQL */
        int64_t mtime_ns;
} Res;

static void res_clear(LbFs *fs, Res *r) {
        put_list(fs, r->l);
        free(r->group);
        free(r->link);
        lb_node_clear(&r->node);
        *r = (Res) {};
}

static bool snap_in_group(const SnapInfo *si, bool hosts, const char *group) {
        if (hosts) {
                _cleanup_free_ char *e = escape_name(si->s->hostname);
                return e && strcmp(e, group) == 0;
        }
        for (size_t t = 0; t < si->s->n_tags; t++) {
                _cleanup_free_ char *e = escape_name(si->s->tags[t]);
                if (e && strcmp(e, group) == 0)
                        return true;
        }
        return false;
}

static const SnapInfo *group_latest(const SnapList *l, bool hosts, const char *group) {
        for (size_t i = l->n; i-- > 0;)
                if (snap_in_group(&l->v[i], hosts, group))
                        return &l->v[i];
        return NULL;
}

static int64_t newest_ns(LbFs *fs, const SnapList *l) {
        return l->n ? l->v[l->n - 1].s->time_ns : fs->start_ns;
}

/* Walks the components after /snapshots/<name> into the snapshot's trees. */
static int resolve_in_snapshot(LbFs *fs, SnapInfo *si, char *save, Res *res) {
        LbNode root = {
                .name = (char *) "/",
                .type = LB_NODE_DIR,
                .mode = 0755,
                .mtime_ns = si->s->time_ns,
                .has_subtree = true,
                .subtree = si->s->tree,
        };
        CTree *cur = NULL;       /* the tree the current node lives in */
        const LbNode *node = &root;
        unsigned depth = 0;
        bool dbdir = false;
        int k = 0;
        for (char *comp = strtok_r(NULL, "/", &save); comp; comp = strtok_r(NULL, "/", &save), depth++) {
                if (node->type != LB_NODE_DIR) {
                        k = -ENOTDIR;
                        break;
                }
                if (!node->has_subtree) {
                        k = -ENOENT;
                        break;
                }
                CTree *next = NULL;
                k = get_tree(fs, &node->subtree, &next);
                if (k < 0)
                        break;
                const LbNode *found = lb_tree_find(next->t, comp);
                if (!found && dbdir && strcmp(comp, restore_sql_name) == 0 && !strtok_r(NULL, "/", &save)) {
                        put_tree(fs, next);
                        put_tree(fs, cur);
                        res->kind = K_RESTORE_SQL;
                        res->snap = si;
                        res->mtime_ns = si->s->time_ns;
                        return 0;
                }
                if (!found) {
                        put_tree(fs, next);
                        k = -ENOENT;
                        break;
                }
                node = found;
                put_tree(fs, cur);
                cur = next;
                /* The database directory: directly under the root of a
                 * PostgreSQL snapshot, holding the schema files. */
                dbdir = false;
                if (si->is_pg && depth == 0 && node->type == LB_NODE_DIR && node->has_subtree) {
                        CTree *sub = NULL;
                        if (get_tree(fs, &node->subtree, &sub) == 0) {
                                dbdir = lb_tree_find(sub->t, "pre-data.sql") && lb_tree_find(sub->t, "post-data.sql") &&
                                        !lb_tree_find(sub->t, restore_sql_name);
                                put_tree(fs, sub);
                        }
                }
        }
        if (k == 0) {
                k = lb_node_copy(node, &res->node);
                if (k == 0) {
                        res->kind = K_NODE;
                        res->snap = si;
                        res->is_dbdir = dbdir;
                        res->mtime_ns = node->mtime_ns;
                }
        }
        put_tree(fs, cur);
        return k;
}

static int resolve_list(LbFs *fs, SnapList *l, const char *path, Res *res) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *save = NULL;
        const char *c0 = strtok_r(copy, "/", &save);
        res->mtime_ns = newest_ns(fs, l);
        if (!c0) {
                res->kind = K_ROOT;
                return 0;
        }
        const char *c1 = NULL, *c2 = NULL, *c3 = NULL;
        if (strcmp(c0, "snapshots") == 0) {
                c1 = strtok_r(NULL, "/", &save);
                if (!c1) {
                        res->kind = K_SNAPSHOTS;
                        return 0;
                }
                SnapInfo *si = find_snap(l, c1);
                if (!si)
                        return -ENOENT;
                return resolve_in_snapshot(fs, si, save, res);
        }
        if (strcmp(c0, "latest") == 0) {
                if (strtok_r(NULL, "/", &save))
                        return -ENOTDIR;
                if (l->n == 0)
                        return -ENOENT;
                res->kind = K_LINK;
                res->link = lb_strdup_printf("snapshots/%s", l->v[l->n - 1].name);
                return res->link ? 0 : -ENOMEM;
        }
        if (strcmp(c0, "tags") == 0 || strcmp(c0, "hosts") == 0) {
                res->hosts = c0[0] == 'h';
                char **set = res->hosts ? l->hosts : l->tags;
                size_t n = res->hosts ? l->n_hosts : l->n_tags;
                c1 = strtok_r(NULL, "/", &save);
                if (!c1) {
                        res->kind = K_GROUPS;
                        return 0;
                }
                if (!set_has(set, n, c1))
                        return -ENOENT;
                const SnapInfo *latest = group_latest(l, res->hosts, c1);
                if (latest)
                        res->mtime_ns = latest->s->time_ns;
                c2 = strtok_r(NULL, "/", &save);
                if (!c2) {
                        res->kind = K_GROUP;
                        res->group = strdup(c1);
                        return res->group ? 0 : -ENOMEM;
                }
                if (strtok_r(NULL, "/", &save))
                        return -ENOTDIR;
                const SnapInfo *si = strcmp(c2, "latest") == 0 ? latest : find_snap(l, c2);
                if (!si || !snap_in_group(si, res->hosts, c1))
                        return -ENOENT;
                res->kind = K_LINK;
                res->link = strcmp(c2, "latest") == 0 ? strdup(si->name) : lb_strdup_printf("../../snapshots/%s", si->name);
                return res->link ? 0 : -ENOMEM;
        }
        if (strcmp(c0, "tables") == 0) {
                tables_build(fs, l);
                c1 = strtok_r(NULL, "/", &save);
                if (!c1) {
                        res->kind = K_TABLES;
                        return 0;
                }
                res->db = find_db(l, c1);
                if (!res->db)
                        return -ENOENT;
                c2 = strtok_r(NULL, "/", &save);
                if (!c2) {
                        res->kind = K_TABLEDB;
                        return 0;
                }
                res->hist = find_hist(res->db, c2);
                if (!res->hist)
                        return -ENOENT;
                res->mtime_ns = l->v[res->hist->v[res->hist->n - 1].snap].s->time_ns;
                c3 = strtok_r(NULL, "/", &save);
                if (!c3) {
                        res->kind = K_TABLE;
                        return 0;
                }
                if (strtok_r(NULL, "/", &save))
                        return -ENOTDIR;
                for (size_t i = 0; i < res->hist->n; i++) {
                        const Version *v = &res->hist->v[i];
                        if (strcmp(l->v[v->snap].name, c3) != 0)
                                continue;
                        int k = lb_node_copy(&v->node, &res->node);
                        if (k < 0)
                                return k;
                        res->kind = K_NODE;
                        res->snap = &l->v[v->snap];
                        res->mtime_ns = v->node.mtime_ns;
                        return 0;
                }
                return -ENOENT;
        }
        return -ENOENT;
}

/* Resolves path; res->l holds a list reference (res_clear drops it). A
 * name not found in a list older than the refresh interval is looked up
 * again in a fresh list, so new snapshots appear at once. */
static int resolve(LbFs *fs, const char *path, bool refresh, Res *res) {
        *res = (Res) {};
        res->l = get_list(fs, refresh);
        if (!res->l)
                return -EIO;
        int k = resolve_list(fs, res->l, path, res);
        if (k == -ENOENT && !refresh) {
                pthread_mutex_lock(&fs->lock);
                bool stale = lb_mono_ns() - fs->list_mono > fs->o.refresh_ns;
                pthread_mutex_unlock(&fs->lock);
                if (stale) {
                        res_clear(fs, res);
                        return resolve(fs, path, true, res);
                }
        }
        if (k < 0)
                res_clear(fs, res);
        return k;
}

/* ---- attributes ---- */

static void set_time(struct timespec *ts, int64_t ns) {
        ts->tv_sec = (time_t) (ns / 1000000000);
        ts->tv_nsec = (long) (ns % 1000000000);
        if (ts->tv_nsec < 0) {
                ts->tv_nsec += 1000000000;
                ts->tv_sec--;
        }
}

static mode_t node_type_bits(LbNodeType t) {
        switch (t) {
        case LB_NODE_FILE:
                return S_IFREG;
        case LB_NODE_DIR:
                return S_IFDIR;
        case LB_NODE_SYMLINK:
                return S_IFLNK;
        case LB_NODE_FIFO:
                return S_IFIFO;
        case LB_NODE_CHARDEV:
                return S_IFCHR;
        case LB_NODE_BLOCKDEV:
                return S_IFBLK;
        default:
                return S_IFREG;
        }
}

static int res_stat(LbFs *fs, Res *r, struct stat *st) {
        memset(st, 0, sizeof *st);
        st->st_uid = fs->uid;
        st->st_gid = fs->gid;
        st->st_blksize = 128 * 1024;
        set_time(&st->st_mtim, r->mtime_ns);
        switch (r->kind) {
        case K_ROOT:
        case K_SNAPSHOTS:
        case K_GROUPS:
        case K_GROUP:
        case K_TABLES:
        case K_TABLEDB:
        case K_TABLE:
                st->st_mode = S_IFDIR | 0555;
                st->st_nlink = 2;
                break;
        case K_LINK:
                st->st_mode = S_IFLNK | 0777;
                st->st_nlink = 1;
                st->st_size = (off_t) strlen(r->link);
                break;
        case K_RESTORE_SQL: {
                CPlan *p = NULL;
                int k = get_plan(fs, r->snap->s, &p);
                if (k < 0)
                        return -EIO;
                st->st_mode = S_IFREG | 0444;
                st->st_nlink = 1;
                st->st_size = (off_t) lb_pg_sql_plan_size(p->plan);
                put_plan(fs, p);
                break;
        }
        case K_NODE: {
                const LbNode *n = &r->node;
                st->st_mode = node_type_bits(n->type) | (n->mode & 07777);
                st->st_nlink = n->type == LB_NODE_DIR ? 2 : 1;
                st->st_uid = n->uid;
                st->st_gid = n->gid;
                st->st_rdev = (dev_t) n->rdev;
                if (n->type == LB_NODE_FILE)
                        st->st_size = (off_t) n->size;
                else if (n->type == LB_NODE_SYMLINK && n->link)
                        st->st_size = (off_t) strlen(n->link);
                break;
        }
        }
        st->st_blocks = (st->st_size + 511) / 512;
        st->st_atim = st->st_ctim = st->st_mtim;
        return 0;
}

/* ---- FUSE operations ---- */

static LbFs *ctx_fs(void) {
        return fuse_get_context()->private_data;
}

typedef struct Handle {
        LbFileReader *fr;        /* a file */
        CPlan *plan;             /* restore.sql */
        char *path;              /* the path opened (nullpath_ok: calls on handles get none) */
        pthread_mutex_t lock;
        bool logged;             /* a damaged-chunk message was given for this open */
} Handle;

static void handle_free(Handle *h) {
        if (!h)
                return;
        lb_file_reader_free(h->fr);
        free(h->path);
        pthread_mutex_destroy(&h->lock);
        free(h);
}

static Handle *handle_new(const char *path) {
        Handle *h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        pthread_mutex_init(&h->lock, NULL);
        h->path = strdup(path);
        if (!h->path) {
                handle_free(h);
                return NULL;
        }
        return h;
}

static const char *handle_path(const char *path, struct fuse_file_info *fi) {
        if (path)
                return path;
        Handle *h = fi ? (Handle *) (uintptr_t) fi->fh : NULL;
        return h ? h->path : NULL;
}

static int fs_getattr(const char *path_arg, struct stat *st, struct fuse_file_info *fi) {
        LbFs *fs = ctx_fs();
        const char *path = handle_path(path_arg, fi);
        if (!path)
                return -EIO;
        Res r;
        int k = resolve(fs, path, false, &r);
        if (k < 0)
                return k == -ENOMEM || k == -ENOENT || k == -ENOTDIR ? k : -EIO;
        k = res_stat(fs, &r, st);
        res_clear(fs, &r);
        return k;
}

static int fs_readlink(const char *path, char *buf, size_t size) {
        LbFs *fs = ctx_fs();
        Res r;
        int k = resolve(fs, path, false, &r);
        if (k < 0)
                return k == -ENOMEM || k == -ENOENT || k == -ENOTDIR ? k : -EIO;
        const char *target = r.kind == K_LINK ? r.link : r.kind == K_NODE && r.node.type == LB_NODE_SYMLINK ? r.node.link : NULL;
        if (!target || size == 0)
                k = -EINVAL;
        else
                snprintf(buf, size, "%s", target);
        res_clear(fs, &r);
        return k;
}

static int fill(void *buf, fuse_fill_dir_t filler, const char *name, mode_t type) {
        struct stat st = { .st_mode = type };
        return filler(buf, name, &st, 0, 0) ? -ENOMEM : 0;
}

/* With nullpath_ok, readdir may be given no path: opendir keeps it. */
static int fs_opendir(const char *path, struct fuse_file_info *fi) {
        Handle *h = handle_new(path);
        if (!h)
                return -ENOMEM;
        fi->fh = (uint64_t) (uintptr_t) h;
        return 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi) {
        handle_free((Handle *) (uintptr_t) fi->fh);
        return 0;
}

static int fs_readdir(const char *path_arg, void *buf, fuse_fill_dir_t filler, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
        LbFs *fs = ctx_fs();
        const char *path = handle_path(path_arg, fi);
        if (!path)
                return -EIO;
        Res r;
        /* Listing a directory made of the snapshot list refreshes it. */
        bool top = strncmp(path, "/snapshots/", 11) != 0;
        int k = resolve(fs, path, top, &r);
        if (k < 0)
                return k == -ENOMEM || k == -ENOENT || k == -ENOTDIR ? k : -EIO;
        SnapList *l = r.l;
        if ((k = fill(buf, filler, ".", S_IFDIR)) < 0 || (k = fill(buf, filler, "..", S_IFDIR)) < 0)
                goto done;
        switch (r.kind) {
        case K_ROOT:
                if ((k = fill(buf, filler, "hosts", S_IFDIR)) < 0 ||
                    (l->n > 0 && (k = fill(buf, filler, "latest", S_IFLNK)) < 0) ||
                    (k = fill(buf, filler, "snapshots", S_IFDIR)) < 0 || (k = fill(buf, filler, "tables", S_IFDIR)) < 0 ||
                    (k = fill(buf, filler, "tags", S_IFDIR)) < 0)
                        goto done;
                break;
        case K_SNAPSHOTS:
                for (size_t i = 0; i < l->n && k == 0; i++)
                        k = fill(buf, filler, l->v[i].name, S_IFDIR);
                break;
        case K_GROUPS: {
                char **set = r.hosts ? l->hosts : l->tags;
                size_t n = r.hosts ? l->n_hosts : l->n_tags;
                for (size_t i = 0; i < n && k == 0; i++)
                        k = fill(buf, filler, set[i], S_IFDIR);
                break;
        }
        case K_GROUP:
                for (size_t i = 0; i < l->n && k == 0; i++)
                        if (snap_in_group(&l->v[i], r.hosts, r.group))
                                k = fill(buf, filler, l->v[i].name, S_IFLNK);
                if (k == 0)
                        k = fill(buf, filler, "latest", S_IFLNK);
                break;
        case K_TABLES:
                for (size_t i = 0; i < l->n_dbs && k == 0; i++)
                        k = fill(buf, filler, l->dbs[i].name, S_IFDIR);
                break;
        case K_TABLEDB:
                for (size_t i = 0; i < r.db->n && k == 0; i++)
                        k = fill(buf, filler, r.db->t[i].name, S_IFDIR);
                break;
        case K_TABLE:
                for (size_t i = 0; i < r.hist->n && k == 0; i++)
                        k = fill(buf, filler, l->v[r.hist->v[i].snap].name, S_IFREG);
                break;
        case K_NODE: {
                if (r.node.type != LB_NODE_DIR) {
                        k = -ENOTDIR;
                        break;
                }
                if (!r.node.has_subtree)
                        break;
                CTree *t = NULL;
                k = get_tree(fs, &r.node.subtree, &t);
                if (k < 0) {
                        fs_log(fs, "Failed to read directory %s: %s", path, strerror(-k));
                        k = -EIO;
                        break;
                }
                for (size_t i = 0; i < t->t->n && k == 0; i++)
                        k = fill(buf, filler, t->t->nodes[i].name, node_type_bits(t->t->nodes[i].type));
                put_tree(fs, t);
                if (k == 0 && r.is_dbdir)
                        k = fill(buf, filler, restore_sql_name, S_IFREG);
                break;
        }
        default:
                k = -ENOTDIR;
        }
done:
        res_clear(fs, &r);
        return k;
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
        LbFs *fs = ctx_fs();
        if ((fi->flags & O_ACCMODE) != O_RDONLY)
                return -EROFS;
        Res r;
        int k = resolve(fs, path, false, &r);
        if (k < 0)
                return k == -ENOMEM || k == -ENOENT || k == -ENOTDIR ? k : -EIO;
        Handle *h = handle_new(path);
        if (!h) {
                res_clear(fs, &r);
                return -ENOMEM;
        }
        if (r.kind == K_RESTORE_SQL)
                k = get_plan(fs, r.snap->s, &h->plan) < 0 ? -EIO : 0;
        else if (r.kind == K_NODE && r.node.type == LB_NODE_FILE) {
                k = lb_file_reader_new(fs->cache, &r.node, &h->fr);
                if (k == -EBADMSG) {
                        fs_log(fs, "Failed to open %s: its chunk sizes do not add up to its size (damaged tree)", path);
                        k = -EIO;
                }
                if (k == 0)
                        lb_file_reader_set_readahead(h->fr, fs->o.readahead_bytes);
        } else
                k = r.kind == K_NODE && r.node.type == LB_NODE_DIR ? -EISDIR : -EACCES;
        res_clear(fs, &r);
        if (k < 0) {
                handle_free(h);
                return k;
        }
        fi->fh = (uint64_t) (uintptr_t) h;
        fi->keep_cache = 1;      /* snapshots never change */
        return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
        LbFs *fs = ctx_fs();
        Handle *h = (Handle *) (uintptr_t) fi->fh;
        if (offset < 0)
                return -EINVAL;
        size_t n = 0;
        LbContentFailure failure = {};
        int k = h->fr ? lb_file_reader_read(h->fr, (uint64_t) offset, buf, size, &n, &failure)
                      : lb_pg_sql_plan_read(h->plan->plan, fs->cache, (uint64_t) offset, buf, size, &n, &failure);
        if (k == 0)
                return (int) n;
        if (k == -ENOMEM)
                return k;
        pthread_mutex_lock(&h->lock);
        bool first = !h->logged;
        h->logged = true;
        pthread_mutex_unlock(&h->lock);
        if (first || !failure.has_id) {
                if (failure.has_id) {
                        char hex[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&failure.id, hex);
                        fs_log(fs, "Failed to read %s at offset %" PRIu64 ": %s %s is %s; run 'longbox check --read-data'",
                               h->path, (uint64_t) offset, failure.is_list ? "chunk list" : "chunk", hex,
                               k == -ENOENT ? "missing from the repository" : "damaged");
                } else
                        fs_log(fs, "Failed to read %s at offset %" PRIu64 ": %s", h->path, (uint64_t) offset,
                               strerror(-k));
        }
        return -EIO;
}

static int fs_release(const char *path, struct fuse_file_info *fi) {
        LbFs *fs = ctx_fs();
        Handle *h = (Handle *) (uintptr_t) fi->fh;
        if (!h)
                return 0;
        if (h->plan)
                put_plan(fs, h->plan);
        handle_free(h);
        return 0;
}

static int fs_statfs(const char *path, struct statvfs *st) {
        memset(st, 0, sizeof *st);
        st->f_bsize = st->f_frsize = 4096;
        st->f_namemax = 255;
        st->f_flag = ST_RDONLY;
        return 0;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
        cfg->nullpath_ok = 1;    /* reads and releases use the handle, not the path */
        cfg->entry_timeout = 1.0;
        cfg->attr_timeout = 1.0;
        cfg->negative_timeout = 0; /* a new snapshot's name is found at once */
        cfg->use_ino = 0;
        conn->want |= conn->capable & FUSE_CAP_ASYNC_READ;
        return fuse_get_context()->private_data;
}

static const struct fuse_operations ops = {
        .init = fs_init,
        .getattr = fs_getattr,
        .readlink = fs_readlink,
        .opendir = fs_opendir,
        .readdir = fs_readdir,
        .releasedir = fs_releasedir,
        .open = fs_open,
        .read = fs_read,
        .release = fs_release,
        .statfs = fs_statfs,
};

const struct fuse_operations *lb_fs_operations(void) {
        return &ops;
}

int lb_fs_new(LbRepo *r, const LbFsOptions *o, LbFs **ret) {
        LbFs *fs = calloc(1, sizeof *fs);
        if (!fs)
                return -ENOMEM;
        fs->r = r;
        fs->o = *o;
        fs->start_ns = lb_now_ns();
        fs->uid = getuid();
        fs->gid = getgid();
        pthread_mutex_init(&fs->lock, NULL);
        pthread_mutex_init(&fs->refresh_lock, NULL);
        int k = lb_chunk_cache_new(r, o->cache_bytes, o->workers, &fs->cache);
        if (k < 0) {
                lb_fs_free(fs);
                return k;
        }
        *ret = fs;
        return 0;
}

LbFs *lb_fs_free(LbFs *fs) {
        if (!fs)
                return NULL;
        for (size_t i = 0; i < PLAN_SLOTS; i++)
                cplan_unref(fs->plans[i]);
        for (size_t i = 0; i < TREE_SLOTS; i++)
                ctree_unref(fs->trees[i]);
        snaplist_unref(fs->list);
        /* After the plans: their readers use the cache. */
        lb_chunk_cache_free(fs->cache);
        pthread_mutex_destroy(&fs->refresh_lock);
        pthread_mutex_destroy(&fs->lock);
        free(fs);
        return NULL;
}
