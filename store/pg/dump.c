/* SPDX-License-Identifier: MIT */
/* longbox backup --db: one consistent snapshot of a PostgreSQL database,
 * read by a leader, N COPY workers and pg_dump (see store/pg/dump.h). */
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <libpq/libpq-fs.h>

#include "store/builder.h"
#include "store/pg/dump.h"
#include "store/pg/pg.h"
#include "store/snapshot.h"
#include "store/walk.h"

/* How long a worker or pg_dump waits for a lock. The leader already holds
 * ACCESS SHARE on every table, so a wait means an exclusive request queued
 * behind the leader: without a limit that would wait forever. */
#define LOCK_WAIT "120s"
#define COPY_BUF (256u * 1024)
#define PROGRESS_EVERY (8u * 1024 * 1024)
#define DATABASE_DUMP_MAX (64u * 1024 * 1024)
#define JOBS_DEFAULT 2
#define JOBS_MAX 64

typedef struct Table {
        uint32_t oid;
        char *schema, *name;
        char *label;            /* schema.name, unquoted: for messages and progress */
        char *qualified;        /* "schema"."name" */
        char *columns;          /* "a", "b" (no generated or dropped columns); may be "" */
        char *pk;               /* primary key columns, quoted; NULL if none */
        char *filter;           /* extension config table: its condition ("WHERE ..."), may be "" */
        char *file;             /* the file name under data/ */
        bool partitioned;       /* locked only: its rows live in its partitions */
} Table;

typedef struct Job {
        Table *table;           /* NULL: a large object */
        uint32_t oid;
} Job;

typedef struct Ctx Ctx;

typedef struct Worker {
        Ctx *x;
        unsigned no;
        pthread_t thread;
        bool started;
        PGcancel *cancel;       /* under x->lock */
        char current[160];      /* the table or large object being copied, "" if none; under x->lock */
        uint8_t *buf;
        size_t have;
} Worker;

struct Ctx {
        LbRepo *repo;
        const LbPgBackupOptions *o;
        LbBuilder *b;
        const LbSnapshot *parent;       /* the database's previous snapshot, or NULL */
        char *conninfo;                 /* o->conninfo, a plain name made "dbname='name'" */
        char dbname[64];
        char *root;                     /* "/<db>" */
        int64_t start_ns;               /* when the database snapshot was taken */
        char snapshot_id[64];
        int major;
        int64_t mtime_ns;
        char *worker_conninfo;          /* pinned to the leader's server; holds the password */
        LbPgChildConn child;
        char *pg_dump, *pg_dumpall;

        Table *tables;
        size_t n_tables;
        Job *jobs;
        size_t n_jobs;

        pthread_mutex_t lock;           /* everything below */
        pthread_cond_t cond;
        size_t next_job;
        unsigned running;
        int error;
        char *error_msg;
        atomic_bool failed;
        uint64_t rows, tables_done, los_done;
        Worker *workers;
        unsigned n_workers;

        pthread_mutex_t cb_lock;        /* the callbacks */
        uint64_t items_done;
        uint64_t bytes_estimate;        /* LbPgProgress.bytes_total */
};

/* ---- errors ---- */

/* One line: whitespace runs (libpq's "ERROR:  x\nDETAIL:  y") become one space. */
static char *tidy(const char *m) {
        char *s = strdup(m && *m ? m : "unknown error");
        if (!s)
                return NULL;
        size_t j = 0;
        for (size_t i = 0; s[i]; i++) {
                bool ws = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
                if (ws && (j == 0 || s[j - 1] == ' '))
                        continue;
                s[j++] = ws ? ' ' : s[i];
        }
        while (j > 0 && s[j - 1] == ' ')
                j--;
        s[j] = 0;
        return s;
}

/* Records the first failure (later ones are consequences) and tells every
 * thread to stop. Returns err. */
static int fail(Ctx *x, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Ctx *x, int err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        pthread_mutex_lock(&x->lock);
        if (x->error == 0) {
                x->error = err < 0 ? err : -EIO;
                /* A lost server fails every connection at once, and any of
                 * them may report first: name what was being copied. */
                LbBuf lost = {};
                size_t n_lost = 0;
                int k = 0;
                for (unsigned i = 0; m && err == -ECONNRESET && k == 0 && i < x->n_workers; i++) {
                        const char *cur = x->workers[i].current;
                        if (!*cur || strstr(m, cur))
                                continue;
                        static const char lead[] = " (the connection was lost while copying ";
                        if (n_lost++ == 0) {
                                k = lb_buf_append(&lost, m, strlen(m));
                                if (k == 0)
                                        k = lb_buf_append(&lost, lead, sizeof lead - 1);
                        } else
                                k = lb_buf_append(&lost, ", ", 2);
                        if (k == 0)
                                k = lb_buf_append(&lost, cur, strlen(cur));
                }
                if (n_lost > 0 && k == 0 && lb_buf_append(&lost, ")", 2) == 0) {
                        free(m);
                        m = (char *) LB_TAKE_PTR(lost.data);
                }
                lb_buf_free(&lost);
                x->error_msg = m;
                m = NULL;
        }
        atomic_store(&x->failed, true);
        pthread_cond_broadcast(&x->cond);
        pthread_mutex_unlock(&x->lock);
        free(m);
        return err;
}

/* fail() with a libpq message: "<what> failed: <message>". */
static int fail_pg(Ctx *x, int err, const char *msg, const char *what_fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_pg(Ctx *x, int err, const char *msg, const char *what_fmt, ...) {
        va_list ap;
        va_start(ap, what_fmt);
        _cleanup_free_ char *what = lb_strdup_vprintf(what_fmt, ap);
        va_end(ap);
        _cleanup_free_ char *t = tidy(msg);
        const char *hint = "";
        if (t && (strstr(t, "lock timeout") || strstr(t, "could not obtain lock")))
                hint = " (another session is waiting for an exclusive lock on it; the backup does not wait "
                       "longer than " LOCK_WAIT ")";
        return fail(x, err, "%s failed: %s%s", what ? what : "a step", t ? t : "out of memory", hint);
}

/* libpq prints notices (a server's "terminating connection due to
 * immediate shutdown", ...) on stderr; library code does not print. */
static void ignore_notice(void *arg, const char *message) {
}

static bool failed(Ctx *x) {
        return atomic_load(&x->failed);
}

static void warn(Ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(Ctx *x, const char *fmt, ...) {
        if (!x->o->warn)
                return;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        pthread_mutex_lock(&x->cb_lock);
        x->o->warn(x->o->userdata, m ? m : "out of memory");
        pthread_mutex_unlock(&x->cb_lock);
}

static void progress(Ctx *x, const char *item, uint64_t bytes, bool done, bool counts) {
        pthread_mutex_lock(&x->cb_lock);
        if (done && counts)
                x->items_done++;
        if (x->o->progress) {
                LbPgProgress p = { .item = item, .bytes = bytes, .done = done, .items_done = x->items_done,
                                   .items_total = x->n_jobs, .bytes_total = x->bytes_estimate };
                x->o->progress(x->o->userdata, &p);
        }
        pthread_mutex_unlock(&x->cb_lock);
}

/* ---- names ---- */

static int escape_into(LbBuf *b, const char *s) {
        int k = 0;
        if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
                for (const char *p = s; k == 0 && *p; p++)
                        k = lb_buf_append(b, "%2E", 3);
                return k;
        }
        for (const char *p = s; k == 0 && *p; p++) {
                if (*p == '%')
                        k = lb_buf_append(b, "%25", 3);
                else if (*p == '/')
                        k = lb_buf_append(b, "%2F", 3);
                else
                        k = lb_buf_append_u8(b, (uint8_t) *p);
        }
        return k;
}

char *lb_pg_file_name(const char *schema, const char *table) {
        LbBuf b = {};
        int k = escape_into(&b, schema);
        if (k == 0 && table) {
                k = lb_buf_append_u8(&b, '.');
                if (k == 0)
                        k = escape_into(&b, table);
        }
        if (k == 0)
                k = lb_buf_append_u8(&b, 0);
        if (k < 0) {
                lb_buf_free(&b);
                return NULL;
        }
        return (char *) b.data;
}

/* A plain database name ("shop", as psql -d takes it) as a conninfo;
 * anything with '=' or a URI prefix as it is. NULL on ENOMEM. */
static char *conninfo_normalize(const char *conninfo) {
        if (strchr(conninfo, '=') || strncmp(conninfo, "postgresql://", 13) == 0 ||
            strncmp(conninfo, "postgres://", 11) == 0)
                return strdup(conninfo);
        LbBuf b = {};
        int k = lb_buf_append(&b, "dbname='", 8);
        for (const char *p = conninfo; k == 0 && *p; p++) {
                if (*p == '\'' || *p == '\\')
                        k = lb_buf_append_u8(&b, '\\');
                if (k == 0)
                        k = lb_buf_append_u8(&b, (uint8_t) *p);
        }
        if (k == 0)
                k = lb_buf_append(&b, "'", 2); /* with the NUL */
        if (k < 0) {
                lb_buf_free(&b);
                return NULL;
        }
        return (char *) b.data;
}

int lb_pg_conninfo_dbname(const char *conninfo_in, char **ret) {
        _cleanup_free_ char *conninfo = conninfo_normalize(conninfo_in);
        if (!conninfo)
                return -ENOMEM;
        char *err = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
        if (!opts) {
                PQfreemem(err);
                return -EINVAL;
        }
        const char *db = NULL, *user = NULL;
        bool service = false;
        for (PQconninfoOption *o = opts; o->keyword; o++) {
                if (!o->val || !*o->val)
                        continue;
                if (strcmp(o->keyword, "dbname") == 0)
                        db = o->val;
                else if (strcmp(o->keyword, "user") == 0)
                        user = o->val;
                else if (strcmp(o->keyword, "service") == 0)
                        service = true;
        }
        if (!db || strchr(db, '=') || strstr(db, "://"))
                db = getenv("PGDATABASE");
        if ((!db || !*db) && !service && !getenv("PGSERVICE")) {
                /* libpq's default: the user name. */
                if (!user || !*user)
                        user = getenv("PGUSER");
                struct passwd pw, *pwp = NULL;
                char buf[4096];
                if ((!user || !*user) && getpwuid_r(getuid(), &pw, buf, sizeof buf, &pwp) == 0 && pwp)
                        user = pwp->pw_name;
                db = user;
        }
        char *s = db && *db ? strdup(db) : NULL;
        PQconninfoFree(opts);
        if (!s)
                return db && *db ? -ENOMEM : -ENOENT;
        *ret = s;
        return 0;
}

/* ---- the catalog ---- */

static void table_clear(Table *t) {
        free(t->schema);
        free(t->name);
        free(t->label);
        free(t->qualified);
        free(t->columns);
        free(t->pk);
        free(t->filter);
        free(t->file);
}

static char *getv(PGresult *res, int row, int col) {
        return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static const char *const member_filter =
        /* Not an extension's member, unless the extension marked it as
         * configuration (pg_extension_config_dump): pg_dump dumps those. */
        "(NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
        "AND d.objid = c.oid AND d.deptype = 'e') "
        "OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE c.oid = ANY (e.extconfig)))";

static int table_cmp_file(const void *a, const void *b) {
        return strcmp((*(Table *const *) a)->file, (*(Table *const *) b)->file);
}

/* Unique file names: a collision ("a.b"."c" and "a"."b.c") or a name too
 * long for a tree entry gets "~<oid>" (the metadata has the real names). */
static int table_files(Ctx *x) {
        for (size_t i = 0; i < x->n_tables; i++) {
                Table *t = &x->tables[i];
                if (!(t->file = lb_pg_file_name(t->schema, t->name)))
                        return -ENOMEM;
                if (strlen(t->file) > 255) {
                        char *s = lb_strdup_printf("%.200s~%" PRIu32, t->file, t->oid);
                        if (!s)
                                return -ENOMEM;
                        free(t->file);
                        t->file = s;
                }
        }
        _cleanup_free_ Table **v = calloc(x->n_tables + 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < x->n_tables; i++)
                if (!x->tables[i].partitioned)
                        v[n++] = &x->tables[i];
        lb_qsort(v, n, sizeof *v, table_cmp_file);
        for (size_t i = 1; i < n; i++)
                if (strcmp(v[i - 1]->file, v[i]->file) == 0)
                        for (size_t j = i - 1; j <= i; j++) {
                                if (strchr(v[j]->file, '~'))
                                        continue;
                                char *s = lb_strdup_printf("%.200s~%" PRIu32, v[j]->file, v[j]->oid);
                                if (!s)
                                        return -ENOMEM;
                                free(v[j]->file);
                                v[j]->file = s;
                        }
        return 0;
}

static int list_tables(Ctx *x, PGconn *c) {
        const char *quote = "'\"' || pg_catalog.replace(a.attname, '\"', '\"\"') || '\"'";
        _cleanup_free_ char *sql = lb_strdup_printf(
                "SELECT c.oid, n.nspname, c.relname, c.relkind, "
                "(SELECT pg_catalog.string_agg(%s, ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a "
                "  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped%s), "
                "(SELECT pg_catalog.string_agg(%s, ', ' ORDER BY k.i) FROM pg_catalog.pg_index x "
                "  CROSS JOIN LATERAL pg_catalog.unnest(x.indkey) WITH ORDINALITY AS k(attnum, i) "
                "  JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum "
                "  WHERE x.indrelid = c.oid AND x.indisprimary), "
                "(SELECT e.extcondition[pg_catalog.array_position(e.extconfig, c.oid)] "
                "  FROM pg_catalog.pg_extension e WHERE c.oid = ANY (e.extconfig) LIMIT 1), "
                "EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE c.oid = ANY (e.extconfig)) "
                "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' "
                "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND %s "
                "ORDER BY c.relpages DESC, n.nspname, c.relname",
                quote, x->major >= 12 ? " AND a.attgenerated = ''" : "", quote, member_filter);
        if (!sql)
                return fail(x, -ENOMEM, "listing the tables failed: out of memory");
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_free_ char *msg = NULL;
        int k = lb_pg_exec(c, sql, &res, &msg);
        if (k < 0)
                return fail_pg(x, k, msg, "listing the tables");
        int n = PQntuples(res);
        x->tables = calloc((size_t) n + 1, sizeof *x->tables);
        if (!x->tables)
                return fail(x, -ENOMEM, "listing the tables failed: out of memory");
        for (int i = 0; i < n; i++) {
                Table *t = &x->tables[x->n_tables++];
                t->oid = (uint32_t) strtoul(PQgetvalue(res, i, 0), NULL, 10);
                t->partitioned = PQgetvalue(res, i, 3)[0] == 'p';
                const char *cols = getv(res, i, 4), *pk = getv(res, i, 5), *cond = getv(res, i, 6);
                bool config = PQgetvalue(res, i, 7)[0] == 't';
                t->schema = strdup(PQgetvalue(res, i, 1));
                t->name = strdup(PQgetvalue(res, i, 2));
                t->columns = strdup(cols ? cols : "");
                t->pk = pk ? strdup(pk) : NULL;
                t->filter = config ? strdup(cond ? cond : "") : NULL;
                if (!t->schema || !t->name || !t->columns || (pk && !t->pk) || (config && !t->filter))
                        return fail(x, -ENOMEM, "listing the tables failed: out of memory");
                t->label = lb_strdup_printf("%s.%s", t->schema, t->name);
                t->qualified = lb_pg_qualified(c, t->schema, t->name);
                if (!t->label || !t->qualified)
                        return fail(x, -ENOMEM, "listing the tables failed: out of memory");
        }
        if (table_files(x) < 0)
                return fail(x, -ENOMEM, "listing the tables failed: out of memory");
        return 0;
}

/* ACCESS SHARE on every table dumped and every partitioned parent (pg_dump
 * locks those too), before any worker starts. */
static int lock_tables(Ctx *x, PGconn *c) {
        for (size_t i = 0; i < x->n_tables; i++) {
                Table *t = &x->tables[i];
                _cleanup_free_ char *sql = lb_strdup_printf("LOCK TABLE ONLY %s IN ACCESS SHARE MODE", t->qualified);
                if (!sql)
                        return fail(x, -ENOMEM, "LOCK of %s failed: out of memory", t->label);
                _cleanup_free_ char *msg = NULL;
                int k = lb_pg_exec(c, sql, NULL, &msg);
                if (k < 0)
                        return fail_pg(x, k, msg, "LOCK of %s", t->label);
        }
        return 0;
}

static int list_large_objects(Ctx *x, PGconn *c, uint32_t **ret, size_t *ret_n) {
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_free_ char *msg = NULL;
        int k = lb_pg_exec(c, "SELECT oid FROM pg_catalog.pg_largeobject_metadata ORDER BY oid", &res, &msg);
        if (k < 0)
                return fail_pg(x, k, msg, "listing the large objects");
        int n = PQntuples(res);
        uint32_t *v = calloc((size_t) n + 1, sizeof *v);
        if (!v)
                return fail(x, -ENOMEM, "listing the large objects failed: out of memory");
        for (int i = 0; i < n; i++)
                v[i] = (uint32_t) strtoul(PQgetvalue(res, i, 0), NULL, 10);
        *ret = v;
        *ret_n = (size_t) n;
        return 0;
}

/* Tables largest first (the list is ordered by relpages), then large objects. */
static int make_jobs(Ctx *x, const uint32_t *los, size_t n_los) {
        x->jobs = calloc(x->n_tables + n_los + 1, sizeof *x->jobs);
        if (!x->jobs)
                return fail(x, -ENOMEM, "planning the backup failed: out of memory");
        for (size_t i = 0; i < x->n_tables; i++)
                if (!x->tables[i].partitioned)
                        x->jobs[x->n_jobs++] = (Job) { .table = &x->tables[i] };
        for (size_t i = 0; i < n_los; i++)
                x->jobs[x->n_jobs++] = (Job) { .oid = los[i] };
        return 0;
}

/* ---- files ---- */

/* Opens a file of the snapshot. Its version in the previous snapshot, if
 * any, lets new chunks be stored as deltas against the old ones at the
 * same place: a table where a few rows per page changed costs what
 * changed, not every page (docs/design.md "Deltas"). */
static int file_open(Ctx *x, const char *path, const LbNode *tmpl, LbBuilderFile **ret) {
        LbNode n = { .type = LB_NODE_FILE, .mode = 0600, .uid = (uint32_t) getuid(), .gid = (uint32_t) getgid(),
                     .mtime_ns = x->mtime_ns };
        LbBuilderFile *f;
        int k = lb_builder_file_open(x->b, path, tmpl ? tmpl : &n, &f);
        if (k < 0)
                return k;
        LbNode prev;
        if (x->parent && lb_snapshot_lookup_path(x->repo, x->parent, path, &prev) == 0) {
                k = lb_builder_file_set_prev(f, &prev);
                lb_node_clear(&prev);
                if (k < 0) {
                        lb_builder_file_abort(f);
                        return k;
                }
        }
        *ret = f;
        return 0;
}

/* Records the file's checksum for the change counts, then closes it. */
static int file_close(Ctx *x, const char *path, LbBuilderFile *f, const LbMeta *meta, size_t n_meta) {
        return lb_builder_file_close(f, meta, n_meta);
}

/* A whole file from memory. */
static int put_file(Ctx *x, const char *name, const void *p, size_t n, const LbNode *tmpl) {
        _cleanup_free_ char *path = lb_strdup_printf("%s/%s", x->root, name);
        if (!path)
                return -ENOMEM;
        LbBuilderFile *f;
        int k = file_open(x, path, tmpl, &f);
        if (k < 0)
                return k;
        k = lb_builder_file_write(f, p, n);
        if (k < 0) {
                lb_builder_file_abort(f);
                return k;
        }
        return file_close(x, path, f, NULL, 0);
}

static int add_dir(Ctx *x, const char *path) {
        LbNode n = { .type = LB_NODE_DIR, .mode = 0755, .uid = (uint32_t) getuid(), .gid = (uint32_t) getgid(),
                     .mtime_ns = x->mtime_ns };
        return lb_builder_add_node(x->b, path, &n);
}

/* ---- workers ---- */

static int worker_flush(Worker *w, LbBuilderFile *f) {
        int k = w->have > 0 ? lb_builder_file_write(f, w->buf, w->have) : 0;
        w->have = 0;
        return k;
}

static int worker_put(Worker *w, LbBuilderFile *f, const void *p, size_t n) {
        if (n >= COPY_BUF) {
                int k = worker_flush(w, f);
                return k < 0 ? k : lb_builder_file_write(f, p, n);
        }
        if (w->have + n > COPY_BUF) {
                int k = worker_flush(w, f);
                if (k < 0)
                        return k;
        }
        memcpy(w->buf + w->have, p, n);
        w->have += n;
        return 0;
}

static char *copy_sql(Ctx *x, const Table *t, bool *ret_pk) {
        bool pk = !x->o->physical_order && t->pk;
        *ret_pk = pk;
        const char *filter = t->filter && *t->filter ? t->filter : "";
        if (pk)
                return lb_strdup_printf("COPY (SELECT %s FROM ONLY %s %s ORDER BY %s) TO STDOUT", t->columns,
                                        t->qualified, filter, t->pk);
        if (*t->columns && !t->filter)
                return lb_strdup_printf("COPY %s (%s) TO STDOUT", t->qualified, t->columns);
        /* No column to name (a table of generated columns only, or none),
         * or a filter: the query form copies the same rows. */
        return lb_strdup_printf("COPY (SELECT %s FROM ONLY %s %s) TO STDOUT", t->columns, t->qualified, filter);
}

static int dump_table(Worker *w, PGconn *c, const Table *t) {
        Ctx *x = w->x;
        bool by_pk;
        _cleanup_free_ char *sql = copy_sql(x, t, &by_pk);
        _cleanup_free_ char *path = lb_strdup_printf("%s/data/%s", x->root, t->file);
        if (!sql || !path)
                return fail(x, -ENOMEM, "COPY of %s failed: out of memory", t->label);
        progress(x, t->label, 0, false, false);

        PGresult *res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_COPY_OUT) {
                _cleanup_free_ char *msg = NULL;
                int k = lb_pg_error(c, res, &msg);
                PQclear(res);
                return fail_pg(x, k, msg, "COPY of %s", t->label);
        }
        PQclear(res);

        LbBuilderFile *f;
        int k = file_open(x, path, NULL, &f);
        if (k < 0)
                return fail(x, k, "storing %s failed: %s", t->label, strerror(-k));
        uint64_t rows = 0, bytes = 0, reported = 0;
        int n;
        char *row;
        while ((n = PQgetCopyData(c, &row, 0)) > 0) {
                rows++;
                bytes += (uint64_t) n;
                k = worker_put(w, f, row, (size_t) n);
                PQfreemem(row);
                if (k < 0)
                        break;
                if (bytes - reported >= PROGRESS_EVERY) {
                        reported = bytes;
                        progress(x, t->label, bytes, false, false);
                        if (failed(x))
                                break; /* another step failed: stop here */
                }
        }
        if (k == 0)
                k = worker_flush(w, f);
        if (k < 0) {
                lb_builder_file_abort(f);
                return fail(x, k, "storing %s failed: %s", t->label, strerror(-k));
        }
        if (n != -1) {
                lb_builder_file_abort(f);
                if (n >= 0)
                        return -ECANCELED; /* stopped because of another failure */
                _cleanup_free_ char *msg = NULL;
                k = lb_pg_error(c, NULL, &msg);
                return fail_pg(x, k, msg, "COPY of %s", t->label);
        }
        /* The COPY's own result says whether the stream was complete. */
        res = PQgetResult(c);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                _cleanup_free_ char *msg = NULL;
                k = lb_pg_error(c, res, &msg);
                PQclear(res);
                lb_builder_file_abort(f);
                return fail_pg(x, k, msg, "COPY of %s", t->label);
        }
        PQclear(res);
        while ((res = PQgetResult(c)))
                PQclear(res);

        char rows_s[24];
        snprintf(rows_s, sizeof rows_s, "%" PRIu64, rows);
        LbMeta meta[] = {
                { (char *) "pg.schema", t->schema },
                { (char *) "pg.table", t->name },
                { (char *) "pg.columns", t->columns },
                { (char *) "pg.rows", rows_s },
                { (char *) "pg.order", (char *) (by_pk ? "pk" : "physical") },
        };
        k = file_close(x, path, f, meta, LB_ARRAY_SIZE(meta));
        if (k < 0)
                return fail(x, k, "storing %s failed: %s", t->label, strerror(-k));
        pthread_mutex_lock(&x->lock);
        x->rows += rows;
        x->tables_done++;
        pthread_mutex_unlock(&x->lock);
        progress(x, t->label, bytes, true, true);
        return 0;
}

static int dump_large_object(Worker *w, PGconn *c, uint32_t oid) {
        Ctx *x = w->x;
        char label[48], oid_s[16];
        snprintf(label, sizeof label, "large object %" PRIu32, oid);
        snprintf(oid_s, sizeof oid_s, "%" PRIu32, oid);
        _cleanup_free_ char *path = lb_strdup_printf("%s/large-objects/%s", x->root, oid_s);
        if (!path)
                return fail(x, -ENOMEM, "reading %s failed: out of memory", label);
        int fd = lo_open(c, oid, INV_READ);
        if (fd < 0) {
                _cleanup_free_ char *msg = NULL;
                int k = lb_pg_error(c, NULL, &msg);
                return fail_pg(x, k, msg, "reading %s", label);
        }
        LbBuilderFile *f;
        int k = file_open(x, path, NULL, &f);
        if (k < 0)
                return fail(x, k, "storing %s failed: %s", label, strerror(-k));
        uint64_t bytes = 0;
        for (;;) {
                int n = lo_read(c, fd, (char *) w->buf, COPY_BUF);
                if (n < 0) {
                        lb_builder_file_abort(f);
                        _cleanup_free_ char *msg = NULL;
                        k = lb_pg_error(c, NULL, &msg);
                        return fail_pg(x, k, msg, "reading %s", label);
                }
                if (n == 0)
                        break;
                bytes += (uint64_t) n;
                k = lb_builder_file_write(f, w->buf, (size_t) n);
                if (k < 0) {
                        lb_builder_file_abort(f);
                        return fail(x, k, "storing %s failed: %s", label, strerror(-k));
                }
                if (failed(x)) {
                        lb_builder_file_abort(f);
                        return -ECANCELED;
                }
        }
        if (lo_close(c, fd) < 0) {
                lb_builder_file_abort(f);
                _cleanup_free_ char *msg = NULL;
                k = lb_pg_error(c, NULL, &msg);
                return fail_pg(x, k, msg, "reading %s", label);
        }
        LbMeta meta[] = { { (char *) "pg.oid", oid_s } };
        k = file_close(x, path, f, meta, 1);
        if (k < 0)
                return fail(x, k, "storing %s failed: %s", label, strerror(-k));
        pthread_mutex_lock(&x->lock);
        x->los_done++;
        pthread_mutex_unlock(&x->lock);
        progress(x, label, bytes, true, true);
        return 0;
}

static bool next_job(Ctx *x, Job *ret) {
        pthread_mutex_lock(&x->lock);
        bool ok = !x->error && x->next_job < x->n_jobs;
        if (ok)
                *ret = x->jobs[x->next_job++];
        pthread_mutex_unlock(&x->lock);
        return ok;
}

static void thread_done(Ctx *x) {
        pthread_mutex_lock(&x->lock);
        x->running--;
        pthread_cond_broadcast(&x->cond);
        pthread_mutex_unlock(&x->lock);
}

static void *worker_main(void *userdata) {
        Worker *w = userdata;
        Ctx *x = w->x;
        PGconn *c = NULL;
        _cleanup_free_ char *msg = NULL;
        _cleanup_free_ char *import = lb_strdup_printf("SET TRANSACTION SNAPSHOT '%s'", x->snapshot_id);
        if (!import) {
                fail(x, -ENOMEM, "worker %u failed: out of memory", w->no);
                goto done;
        }
        int k = lb_pg_connect(x->worker_conninfo, &c, &msg);
        if (k < 0) {
                fail_pg(x, k, msg, "connecting worker %u", w->no);
                goto done;
        }
        PQsetNoticeProcessor(c, ignore_notice, NULL);
        PGcancel *cancel = PQgetCancel(c);
        pthread_mutex_lock(&x->lock);
        w->cancel = cancel;
        pthread_mutex_unlock(&x->lock);

        if ((k = lb_pg_exec(c, "SET lock_timeout = '" LOCK_WAIT "'", NULL, &msg)) < 0 ||
            (k = lb_pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL, &msg)) < 0 ||
            (k = lb_pg_exec(c, import, NULL, &msg)) < 0) {
                fail_pg(x, k, msg, "importing the snapshot in worker %u", w->no);
                goto done;
        }
        Job j;
        while (!failed(x) && next_job(x, &j)) {
                pthread_mutex_lock(&x->lock);
                if (j.table)
                        snprintf(w->current, sizeof w->current, "%s", j.table->label);
                else
                        snprintf(w->current, sizeof w->current, "large object %" PRIu32, j.oid);
                pthread_mutex_unlock(&x->lock);
                k = j.table ? dump_table(w, c, j.table) : dump_large_object(w, c, j.oid);
                pthread_mutex_lock(&x->lock);
                w->current[0] = 0;
                pthread_mutex_unlock(&x->lock);
                if (k < 0)
                        break;
        }
        if (!failed(x) && (k = lb_pg_exec(c, "COMMIT", NULL, &msg)) < 0)
                fail_pg(x, k, msg, "ending the transaction of worker %u", w->no);
done:
        pthread_mutex_lock(&x->lock);
        PQfreeCancel(w->cancel);
        w->cancel = NULL;
        pthread_mutex_unlock(&x->lock);
        if (c)
                PQfinish(c);
        thread_done(x);
        return NULL;
}

/* ---- pg_dump and pg_dumpall ---- */

typedef struct Sink {
        Ctx *x;
        const char *step;
        LbBuilderFile *f;           /* or */
        LbBuf *mem;
        uint64_t bytes, reported;
        int error;                  /* storing failed */
} Sink;

static int sink_write(const void *p, size_t n, void *userdata) {
        Sink *s = userdata;
        int k;
        if (s->f)
                k = lb_builder_file_write(s->f, p, n);
        else if (s->mem->len + n > DATABASE_DUMP_MAX)
                k = -EFBIG;
        else
                k = lb_buf_append(s->mem, p, n);
        if (k < 0)
                return s->error = k;
        s->bytes += n;
        if (s->bytes - s->reported >= PROGRESS_EVERY) {
                s->reported = s->bytes;
                progress(s->x, s->step, s->bytes, false, false);
        }
        return 0;
}

/* The last lines of a child's stderr, on one line. */
static char *stderr_tail(const char *err) {
        if (!err)
                return strdup("no message");
        size_t len = strlen(err);
        while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
                len--;
        size_t start = len;
        for (int lines = 0; start > 0 && lines < 3; start--)
                if (err[start - 1] == '\n' && ++lines == 3)
                        break;
        if (len - start > 1500)
                start = len - 1500;
        /* Lines joined with " / ", each tidied. */
        LbBuf b = {};
        int k = 0;
        for (const char *p = err + start, *end = err + len; k == 0 && p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *le = nl ? nl : end;
                _cleanup_free_ char *line = strndup(p, (size_t) (le - p));
                _cleanup_free_ char *t = line ? tidy(line) : NULL;
                if (!t)
                        k = -ENOMEM;
                else if (*t && strcmp(t, "unknown error") != 0) {
                        if (b.len > 0)
                                k = lb_buf_append(&b, " / ", 3);
                        if (k == 0)
                                k = lb_buf_append(&b, t, strlen(t));
                }
                p = nl ? nl + 1 : end;
        }
        if (k == 0 && b.len == 0)
                k = lb_buf_append(&b, "no message", 10);
        if (k == 0)
                k = lb_buf_append_u8(&b, 0);
        if (k < 0) {
                lb_buf_free(&b);
                return NULL;
        }
        return (char *) b.data;
}

typedef struct Run {
        int status;
        char *err;                  /* its stderr */
} Run;

/* Runs a client program with its output into path (under the database's
 * directory) or mem. Returns 0 when it ran (r says how it ended) or -errno
 * after fail() when it could not be run or its output not stored. */
static int run_program(Ctx *x, const char *step, const char *const *argv, const char *name, LbBuf *mem, Run *r) {
        _cleanup_free_ char *path = name ? lb_strdup_printf("%s/%s", x->root, name) : NULL;
        if (name && !path)
                return fail(x, -ENOMEM, "%s failed: out of memory", step);
        Sink s = { .x = x, .step = step, .mem = mem };
        if (name) {
                int k = file_open(x, path, NULL, &s.f);
                if (k < 0)
                        return fail(x, k, "storing %s failed: %s", name, strerror(-k));
        }
        progress(x, step, 0, false, false);
        *r = (Run) {};
        int k = lb_pg_run(argv, x->child.password, sink_write, &s, &x->failed, &r->status, &r->err);
        if (k < 0 || !WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0) {
                lb_builder_file_abort(s.f);
                if (k == -ECANCELED)
                        return k;
                if (s.error)
                        return fail(x, s.error, "storing the output of %s failed: %s", step, strerror(-s.error));
                if (k < 0)
                        return fail(x, k, "running %s failed: %s", argv[0], strerror(-k));
                return 0;
        }
        if (s.f && (k = file_close(x, path, s.f, NULL, 0)) < 0)
                return fail(x, k, "storing %s failed: %s", name, strerror(-k));
        progress(x, step, s.bytes, true, false);
        return 0;
}

static bool run_ok(const Run *r) {
        return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

static int run_failed(Ctx *x, const char *what, const Run *r) {
        _cleanup_free_ char *tail = stderr_tail(r->err);
        if (WIFSIGNALED(r->status))
                return fail(x, -EIO, "%s was killed by signal %d (%s): %s", what, WTERMSIG(r->status),
                            strsignal(WTERMSIG(r->status)), tail ? tail : "");
        int code = WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
        int err = -EIO;
        if (r->err && strstr(r->err, "permission denied"))
                err = -EPERM;
        else if (r->err && (strstr(r->err, "server closed the connection") ||
                            strstr(r->err, "terminating connection") || strstr(r->err, "connection to server") ||
                            strstr(r->err, "could not receive data from server")))
                err = -ECONNRESET;
        else if (r->err && (strstr(r->err, "password authentication failed") || strstr(r->err, "no password supplied")))
                err = -EACCES;
        return fail(x, err, "%s failed (exit %d): %s", what, code, tail ? tail : "");
}

static int run_dump_section(Ctx *x, const char *section, const char *name) {
        _cleanup_free_ char *sec = lb_strdup_printf("--section=%s", section);
        _cleanup_free_ char *snap = lb_strdup_printf("--snapshot=%s", x->snapshot_id);
        _cleanup_free_ char *db = lb_strdup_printf("--dbname=%s", x->child.conninfo);
        _cleanup_free_ char *what = lb_strdup_printf("pg_dump --section=%s", section);
        if (!sec || !snap || !db || !what)
                return fail(x, -ENOMEM, "pg_dump --section=%s failed: out of memory", section);
        /* No --schema-only: it would also drop the large objects' creation
         * and grants from pre-data and REFRESH MATERIALIZED VIEW from
         * post-data; the sections alone hold no table data. */
        const char *argv[] = { x->pg_dump, sec, snap, "--no-password", "--lock-wait-timeout=" LOCK_WAIT, db, NULL };
        Run r;
        int k = run_program(x, section, argv, name, NULL, &r);
        if (k == 0 && !run_ok(&r))
                k = run_failed(x, what, &r);
        free(r.err);
        return k;
}

static int run_dump_database(Ctx *x) {
        _cleanup_free_ char *snap = lb_strdup_printf("--snapshot=%s", x->snapshot_id);
        _cleanup_free_ char *db = lb_strdup_printf("--dbname=%s", x->child.conninfo);
        if (!snap || !db)
                return fail(x, -ENOMEM, "pg_dump --create failed: out of memory");
        /* Every schema excluded: what is left is the database itself (and
         * a few cluster-wide objects, which lb_pg_database_sql leaves out). */
        const char *argv[] = { x->pg_dump, "--schema-only", "--create", "--section=pre-data", "--exclude-schema=*",
                               snap, "--no-password", "--lock-wait-timeout=" LOCK_WAIT, db, NULL };
        _cleanup_buf_ LbBuf mem = {}, sql = {};
        Run r;
        int k = run_program(x, "database", argv, NULL, &mem, &r);
        if (k == 0 && !run_ok(&r))
                k = run_failed(x, "pg_dump --create", &r);
        free(r.err);
        if (k < 0)
                return k;
        k = lb_pg_database_sql((const char *) mem.data, mem.len, &sql);
        if (k == 0)
                k = put_file(x, "database.sql", sql.data, sql.len, NULL);
        if (k < 0)
                return fail(x, k, "storing database.sql failed: %s", strerror(-k));
        progress(x, "database", sql.len, true, false);
        return 0;
}

static int run_dumpall(Ctx *x) {
        _cleanup_free_ char *db = lb_strdup_printf("--dbname=%s", x->child.conninfo);
        if (!db)
                return fail(x, -ENOMEM, "pg_dumpall --globals-only failed: out of memory");
        /* --no-role-passwords: no password, not even a hash, is stored in a
         * snapshot; restored roles need their passwords set again. */
        const char *argv[] = { x->pg_dumpall, "--globals-only", "--no-role-passwords", "--no-password", db,
                               "-l", x->dbname, NULL };
        Run r;
        int k = run_program(x, "globals", argv, "globals.sql", NULL, &r);
        if (k < 0 || run_ok(&r)) {
                free(r.err);
                return k;
        }
        if (!run_ok(&r) && r.err && strstr(r.err, "permission denied")) {
                _cleanup_free_ char *tail = stderr_tail(r.err);
                warn(x, "roles and tablespaces are not in the snapshot (no globals.sql): pg_dumpall --globals-only "
                        "failed: %s", tail ? tail : "");
        } else if (!run_ok(&r))
                k = run_failed(x, "pg_dumpall --globals-only", &r);
        free(r.err);
        return k;
}

static void *schema_main(void *userdata) {
        Ctx *x = userdata;
        if (run_dump_section(x, "pre-data", "pre-data.sql") == 0 && !failed(x) &&
            run_dump_section(x, "post-data", "post-data.sql") == 0 && !failed(x) && run_dump_database(x) == 0 &&
            !failed(x))
                (void) run_dumpall(x);
        thread_done(x);
        return NULL;
}

/* ---- the leader's own work ---- */

static int dump_sequences(Ctx *x, PGconn *c, uint64_t *ret_n) {
        _cleanup_free_ char *sql = lb_strdup_printf(
                "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'S' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND %s "
                "ORDER BY 1, 2", member_filter);
        if (!sql)
                return fail(x, -ENOMEM, "listing the sequences failed: out of memory");
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_free_ char *msg = NULL;
        int k = lb_pg_exec(c, sql, &res, &msg);
        if (k < 0)
                return fail_pg(x, k, msg, "listing the sequences");
        _cleanup_buf_ LbBuf out = {};
        int n = PQntuples(res);
        for (int i = 0; i < n && !failed(x); i++) {
                const char *schema = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
                _cleanup_free_ char *q = lb_pg_qualified(c, schema, name);
                _cleanup_free_ char *get = q ? lb_strdup_printf("SELECT last_value, is_called FROM %s", q) : NULL;
                if (!get)
                        return fail(x, -ENOMEM, "reading sequence %s.%s failed: out of memory", schema, name);
                _cleanup_pgresult_ PGresult *v = NULL;
                k = lb_pg_exec(c, get, &v, &msg);
                if (k < 0)
                        return fail_pg(x, k, msg, "reading sequence %s.%s", schema, name);
                /* The regclass literal: the quoted name inside a string. */
                _cleanup_free_ char *lit = malloc(2 * strlen(q) + 1);
                if (!lit)
                        return fail(x, -ENOMEM, "reading sequence %s.%s failed: out of memory", schema, name);
                size_t j = 0;
                for (const char *p = q; *p; p++) {
                        if (*p == '\'')
                                lit[j++] = '\'';
                        lit[j++] = *p;
                }
                lit[j] = 0;
                _cleanup_free_ char *line = lb_strdup_printf("SELECT pg_catalog.setval('%s', %s, %s);\n", lit,
                                                             PQgetvalue(v, 0, 0),
                                                             PQgetvalue(v, 0, 1)[0] == 't' ? "true" : "false");
                if (!line || lb_buf_append(&out, line, strlen(line)) < 0)
                        return fail(x, -ENOMEM, "reading sequence %s.%s failed: out of memory", schema, name);
        }
        if (failed(x))
                return -ECANCELED;
        k = put_file(x, "sequences.sql", out.data, out.len, NULL);
        if (k < 0)
                return fail(x, k, "storing sequences.sql failed: %s", strerror(-k));
        progress(x, "sequences", out.len, true, false);
        *ret_n = (uint64_t) n;
        return 0;
}

typedef struct ServerInfo {
        char dbname[64];
        int version_num;
        char version[64];
        char size[24];
        char xmin[24];
        char lsn[24];
        int64_t start_time;
        char port[16];
        char *settings[4];      /* config_file, hba_file, ident_file, data_directory; NULL if not visible */
} ServerInfo;

static void server_info_clear(ServerInfo *s) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(s->settings); i++)
                free(s->settings[i]);
}

static const char *const setting_names[] = { "config_file", "hba_file", "ident_file", "data_directory" };

static int server_info(Ctx *x, PGconn *c, ServerInfo *s) {
        _cleanup_free_ char *sql = lb_strdup_printf(
                "SELECT pg_catalog.current_database(), pg_catalog.current_setting('server_version_num'), "
                "pg_catalog.current_setting('server_version'), "
                "pg_catalog.pg_database_size(pg_catalog.current_database()), %s, "
                "COALESCE(CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() "
                "ELSE pg_catalog.pg_current_wal_lsn() END, '0/0'), "
                "pg_catalog.floor(EXTRACT(EPOCH FROM pg_catalog.pg_postmaster_start_time()))::bigint, "
                "pg_catalog.current_setting('port')",
                x->major >= 13 ? "pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())"
                               : "pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())");
        if (!sql)
                return fail(x, -ENOMEM, "reading the server's state failed: out of memory");
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_free_ char *msg = NULL;
        int k = lb_pg_exec(c, sql, &res, &msg);
        if (k < 0)
                return fail_pg(x, k, msg, "reading the server's state");
        snprintf(s->dbname, sizeof s->dbname, "%s", PQgetvalue(res, 0, 0));
        s->version_num = atoi(PQgetvalue(res, 0, 1));
        snprintf(s->version, sizeof s->version, "%s", PQgetvalue(res, 0, 2));
        snprintf(s->size, sizeof s->size, "%s", PQgetvalue(res, 0, 3));
        snprintf(s->xmin, sizeof s->xmin, "%s", PQgetvalue(res, 0, 4));
        snprintf(s->lsn, sizeof s->lsn, "%s", PQgetvalue(res, 0, 5));
        s->start_time = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
        snprintf(s->port, sizeof s->port, "%s", PQgetvalue(res, 0, 7));

        /* pg_settings hides these from users without pg_read_all_settings
         * instead of failing (a failure would end the transaction). */
        _cleanup_pgresult_ PGresult *set = NULL;
        k = lb_pg_exec(c, "SELECT name, setting FROM pg_catalog.pg_settings WHERE name IN "
                          "('config_file', 'hba_file', 'ident_file', 'data_directory')", &set, &msg);
        if (k < 0)
                return fail_pg(x, k, msg, "reading the server's settings");
        for (int i = 0; i < PQntuples(set); i++)
                for (size_t j = 0; j < LB_ARRAY_SIZE(setting_names); j++)
                        if (strcmp(PQgetvalue(set, i, 0), setting_names[j]) == 0 && !s->settings[j] &&
                            !(s->settings[j] = strdup(PQgetvalue(set, i, 1))))
                                return fail(x, -ENOMEM, "reading the server's settings failed: out of memory");
        return 0;
}

/* Whether the server's files are this machine's: its postmaster.pid (when
 * readable) names the same start time and port; else a Unix socket or a
 * loopback address. */
static bool server_is_local(PGconn *c, const ServerInfo *s) {
        if (s->settings[3]) {
                _cleanup_free_ char *pidfile = lb_strdup_printf("%s/postmaster.pid", s->settings[3]);
                _cleanup_buf_ LbBuf b = {};
                if (pidfile && lb_read_file(pidfile, 64 * 1024, &b) == 0 && lb_buf_append_u8(&b, 0) == 0) {
                        /* pid, data directory, start time, port, ... one per line */
                        char *lines[4] = {};
                        char *save = NULL, *p = (char *) b.data;
                        for (int i = 0; i < 4; i++, p = NULL)
                                lines[i] = strtok_r(p, "\n", &save);
                        return lines[2] && lines[3] && strtoll(lines[2], NULL, 10) == s->start_time &&
                               strcmp(lines[3], s->port) == 0;
                }
        }
        return lb_pg_conn_is_local(c);
}

/* One file into /config/<base>: 0, -EEXIST after a warning (the name is
 * taken), or -errno after fail(). what names it in messages. */
static int config_put(Ctx *x, const char *what, const char *base, const void *p, size_t n, const LbNode *tmpl) {
        _cleanup_free_ char *dst = lb_strdup_printf("/config/%s", base);
        if (!dst)
                return fail(x, -ENOMEM, "storing %s failed: out of memory", what);
        LbBuilderFile *f;
        int k = lb_builder_file_open(x->b, dst, tmpl, &f);
        if (k == 0 && (k = lb_builder_file_write(f, p, n)) < 0)
                lb_builder_file_abort(f);
        if (k == 0)
                k = file_close(x, dst, f, NULL, 0);
        if (k == -EEXIST) {
                warn(x, "%s is not in the snapshot: another config file has the same name", what);
                return k;
        }
        if (k < 0)
                return fail(x, k, "storing %s failed: %s", what, strerror(-k));
        return 0;
}

/* postgresql.conf, pg_hba.conf, pg_ident.conf into /config when readable
 * here. Returns the number stored, or -errno after fail(). */
static int dump_server_config(Ctx *x, PGconn *c, const ServerInfo *s) {
        if (!s->settings[0] && !s->settings[1] && !s->settings[2]) {
                warn(x, "the server's config files are not in the snapshot: this user may not see their paths "
                        "(needs superuser or pg_read_all_settings)");
                return 0;
        }
        if (!server_is_local(c, s)) {
                warn(x, "the server's config files are not in the snapshot: the server is not on this machine");
                return 0;
        }
        int stored = 0;
        for (size_t i = 0; i < 3; i++) {
                const char *path = s->settings[i];
                if (!path || !*path)
                        continue;
                _cleanup_buf_ LbBuf b = {};
                struct stat st;
                int k = lb_read_file(path, 64u * 1024 * 1024, &b);
                if (k == 0 && stat(path, &st) < 0)
                        k = -errno;
                if (k < 0) {
                        warn(x, "%s is not in the snapshot: %s", path, strerror(-k));
                        continue;
                }
                const char *base = strrchr(path, '/');
                base = base ? base + 1 : path;
                LbNode tmpl = { .type = LB_NODE_FILE, .mode = st.st_mode & 07777, .uid = st.st_uid, .gid = st.st_gid,
                                .mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec };
                k = config_put(x, path, base, b.data, b.len, &tmpl);
                if (k == -EEXIST)
                        continue;
                if (k < 0)
                        return k;
                stored++;
        }
        return stored;
}

/* The server's config files, then the caller's (o->config_files). Returns
 * the number stored, or -errno after fail(). */
static int dump_config(Ctx *x, PGconn *c, const ServerInfo *s) {
        int stored = dump_server_config(x, c, s);
        for (size_t i = 0; stored >= 0 && i < x->o->n_config_files; i++) {
                const LbPgConfigFile *cf = &x->o->config_files[i];
                LbNode tmpl = { .type = LB_NODE_FILE, .mode = cf->mode & 07777, .uid = cf->uid, .gid = cf->gid,
                                .mtime_ns = cf->mtime_ns };
                _cleanup_free_ char *what = lb_strdup_printf("/config/%s", cf->name);
                if (!what)
                        return fail(x, -ENOMEM, "storing /config failed: out of memory");
                int k = config_put(x, what, cf->name, cf->data, cf->len, &tmpl);
                if (k == 0)
                        stored++;
                else if (k != -EEXIST)
                        return k;
        }
        return stored;
}

/* The estimate for LbPgProgress.bytes_total without a parent snapshot: the
 * dumped tables' size on disk (their ACCESS SHARE locks are held, so
 * pg_table_size waits for nobody), plus pg_largeobject's when there are
 * large objects. 0 when it cannot be told. */
static uint64_t size_on_disk(Ctx *x, PGconn *c, size_t n_los) {
        LbBuf q = {};
        static const char head[] = "SELECT COALESCE(pg_catalog.sum(pg_catalog.pg_table_size(o)), 0)::bigint FROM "
                                   "pg_catalog.unnest('{0";
        int k = lb_buf_append(&q, head, sizeof head - 1);
        for (size_t i = 0; k == 0 && i < x->n_tables; i++) {
                char oid[16];
                snprintf(oid, sizeof oid, ",%" PRIu32, x->tables[i].oid);
                if (!x->tables[i].partitioned)
                        k = lb_buf_append(&q, oid, strlen(oid));
        }
        static const char tail[] = "}'::pg_catalog.oid[]) AS o";
        static const char los[] = " UNION ALL SELECT pg_catalog.pg_table_size('pg_catalog.pg_largeobject')";
        if (k == 0)
                k = lb_buf_append(&q, tail, sizeof tail - 1);
        if (k == 0 && n_los > 0)
                k = lb_buf_append(&q, los, sizeof los - 1);
        if (k == 0)
                k = lb_buf_append_u8(&q, 0);
        uint64_t total = 0;
        if (k == 0) {
                /* Under a savepoint: a failure (there is no reason for one:
                 * pg_table_size of a missing oid is NULL) must not abort the
                 * snapshot's transaction. */
                _cleanup_pgresult_ PGresult *res = NULL;
                _cleanup_free_ char *msg = NULL, *msg2 = NULL;
                if (lb_pg_exec(c, "SAVEPOINT longbox_size", NULL, &msg) == 0) {
                        k = lb_pg_exec(c, (const char *) q.data, &res, &msg2);
                        for (int i = 0; k == 0 && i < PQntuples(res); i++)
                                total += strtoull(PQgetvalue(res, i, 0), NULL, 10);
                        /* Should this fail, the transaction's next statement says why. */
                        if (lb_pg_exec(c, k == 0 ? "RELEASE SAVEPOINT longbox_size"
                                                 : "ROLLBACK TO SAVEPOINT longbox_size", NULL, NULL) < 0)
                                total = 0;
                }
        }
        lb_buf_free(&q);
        return total;
}

/* ---- the snapshot ---- */

static void snapshot_freep(LbSnapshot **s) {
        lb_snapshot_free(*s);
}

/* The latest earlier snapshot of this database from this host. */
static LbSnapshot *find_parent(LbRepo *r, const char *host, const char *dbname) {
        LbSnapshot **v = NULL;
        size_t n = 0;
        if (lb_repo_snapshot_list(r, &v, &n) < 0)
                return NULL;
        LbSnapshot *best = NULL;
        for (size_t i = 0; i < n; i++) { /* oldest first: the last match wins */
                const char *db = lb_snapshot_meta(v[i], "pg.database");
                if (v[i]->source && strcmp(v[i]->source, "postgresql") == 0 && v[i]->hostname &&
                    strcmp(v[i]->hostname, host) == 0 && db && strcmp(db, dbname) == 0)
                        best = v[i];
        }
        for (size_t i = 0; i < n; i++)
                if (v[i] == best)
                        v[i] = NULL;
        lb_snapshots_free(v, n);
        return best;
}

/* ---- the whole backup ---- */

static void ctx_free(Ctx *x) {
        for (size_t i = 0; i < x->n_tables; i++)
                table_clear(&x->tables[i]);
        free(x->tables);
        free(x->jobs);
        free(x->root);
        if (x->conninfo) {
                explicit_bzero(x->conninfo, strlen(x->conninfo));
                free(x->conninfo);
        }
        if (x->worker_conninfo) {
                explicit_bzero(x->worker_conninfo, strlen(x->worker_conninfo));
                free(x->worker_conninfo);
        }
        lb_pg_child_conn_clear(&x->child);
        free(x->pg_dump);
        free(x->pg_dumpall);
        free(x->error_msg);
        lb_builder_free(x->b);
        pthread_cond_destroy(&x->cond);
        pthread_mutex_destroy(&x->lock);
        pthread_mutex_destroy(&x->cb_lock);
}

static int find_program(Ctx *x, const char *name, char **ret) {
        int k = lb_pg_find_program(name, x->major, ret);
        if (k == -ENOENT) {
                const char *bindir = getenv("LONGBOX_PG_BINDIR");
                if (bindir && *bindir)
                        return fail(x, k, "%s %d is not installed: looked for %s/%s (LONGBOX_PG_BINDIR)", name,
                                    x->major, bindir, name);
                return fail(x, k, "%s %d is not installed: looked for /usr/lib/postgresql/%d/bin/%s and on PATH",
                            name, x->major, x->major, name);
        }
        if (k < 0)
                return fail(x, k, "looking for %s %d failed: %s", name, x->major, strerror(-k));
        return 0;
}

/* The worker's conninfo: the child's (pinned to the leader's server) plus the password. */
static int worker_conninfo(Ctx *x) {
        LbBuf b = {};
        int k = lb_buf_append(&b, x->child.conninfo, strlen(x->child.conninfo));
        if (k == 0 && x->child.password) {
                k = lb_buf_append(&b, " password='", 11);
                for (const char *p = x->child.password; k == 0 && *p; p++) {
                        if (*p == '\'' || *p == '\\')
                                k = lb_buf_append_u8(&b, '\\');
                        if (k == 0)
                                k = lb_buf_append_u8(&b, (uint8_t) *p);
                }
                if (k == 0)
                        k = lb_buf_append_u8(&b, '\'');
        }
        if (k == 0)
                k = lb_buf_append_u8(&b, 0);
        if (k < 0) {
                if (b.data)
                        explicit_bzero(b.data, b.len);
                lb_buf_free(&b);
                return k;
        }
        x->worker_conninfo = (char *) b.data;
        return 0;
}

/* Starts the workers and the schema thread, writes what the leader writes,
 * and waits for all of them; on a failure it cancels the workers' queries
 * (pg_dump is killed by its thread) so that nobody goes on for long. */
static void run_threads(Ctx *x, PGconn *leader, Worker *workers, unsigned n_workers, pthread_t *schema,
                        bool *schema_started, const ServerInfo *info, uint64_t *ret_sequences, int *ret_config) {
        pthread_mutex_lock(&x->lock);
        x->workers = workers;
        x->n_workers = n_workers;
        for (unsigned i = 0; i < n_workers; i++) {
                workers[i] = (Worker) { .x = x, .no = i + 1, .buf = malloc(COPY_BUF) };
                if (!workers[i].buf || pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
                        pthread_mutex_unlock(&x->lock);
                        fail(x, -EAGAIN, "starting worker %u failed: %s", i + 1, strerror(EAGAIN));
                        pthread_mutex_lock(&x->lock);
                        break;
                }
                workers[i].started = true;
                x->running++;
        }
        if (!x->error) {
                if (pthread_create(schema, NULL, schema_main, x) == 0) {
                        *schema_started = true;
                        x->running++;
                } else {
                        pthread_mutex_unlock(&x->lock);
                        fail(x, -EAGAIN, "starting the pg_dump thread failed: %s", strerror(EAGAIN));
                        pthread_mutex_lock(&x->lock);
                }
        }
        pthread_mutex_unlock(&x->lock);

        if (!failed(x) && dump_sequences(x, leader, ret_sequences) == 0 && !failed(x))
                *ret_config = dump_config(x, leader, info);

        pthread_mutex_lock(&x->lock);
        while (x->running > 0) {
                if (x->error)
                        for (unsigned i = 0; i < n_workers; i++)
                                if (workers[i].cancel) {
                                        char buf[256];
                                        (void) PQcancel(workers[i].cancel, buf, sizeof buf);
                                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&x->cond, &x->lock, &ts);
        }
        pthread_mutex_unlock(&x->lock);
        for (unsigned i = 0; i < n_workers; i++) {
                if (workers[i].started)
                        pthread_join(workers[i].thread, NULL);
                free(workers[i].buf);
        }
        if (*schema_started)
                pthread_join(*schema, NULL);
}

static int backup(Ctx *x, LbPgBackupResult *ret) {
        const LbPgBackupOptions *o = x->o;
        _cleanup_pgconn_ PGconn *leader = NULL;
        _cleanup_free_ char *msg = NULL;
        if (!(x->conninfo = conninfo_normalize(o->conninfo)))
                return fail(x, -ENOMEM, "connecting to the server failed: out of memory");
        int k = lb_pg_connect(x->conninfo, &leader, &msg);
        if (k < 0)
                return fail_pg(x, k, msg, "connecting to the server");
        PQsetNoticeProcessor(leader, ignore_notice, NULL);
        int v = PQserverVersion(leader);
        if (v < 100000)
                return fail(x, -ENOTSUP, "PostgreSQL %d.%d is not supported: longbox needs PostgreSQL 10 or newer",
                            v / 10000, v / 100 % 100);
        x->major = lb_pg_server_major(leader);

        /* The snapshot everything is read under: exported first, then
         * the tables are listed and locked within it. */
        _cleanup_pgresult_ PGresult *res = NULL;
        if ((k = lb_pg_exec(leader, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL, &msg)) < 0)
                return fail_pg(x, k, msg, "starting the snapshot transaction");
        if ((k = lb_pg_exec(leader, "SELECT pg_catalog.pg_export_snapshot()", &res, &msg)) < 0)
                return fail_pg(x, k, msg, "exporting the snapshot");
        x->start_ns = lb_now_ns();
        snprintf(x->snapshot_id, sizeof x->snapshot_id, "%s", PQgetvalue(res, 0, 0));
        if (strspn(x->snapshot_id, "0123456789ABCDEFabcdef-") != strlen(x->snapshot_id) || !*x->snapshot_id)
                return fail(x, -EIO, "exporting the snapshot failed: unexpected snapshot id");

        _cleanup_(server_info_clear) ServerInfo info = {};
        if ((k = server_info(x, leader, &info)) < 0)
                return k;
        snprintf(x->dbname, sizeof x->dbname, "%s", info.dbname);
        _cleanup_free_ char *esc = lb_pg_file_name(x->dbname, NULL);
        x->root = esc ? lb_strdup_printf("/%s", esc) : NULL;
        if (!x->root)
                return fail(x, -ENOMEM, "planning the backup failed: out of memory");

        if ((k = list_tables(x, leader)) < 0)
                return k;
        _cleanup_free_ uint32_t *los = NULL;
        size_t n_los = 0;
        if ((k = list_large_objects(x, leader, &los, &n_los)) < 0 || (k = make_jobs(x, los, n_los)) < 0)
                return k;
        if ((k = lock_tables(x, leader)) < 0)
                return k;

        char host[256];
        if (o->hostname)
                snprintf(host, sizeof host, "%s", o->hostname);
        else if (gethostname(host, sizeof host - 1) < 0)
                strcpy(host, "unknown");
        host[sizeof host - 1] = 0;
        _cleanup_(snapshot_freep) LbSnapshot *parent = find_parent(x->repo, host, x->dbname);
        x->parent = parent;
        if (o->progress)
                x->bytes_estimate = parent ? parent->stats.bytes_read : size_on_disk(x, leader, n_los);

        if ((k = find_program(x, "pg_dump", &x->pg_dump)) < 0 || (k = find_program(x, "pg_dumpall", &x->pg_dumpall)) < 0)
                return k;
        if ((k = lb_pg_child_conn(leader, x->conninfo, x->dbname, &x->child)) < 0 || (k = worker_conninfo(x)) < 0)
                return fail(x, k, "preparing the connections failed: %s", strerror(-k));

        if ((k = lb_builder_new(x->repo, &x->b)) < 0)
                return fail(x, k, "starting the snapshot failed: %s", strerror(-k));
        _cleanup_free_ char *data = lb_strdup_printf("%s/data", x->root);
        _cleanup_free_ char *lo = lb_strdup_printf("%s/large-objects", x->root);
        if (!data || !lo)
                return fail(x, -ENOMEM, "starting the snapshot failed: out of memory");
        if ((k = add_dir(x, x->root)) < 0 || (k = add_dir(x, data)) < 0 || (k = add_dir(x, lo)) < 0)
                return fail(x, k, "starting the snapshot failed: %s", strerror(-k));

        unsigned jobs = o->jobs ? LB_MIN(o->jobs, JOBS_MAX) : JOBS_DEFAULT;
        unsigned n_workers = (unsigned) LB_MIN((size_t) jobs, x->n_jobs);
        _cleanup_free_ Worker *workers = calloc(n_workers + 1, sizeof *workers);
        if (!workers)
                return fail(x, -ENOMEM, "starting the workers failed: out of memory");
        pthread_t schema;
        bool schema_started = false;
        uint64_t n_sequences = 0;
        int n_config = 0;
        run_threads(x, leader, workers, n_workers, &schema, &schema_started, &info, &n_sequences, &n_config);
        if (failed(x))
                return x->error;

        /* Everyone has imported the snapshot and finished: let it go. */
        if ((k = lb_pg_exec(leader, "COMMIT", NULL, &msg)) < 0)
                return fail_pg(x, k, msg, "ending the snapshot transaction");

        if (n_config > 0 && (k = add_dir(x, "/config")) < 0 && k != -EEXIST)
                return fail(x, k, "storing /config failed: %s", strerror(-k));

        /* The snapshot. */
        struct passwd pw, *pwp = NULL;
        char pwbuf[4096];
        (void) getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &pwp);

        char version[16], tables[24], rows[24], jobs_s[16];
        snprintf(version, sizeof version, "%d", info.version_num);
        snprintf(tables, sizeof tables, "%" PRIu64, x->tables_done);
        snprintf(rows, sizeof rows, "%" PRIu64, x->rows);
        snprintf(jobs_s, sizeof jobs_s, "%u", jobs);
        LbMeta meta[] = {
                { (char *) "pg.database", x->dbname },
                { (char *) "pg.server_version", version },
                { (char *) "pg.size", info.size },
                { (char *) "pg.xmin", info.xmin },
                { (char *) "pg.wal_lsn", info.lsn },
                { (char *) "pg.tables", tables },
                { (char *) "pg.rows", rows },
                { (char *) "pg.order", (char *) (o->physical_order ? "physical" : "pk") },
                { (char *) "pg.jobs", jobs_s },
        };
        char *paths[2] = { x->root, (char *) "/config" };
        bool config_path = n_config > 0 && strcmp(x->root, "/config") != 0;
        LbSnapshot s = {
                .time_ns = o->time_ns ? o->time_ns : x->start_ns,
                .hostname = host,
                .username = pwp ? pwp->pw_name : NULL,
                .tags = (char **) o->tags,
                .n_tags = o->n_tags,
                .paths = paths,
                .n_paths = config_path ? 2 : 1,
                .source = (char *) "postgresql",
                .meta = meta,
                .n_meta = LB_ARRAY_SIZE(meta),
        };
        s.tz_offset = o->has_tz_offset ? o->tz_offset : lb_local_tz_offset(s.time_ns);
        if (parent) {
                s.has_parent = true;
                s.parent = parent->id;
        }
        LbChangeCounts changes = {};
        k = lb_builder_commit(LB_TAKE_PTR(x->b), &s, &ret->snapshot_id, &ret->stats, &changes);
        if (k < 0)
                return fail(x, k, "recording the snapshot failed: %s", strerror(-k));
        ret->files_new = changes.files_new;
        ret->files_changed = changes.files_changed;
        ret->files_unmodified = changes.files_unmodified;
        ret->tables = x->tables_done;
        ret->rows = x->rows;
        ret->sequences = n_sequences;
        ret->large_objects = x->los_done;
        ret->server_version = info.version_num;
        snprintf(ret->database, sizeof ret->database, "%s", x->dbname);
        return 0;
}

int lb_pg_backup(LbRepo *r, const LbPgBackupOptions *o, LbPgBackupResult *ret, char **ret_error) {
        if (!o->conninfo)
                return -EINVAL;
        for (size_t i = 0; i < o->n_config_files; i++) {
                const char *n = o->config_files[i].name;
                if (!n || !*n || strchr(n, '/') || strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strlen(n) > 255)
                        return -EINVAL;
        }
        Ctx x = { .repo = r, .o = o, .mtime_ns = lb_now_ns() };
        pthread_mutex_init(&x.lock, NULL);
        pthread_mutex_init(&x.cb_lock, NULL);
        pthread_cond_init(&x.cond, NULL);
        LbPgBackupResult res = {};
        int k = backup(&x, &res);
        if (k < 0 || x.error) {
                k = x.error ? x.error : k;
                if (ret_error) {
                        free(*ret_error);
                        *ret_error = LB_TAKE_PTR(x.error_msg);
                        if (!*ret_error)
                                *ret_error = strdup(strerror(-k));
                }
        } else
                *ret = res;
        ctx_free(&x);
        return k;
}
