/* SPDX-License-Identifier: MIT */
/*
 * Restore of a PostgreSQL snapshot into a live database: the order of
 * load.h's lb_pg_restore, psql for the schema scripts, parallel COPY FROM
 * STDIN through libpq for the rows, libpq's large-object calls for large
 * objects.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <libpq/libpq-fs.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <xxhash.h>

#include "store/pg/dump.h"
#include "store/pg/load.h"
#include "store/pg/pg.h"
#include "store/walk.h"

extern char **environ;

#define PSQL_STDERR_MAX (64u * 1024u)
#define LO_WRITE_MAX (1u << 20)
#define LO_BATCH_COUNT 256
#define LO_BATCH_BYTES (64u << 20)

static const char *const system_schemas_sql =
        "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' "
        "AND n.nspname !~ '^pg_temp_'";

typedef struct Restore {
        LbRepo *r;
        const LbSnapshot *s;
        const LbPgRestoreOptions *o;
        char sid[9];
        LbPgLayout *l;
        char **err;

        PQconninfoOption *opts;      /* the target's conninfo, parsed */
        char *dbname;                /* the target database, once known */
        char *conninfo;              /* for lb_pg_connect (with the password) */
        char *psql_conninfo;         /* for psql -d (without) */
        char *password;              /* for psql's PGPASSWORD; NULL if none given */
        char *psql;
        PGconn *c;                   /* main connection to the target */
        bool serial_read;            /* COPY streams decode in their own thread (see lb_pg_restore) */

        LbBuf pre, post;
        LbPgSqlScript pre_script, post_script;
        bool have_pre_script, have_post_script;

        pthread_mutex_t lock;        /* result, callbacks, first error */
        atomic_bool abort;
        LbPgRestoreResult res;
        int64_t start;
        LbPgRestoreProgress progress;  /* under lock */
} Restore;

static int fail(Restore *R, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void progress_step(Restore *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the error message unless one is set: the first failure is the
 * one reported. Called from the loader threads too; never with R->lock
 * held. */
static int fail(Restore *R, int k, const char *fmt, ...) {
        if (!R->err)
                return k;
        va_list ap;
        va_start(ap, fmt);
        char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        pthread_mutex_lock(&R->lock);
        if (!*R->err) {
                *R->err = m;
                m = NULL;
        }
        pthread_mutex_unlock(&R->lock);
        free(m);
        return k;
}

static void warn(Restore *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(Restore *R, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        pthread_mutex_lock(&R->lock);
        R->res.warnings++;
        if (m && R->o->warn)
                R->o->warn(R->o->userdata, m);
        pthread_mutex_unlock(&R->lock);
        free(m);
}

/* ---- the target's conninfo ---- */

static bool is_connstring(const char *s) {
        return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0 || strchr(s, '=');
}

static int parse_target(Restore *R) {
        const char *ci = R->o->conninfo ? R->o->conninfo : "";
        char *perr = NULL;
        if (is_connstring(ci))
                R->opts = PQconninfoParse(ci, &perr);
        else {
                /* A plain database name, as psql -d takes it. */
                _cleanup_free_ char *q = malloc(2 * strlen(ci) + 16);
                if (!q)
                        return -ENOMEM;
                char *o = stpcpy(q, "dbname='");
                for (const char *p = ci; *p; p++) {
                        if (*p == '\'' || *p == '\\')
                                *o++ = '\\';
                        *o++ = *p;
                }
                strcpy(o, "'");
                R->opts = PQconninfoParse(q, &perr);
        }
        if (!R->opts) {
                /* libpq's message names the offending keyword, never a value. */
                int k = fail(R, -EINVAL, "the connection string is not valid: %s",
                             perr ? perr : "out of memory");
                if (perr)
                        PQfreemem(perr);
                return k;
        }
        if (perr)
                PQfreemem(perr);
        return 0;
}

/* The database the target names; psql's -d also takes a plain name. */
static int target_dbname(const char *conninfo, char **ret) {
        if (is_connstring(conninfo))
                return lb_pg_conninfo_dbname(conninfo, ret);
        if (!*conninfo)
                return -ENOENT;
        *ret = strdup(conninfo);
        return *ret ? 0 : -ENOMEM;
}

static const char *opt_value(const Restore *R, const char *keyword) {
        for (PQconninfoOption *o = R->opts; o->keyword; o++)
                if (strcmp(o->keyword, keyword) == 0 && o->val && *o->val)
                        return o->val;
        return NULL;
}

static int append_kv(LbBuf *b, const char *key, const char *val) {
        int k;
        if (b->len > 0 && (k = lb_buf_append_u8(b, ' ')) < 0)
                return k;
        if ((k = lb_buf_append(b, key, strlen(key))) < 0 || (k = lb_buf_append(b, "='", 2)) < 0)
                return k;
        for (const char *p = val; *p; p++)
                if (((*p == '\'' || *p == '\\') && (k = lb_buf_append_u8(b, '\\')) < 0) ||
                    (k = lb_buf_append_u8(b, (uint8_t) *p)) < 0)
                        return k;
        return lb_buf_append_u8(b, '\'');
}

/* The parsed options as a conninfo string, quoted as libpq reads it; the
 * dbname replaced when dbname is not NULL, the password left out unless
 * with_password. Serializing the parsed keywords, not editing the user's
 * string, is what keeps a password in a URI or a quoted value intact. */
static int build_conninfo(const Restore *R, const char *dbname, bool with_password, char **ret) {
        LbBuf b = {};
        int k = 0;
        bool have_db = false;
        for (PQconninfoOption *o = R->opts; o->keyword && k >= 0; o++) {
                if (!o->val || !*o->val)
                        continue;
                if ((strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0) &&
                    !with_password)
                        continue;
                const char *v = o->val;
                if (strcmp(o->keyword, "dbname") == 0) {
                        have_db = true;
                        if (dbname)
                                v = dbname;
                }
                k = append_kv(&b, o->keyword, v);
        }
        if (k >= 0 && !have_db && dbname)
                k = append_kv(&b, "dbname", dbname);
        if (k >= 0)
                k = lb_buf_append_u8(&b, 0);
        if (k < 0) {
                if (b.data)
                        explicit_bzero(b.data, b.cap);
                lb_buf_free(&b);
                return k;
        }
        *ret = (char *) b.data;
        return 0;
}

static void free_secret(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}
static void free_secretp(char **s) {
        free_secret(*s);
}

/* ---- psql ---- */

/* The lines of psql's stderr worth showing: from the first error on, a
 * few lines (ERROR, DETAIL, LINE, the caret), else all of it, bounded. */
static char *psql_message(const char *err, int status) {
        const char *p = err;
        const char *e = NULL;
        for (const char *q = p; *q; q++)
                if (strncmp(q, "ERROR:", 6) == 0 || strncmp(q, "FATAL:", 6) == 0 || strncmp(q, "error:", 6) == 0) {
                        e = q;
                        break;
                }
        if (e) {
                while (e > p && e[-1] != '\n')
                        e--;
                p = e;
        }
        size_t n = strlen(p), lines = 0, i = 0;
        for (; i < n && i < 2000; i++)
                if (p[i] == '\n' && ++lines == 6)
                        break;
        while (i > 0 && (p[i - 1] == '\n' || p[i - 1] == ' '))
                i--;
        if (i == 0)
                return lb_strdup_printf("psql exited with status %d", status);
        return strndup(p, i);
}

/* Runs psql with script on its standard input. stop_on_error: ON_ERROR_STOP=1
 * (else 0); single: --single-transaction. *ret_stderr gets what psql wrote
 * there (at most PSQL_STDERR_MAX bytes), *ret_status its exit status.
 * Returns < 0 only when psql could not be run at all. */
static int psql_run(Restore *R, const char *conninfo, const void *script, size_t len, bool stop_on_error,
                    bool single, char **ret_stderr, int *ret_status) {
        int sv[2] = { -1, -1 };
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        _cleanup_close_ int in_parent = sv[0];
        _cleanup_close_ int in_child = sv[1];
        _cleanup_close_ int errfd = memfd_create("longbox-psql-stderr", MFD_CLOEXEC);
        if (errfd < 0)
                return -errno;

        /* The environment: ours, with PGPASSWORD replaced by the conninfo's
         * password (a command line is visible to every user; an
         * environment only to the same user). */
        size_t n_env = 0;
        while (environ[n_env])
                n_env++;
        _cleanup_free_ char **env = calloc(n_env + 2, sizeof *env);
        if (!env)
                return -ENOMEM;
        size_t e = 0;
        for (size_t i = 0; i < n_env; i++)
                if (!(R->password && strncmp(environ[i], "PGPASSWORD=", 11) == 0))
                        env[e++] = environ[i];
        char *pw_env = NULL;
        if (R->password) {
                pw_env = lb_strdup_printf("PGPASSWORD=%s", R->password);
                if (!pw_env)
                        return -ENOMEM;
                env[e++] = pw_env;
        }
        env[e] = NULL;

        char *argv[12];
        size_t a = 0;
        argv[a++] = R->psql;
        argv[a++] = (char *) "--no-psqlrc";
        argv[a++] = (char *) "-q";
        argv[a++] = (char *) "-v";
        argv[a++] = (char *) (stop_on_error ? "ON_ERROR_STOP=1" : "ON_ERROR_STOP=0");
        if (single)
                argv[a++] = (char *) "--single-transaction";
        argv[a++] = (char *) "-d";
        argv[a++] = (char *) conninfo;
        argv[a++] = (char *) "-f";
        argv[a++] = (char *) "-";
        argv[a] = NULL;

        posix_spawn_file_actions_t fa;
        int k = posix_spawn_file_actions_init(&fa);
        if (k != 0) {
                free_secret(pw_env);
                return -k;
        }
        if ((k = posix_spawn_file_actions_adddup2(&fa, in_child, 0)) == 0 &&
            (k = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)) == 0)
                k = posix_spawn_file_actions_adddup2(&fa, errfd, 2);
        pid_t pid = -1;
        if (k == 0)
                k = posix_spawn(&pid, R->psql, &fa, NULL, argv, env);
        posix_spawn_file_actions_destroy(&fa);
        free_secret(pw_env);
        if (k != 0)
                return -k;
        close(in_child);
        in_child = -1;

        /* Feed the script; psql may stop reading early (ON_ERROR_STOP):
         * a socket lets us see EPIPE without a SIGPIPE. */
        const uint8_t *p = script;
        size_t left = len;
        while (left > 0) {
                ssize_t w = send(in_parent, p, LB_MIN(left, (size_t) 1 << 20), MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        break;   /* EPIPE, ECONNRESET: psql is gone; its status says why */
                }
                p += w;
                left -= (size_t) w;
        }
        shutdown(in_parent, SHUT_WR);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;

        char *out = calloc(1, PSQL_STDERR_MAX + 1);
        if (!out)
                return -ENOMEM;
        size_t got = 0;
        if (lseek(errfd, 0, SEEK_SET) == 0 && lb_read_all(errfd, out, PSQL_STDERR_MAX, &got) < 0)
                got = 0;
        out[got] = 0;
        *ret_stderr = out;
        *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return 0;
}

/* Runs a script that must succeed: ON_ERROR_STOP, one transaction. */
static int psql_script(Restore *R, const char *what, const char *conninfo, const void *script, size_t len) {
        _cleanup_free_ char *err = NULL;
        int status;
        int k = psql_run(R, conninfo, script, len, true, true, &err, &status);
        if (k < 0)
                return fail(R, k, "%s: running %s failed: %s", what, R->psql, strerror(-k));
        if (status != 0) {
                _cleanup_free_ char *m = psql_message(err, status);
                return fail(R, -EIO, "%s failed: %s", what, m ? m : "psql failed");
        }
        return 0;
}

/* Runs a script whose errors are only warnings (ON_ERROR_STOP=0, no
 * transaction); each ERROR line of psql becomes a warning. */
static int psql_script_lenient(Restore *R, const char *what, const char *conninfo, const void *script, size_t len) {
        _cleanup_free_ char *err = NULL;
        int status;
        int k = psql_run(R, conninfo, script, len, false, false, &err, &status);
        if (k < 0)
                return fail(R, k, "%s: running %s failed: %s", what, R->psql, strerror(-k));
        unsigned errors = 0;
        for (char *save = NULL, *line = strtok_r(err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                const char *m = strstr(line, "ERROR:");
                if (!m)
                        m = strstr(line, "FATAL:");
                if (m) {
                        errors++;
                        warn(R, "%s: %s", what, m);
                }
        }
        if (status != 0 && errors == 0)
                return fail(R, -EIO, "%s failed: psql exited with status %d", what, status);
        return 0;
}

static int find_psql(Restore *R, PGconn *c) {
        if (R->psql)
                return 0;
        int major = lb_pg_server_major(c);
        int k = lb_pg_find_program("psql", major, &R->psql);
        if (k == -ENOENT)
                return fail(R, k,
                            "psql of PostgreSQL %d is not installed (install postgresql-client-%d, or point "
                            "LONGBOX_PG_BINDIR at its bin directory)",
                            major, major);
        if (k < 0)
                return fail(R, k, "looking for psql failed: %s", strerror(-k));
        return 0;
}

/* ---- small queries ---- */

static int exec(Restore *R, PGconn *c, const char *what, const char *sql, PGresult **ret) {
        _cleanup_free_ char *e = NULL;
        int k = lb_pg_exec(c, sql, ret, &e);
        if (k < 0)
                return fail(R, k, "%s failed: %s", what, e ? e : "unknown error");
        return 0;
}

static int execp(Restore *R, PGconn *c, const char *what, const char *sql, int n, const char *const *params,
                 PGresult **ret) {
        _cleanup_free_ char *e = NULL;
        int k = lb_pg_execp(c, sql, n, params, ret, &e);
        if (k < 0)
                return fail(R, k, "%s failed: %s", what, e ? e : "unknown error");
        return 0;
}

/* Library code does not print: libpq's default notice processor would
 * write NOTICEs (such as DROP ... CASCADE's) to stderr. */
static void ignore_notice(void *arg, const char *message) {
}

static int connect_db(Restore *R, const char *conninfo, const char *dbname, PGconn **ret) {
        _cleanup_free_ char *e = NULL;
        int k = lb_pg_connect(conninfo, ret, &e);
        if (k == 0)
                PQsetNoticeProcessor(*ret, ignore_notice, NULL);
        if (k == -ENOENT)
                return fail(R, k, "database %s does not exist%s", dbname ? dbname : "(default)",
                            R->o->create ? "" : " (--create creates it)");
        if (k < 0)
                return fail(R, k, "connecting to %s failed: %s", dbname ? dbname : "the server",
                            e ? e : "unknown error");
        return 0;
}

/* ---- reading the snapshot ---- */

static int read_schema_file(Restore *R, const LbNode *file, const char *name, LbBuf *ret) {
        int k = lb_pg_layout_read(R->r, file, LB_PG_SCHEMA_FILE_MAX, ret);
        if (k == -EFBIG)
                return fail(R, k, "%s is larger than %u MiB", name, LB_PG_SCHEMA_FILE_MAX >> 20);
        if (k < 0)
                return fail(R, k, "reading %s from the repository failed: %s", name, strerror(-k));
        return 0;
}

/* Reads a schema script once and splits it into object blocks. */
static int load_script(Restore *R, const LbNode *file, const char *name, LbBuf *text, LbPgSqlScript *script,
                       bool *have) {
        if (*have)
                return 0;
        int k = read_schema_file(R, file, name, text);
        if (k < 0)
                return k;
        if (lb_pg_sql_split((const char *) text->data, text->len, script) < 0)
                return -ENOMEM;
        *have = true;
        return 0;
}

static int load_pre(Restore *R) {
        return load_script(R, &R->l->pre_data, "pre-data.sql", &R->pre, &R->pre_script, &R->have_pre_script);
}

static int load_post(Restore *R) {
        return load_script(R, &R->l->post_data, "post-data.sql", &R->post, &R->post_script, &R->have_post_script);
}

/* ---- parallel work on a pool of connections ---- */

typedef int (*ItemFn)(Restore *R, PGconn *c, size_t i, void *userdata);

typedef struct Pool {
        Restore *R;
        size_t n, next;
        ItemFn fn;
        void *userdata;
        const char *session_sql;
        int first_err;
} Pool;

static void *pool_worker(void *userdata) {
        Pool *p = userdata;
        Restore *R = p->R;
        PGconn *c = NULL;
        int k = connect_db(R, R->conninfo, R->dbname, &c);
        if (k == 0 && p->session_sql)
                k = exec(R, c, "setting up a loader connection", p->session_sql, NULL);
        while (k == 0) {
                pthread_mutex_lock(&R->lock);
                bool stop = atomic_load(&R->abort) || p->next >= p->n;
                size_t i = p->next++;
                pthread_mutex_unlock(&R->lock);
                if (stop)
                        break;
                k = p->fn(R, c, i, p->userdata);
        }
        if (k < 0) {
                /* Recorded before the others are told to stop, so that
                 * their -ECANCELED never stands in for the real error. */
                pthread_mutex_lock(&R->lock);
                if (p->first_err == 0 || p->first_err == -ECANCELED)
                        p->first_err = k;
                pthread_mutex_unlock(&R->lock);
                atomic_store(&R->abort, true);
        }
        if (c)
                PQfinish(c);
        return NULL;
}

/* Runs fn for items 0..n-1 on up to jobs connections. The first error
 * stops the others (R->abort) and is returned, its message in R->err. */
static int pool_run(Restore *R, size_t n, ItemFn fn, void *userdata, const char *session_sql) {
        if (n == 0)
                return 0;
        unsigned jobs = R->o->jobs ? R->o->jobs : 2;
        size_t nt = LB_MIN((size_t) jobs, n);
        Pool p = { .R = R, .n = n, .fn = fn, .userdata = userdata, .session_sql = session_sql };
        pthread_t *threads = calloc(nt, sizeof *threads);
        if (!threads)
                return -ENOMEM;
        size_t started = 0;
        for (; started < nt; started++)
                if (pthread_create(&threads[started], NULL, pool_worker, &p) != 0)
                        break;
        if (started == 0) {
                free(threads);
                return fail(R, -EAGAIN, "starting loader threads failed");
        }
        for (size_t i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        free(threads);
        atomic_store(&R->abort, false);
        return p.first_err;
}

/* ---- table data ---- */

typedef struct CopyJob {
        const LbPgTableFile *t;
        char *qualified;      /* "schema"."table", for SQL */
        char *display;        /* schema.table, for messages */
} CopyJob;

typedef struct CopyStream {
        Restore *R;
        const char *display;
        PGconn *c;
        XXH3_state_t *h;
        uint64_t rows, bytes;
        bool send_failed;
} CopyStream;

static int copy_chunk(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        CopyStream *cs = userdata;
        if (atomic_load(&cs->R->abort))
                return -ECANCELED;
        (void) XXH3_64bits_update(cs->h, p, n);
        for (const uint8_t *q = p, *end = p + n; (q = memchr(q, '\n', (size_t) (end - q))); q++)
                cs->rows++;
        cs->bytes += n;
        /* Chunks are at most 16 MiB: they fit an int. */
        if (PQputCopyData(cs->c, (const char *) p, (int) n) != 1) {
                cs->send_failed = true;
                return -EIO;
        }
        Restore *R = cs->R;
        if (R->o->progress) {
                pthread_mutex_lock(&R->lock);
                R->progress.bytes_done += n;
                R->progress.item = cs->display;
                R->o->progress(R->o->userdata, &R->progress);
                pthread_mutex_unlock(&R->lock);
        }
        return 0;
}

/* Ends a COPY: with errmsg, aborts it (nothing is committed). Returns the
 * result's error (message in *ret_error) or 0, and the row count. */
static int copy_end(PGconn *c, const char *errmsg, uint64_t *ret_rows, char **ret_error) {
        int k = 0;
        if (PQputCopyEnd(c, errmsg) != 1)
                k = lb_pg_error(c, NULL, ret_error);
        PGresult *res;
        while ((res = PQgetResult(c))) {
                if (PQresultStatus(res) == PGRES_COMMAND_OK) {
                        if (ret_rows)
                                *ret_rows = strtoull(PQcmdTuples(res), NULL, 10);
                } else if (k == 0)
                        k = lb_pg_error(c, res, ret_error);
                PQclear(res);
        }
        return k;
}

static int copy_table(Restore *R, PGconn *c, size_t i, void *userdata) {
        CopyJob *job = &((CopyJob *) userdata)[i];
        const LbPgTableFile *t = job->t;
        int64_t t0 = lb_mono_ns();
        _cleanup_free_ char *sql = *t->columns
                ? lb_strdup_printf("COPY %s (%s) FROM STDIN", job->qualified, t->columns)
                : lb_strdup_printf("COPY %s FROM STDIN", job->qualified);
        if (!sql)
                return -ENOMEM;
        PGresult *res = PQexec(c, sql);
        if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
                _cleanup_free_ char *e = NULL;
                int k = lb_pg_error(c, res, &e);
                if (res)
                        PQclear(res);
                return fail(R, k, "COPY into %s failed: %s", job->display, e ? e : "unknown error");
        }
        PQclear(res);

        XXH3_state_t *h = XXH3_createState();
        if (!h || XXH3_64bits_reset(h) != XXH_OK) {
                XXH3_freeState(h);
                _cleanup_free_ char *e = NULL;
                (void) copy_end(c, "longbox: out of memory", NULL, &e);
                return -ENOMEM;
        }
        CopyStream cs = { .R = R, .display = job->display, .c = c, .h = h };
        LbContentFailure cf = {};
        int k = t->node.size == 0 ? 0
              : R->serial_read ? lb_content_foreach_serial(R->r, &t->node, copy_chunk, &cs, &cf)
                               : lb_content_foreach_full(R->r, &t->node, copy_chunk, &cs, &cf);
        uint64_t digest = XXH3_64bits_digest(h);
        XXH3_freeState(h);

        _cleanup_free_ char *e = NULL;
        uint64_t server_rows = 0;
        if (k < 0) {
                int k2 = copy_end(c, "longbox: restore aborted", NULL, &e);
                if (k == -ECANCELED)
                        return k;   /* another table failed; its message stands */
                if (cs.send_failed)
                        return fail(R, k2 < 0 ? k2 : k, "COPY into %s failed: %s", job->display,
                                    e ? e : "connection lost");
                if (cf.has_id) {
                        char hex[17];
                        lb_hex_encode(cf.id.b, 8, hex);
                        return fail(R, k, "reading the data of %s from the repository failed at offset %" PRIu64
                                    " (%s %s...): %s",
                                    job->display, cf.offset, cf.is_list ? "chunk list" : "chunk", hex,
                                    strerror(-k));
                }
                return fail(R, k, "reading the data of %s from the repository failed: %s", job->display,
                            strerror(-k));
        }
        if (cs.rows != t->rows || digest != t->node.xxh3) {
                (void) copy_end(c, "longbox: the data does not match its checksum", NULL, &e);
                if (cs.rows != t->rows)
                        return fail(R, -EBADMSG,
                                    "%s: row count mismatch: the snapshot records %" PRIu64 " rows, its data has %"
                                    PRIu64 "; nothing was loaded into the table",
                                    job->display, t->rows, cs.rows);
                return fail(R, -EBADMSG,
                            "%s: checksum mismatch: the data's XXH3 is %016" PRIx64 ", the snapshot records %016"
                            PRIx64 "; nothing was loaded into the table",
                            job->display, digest, t->node.xxh3);
        }
        k = copy_end(c, NULL, &server_rows, &e);
        if (k < 0)
                return fail(R, k, "COPY into %s failed: %s", job->display, e ? e : "unknown error");
        if (server_rows != t->rows)
                return fail(R, -EBADMSG,
                            "%s: the server loaded %" PRIu64 " rows where the snapshot records %" PRIu64,
                            job->display, server_rows, t->rows);

        pthread_mutex_lock(&R->lock);
        LbPgRestoreResult *res_ = &R->res;
        LbPgRestoreTable *rt = &res_->tables[res_->n_tables++];
        *rt = (LbPgRestoreTable) {
                .schema = t->schema,
                .table = t->table,
                .rows = cs.rows,
                .bytes = cs.bytes,
                .duration_ns = lb_mono_ns() - t0,
        };
        res_->rows += cs.rows;
        res_->bytes += cs.bytes;
        R->progress.tables_done++;
        if (R->o->table_done)
                R->o->table_done(R->o->userdata, rt);
        pthread_mutex_unlock(&R->lock);
        return 0;
}

static int cmp_job_size(const void *a, const void *b) {
        const CopyJob *x = a, *y = b;
        if (x->t->node.size != y->t->node.size)
                return x->t->node.size > y->t->node.size ? -1 : 1;
        return strcmp(x->qualified, y->qualified);
}

/* Loads the given tables (all of the layout's when sel is NULL), the
 * largest first. */
static int load_data(Restore *R, const LbPgTableFile *const *sel, size_t n_sel) {
        size_t n = sel ? n_sel : R->l->n_tables;
        if (n == 0)
                return 0;
        CopyJob *jobs = calloc(n, sizeof *jobs);
        if (!jobs)
                return -ENOMEM;
        R->res.tables = calloc(n, sizeof *R->res.tables);
        int k = R->res.tables ? 0 : -ENOMEM;
        for (size_t i = 0; i < n && k == 0; i++) {
                jobs[i].t = sel ? sel[i] : &R->l->tables[i];
                jobs[i].qualified = lb_pg_ident_qualified(jobs[i].t->schema, jobs[i].t->table);
                jobs[i].display = lb_strdup_printf("%s.%s", jobs[i].t->schema, jobs[i].t->table);
                if (!jobs[i].qualified || !jobs[i].display)
                        k = -ENOMEM;
                R->progress.bytes_total += jobs[i].t->node.size;
        }
        R->progress.tables_total = n;
        if (k == 0) {
                lb_qsort(jobs, n, sizeof *jobs, cmp_job_size);
                k = pool_run(R, n, copy_table, jobs, "SET synchronous_commit = off");
        }
        for (size_t i = 0; i < n; i++) {
                free(jobs[i].qualified);
                free(jobs[i].display);
        }
        free(jobs);
        return k;
}

/* ---- large objects ---- */

typedef struct LoStream {
        PGconn *c;
        int fd;
        XXH3_state_t *h;
        bool write_failed;
} LoStream;

static int lo_chunk(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        LoStream *ls = userdata;
        (void) XXH3_64bits_update(ls->h, p, n);
        while (n > 0) {
                size_t m = LB_MIN(n, (size_t) LO_WRITE_MAX);
                if (lo_write(ls->c, ls->fd, (const char *) p, m) != (int) m) {
                        ls->write_failed = true;
                        return -EIO;
                }
                p += m;
                n -= m;
        }
        return 0;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

/* The oids of the target's large objects, sorted. */
static int existing_los(Restore *R, PGconn *c, uint32_t **ret, size_t *ret_n) {
        _cleanup_pgresult_ PGresult *res = NULL;
        int k = exec(R, c, "listing the target's large objects",
                     "SELECT oid FROM pg_catalog.pg_largeobject_metadata ORDER BY oid", &res);
        if (k < 0)
                return k;
        size_t n = (size_t) PQntuples(res);
        uint32_t *v = calloc(n ? n : 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = (uint32_t) strtoul(PQgetvalue(res, (int) i, 0), NULL, 10);
        *ret = v;
        *ret_n = n;
        return 0;
}

static int restore_los(Restore *R, PGconn *c) {
        const LbPgLayout *l = R->l;
        if (l->n_los == 0)
                return 0;
        _cleanup_free_ uint32_t *have = NULL;
        size_t n_have = 0;
        int k = existing_los(R, c, &have, &n_have);
        if (k < 0)
                return k;
        size_t batch = 0;
        uint64_t batch_bytes = 0;
        if ((k = exec(R, c, "restoring large objects", "BEGIN", NULL)) < 0)
                return k;
        for (size_t i = 0; i < l->n_los; i++) {
                const LbPgLargeObject *lo = &l->los[i];
                _cleanup_free_ char *e = NULL;
                if (!lb_bsearch(&lo->oid, have, n_have, sizeof *have, cmp_u32) && lo_create(c, lo->oid) != lo->oid) {
                        k = lb_pg_error(c, NULL, &e);
                        return fail(R, k, "creating large object %" PRIu32 " failed: %s", lo->oid, e);
                }
                int fd = lo_open(c, lo->oid, INV_WRITE);
                if (fd < 0 || lo_truncate64(c, fd, 0) < 0) {
                        k = lb_pg_error(c, NULL, &e);
                        return fail(R, k, "opening large object %" PRIu32 " failed: %s", lo->oid, e);
                }
                LoStream ls = { .c = c, .fd = fd, .h = XXH3_createState() };
                if (!ls.h || XXH3_64bits_reset(ls.h) != XXH_OK) {
                        XXH3_freeState(ls.h);
                        return -ENOMEM;
                }
                k = lo->node.size > 0 ? lb_content_foreach(R->r, &lo->node, lo_chunk, &ls) : 0;
                uint64_t digest = XXH3_64bits_digest(ls.h);
                XXH3_freeState(ls.h);
                if (k < 0 && ls.write_failed) {
                        k = lb_pg_error(c, NULL, &e);
                        return fail(R, k, "writing large object %" PRIu32 " failed: %s", lo->oid, e);
                }
                if (k < 0)
                        return fail(R, k, "reading large object %" PRIu32 " from the repository failed: %s", lo->oid,
                                    strerror(-k));
                if (lo->node.has_xxh3 && digest != lo->node.xxh3)
                        return fail(R, -EBADMSG,
                                    "large object %" PRIu32 ": checksum mismatch: the data's XXH3 is %016" PRIx64
                                    ", the snapshot records %016" PRIx64,
                                    lo->oid, digest, lo->node.xxh3);
                if (lo_close(c, fd) < 0) {
                        k = lb_pg_error(c, NULL, &e);
                        return fail(R, k, "closing large object %" PRIu32 " failed: %s", lo->oid, e);
                }
                R->res.large_objects++;
                R->res.large_object_bytes += lo->node.size;
                batch_bytes += lo->node.size;
                if (++batch >= LO_BATCH_COUNT || batch_bytes >= LO_BATCH_BYTES) {
                        if ((k = exec(R, c, "restoring large objects", "COMMIT; BEGIN", NULL)) < 0)
                                return k;
                        batch = 0;
                        batch_bytes = 0;
                }
        }
        return exec(R, c, "restoring large objects", "COMMIT", NULL);
}

/* ---- the database itself ---- */

/* The source's CREATE DATABASE and the statements about the database
 * (ALTER DATABASE, COMMENT, GRANT, ALTER ROLE ... IN DATABASE) from
 * database.sql, renamed to the target. */
static int database_statements(Restore *R, char **ret_create, char ***ret_other, size_t *ret_n_other) {
        *ret_create = NULL;
        *ret_other = NULL;
        *ret_n_other = 0;
        if (!R->l->has_database_sql)
                return 0;
        _cleanup_buf_ LbBuf b = {};
        int k = read_schema_file(R, &R->l->database_sql, "database.sql", &b);
        if (k < 0)
                return k;
        char **st = NULL;
        size_t n = 0;
        if (lb_pg_sql_statements((const char *) b.data, b.len, &st, &n) < 0)
                return -ENOMEM;
        char *create = NULL;
        char **other = calloc(n ? n : 1, sizeof *other);
        size_t n_other = 0;
        k = other ? 0 : -ENOMEM;
        for (size_t i = 0; i < n && k == 0; i++) {
                if (st[i][0] == '\\')
                        continue;   /* \connect, \restrict: psql's, not ours */
                char *renamed = NULL;
                unsigned count = 0;
                k = lb_pg_sql_rename_database(st[i], R->l->database, R->dbname, &renamed, &count);
                if (k < 0)
                        break;
                if (count == 0) {
                        free(renamed);   /* SET, SELECT set_config, UPDATE pg_database ...: not for us */
                        continue;
                }
                if (!create && strncasecmp(renamed, "CREATE DATABASE", 15) == 0)
                        create = renamed;
                else
                        other[n_other++] = renamed;
        }
        lb_pg_strv_free(st, n);
        if (k < 0) {
                free(create);
                lb_pg_strv_free(other, n_other);
                return k;
        }
        *ret_create = create;
        *ret_other = other;
        *ret_n_other = n_other;
        return 0;
}

static int maintenance_connect(Restore *R, PGconn **ret, char **ret_conninfo) {
        static const char *const dbs[] = { "postgres", "template1" };
        int k = 0;
        for (size_t i = 0; i < LB_ARRAY_SIZE(dbs); i++) {
                _cleanup_(free_secretp) char *ci = NULL;
                if ((k = build_conninfo(R, dbs[i], true, &ci)) < 0)
                        return k;
                _cleanup_free_ char *e = NULL;
                k = lb_pg_connect(ci, ret, &e);
                if (k == 0) {
                        PQsetNoticeProcessor(*ret, ignore_notice, NULL);
                        return build_conninfo(R, dbs[i], false, ret_conninfo);
                }
                if (k != -ENOENT)
                        return fail(R, k, "connecting to the maintenance database %s failed: %s", dbs[i],
                                    e ? e : "unknown error");
        }
        return fail(R, k, "the server has neither a postgres nor a template1 database to run CREATE DATABASE from");
}

static int run_globals(Restore *R, const char *conninfo) {
        if (!R->l->has_globals)
                return fail(R, -ENOENT, "the snapshot has no globals.sql (roles and tablespaces)");
        _cleanup_buf_ LbBuf b = {};
        int k = read_schema_file(R, &R->l->globals, "globals.sql", &b);
        if (k < 0)
                return k;
        return psql_script_lenient(R, "globals.sql", conninfo, b.data, b.len);
}

static int create_database(Restore *R) {
        _cleanup_pgconn_ PGconn *m = NULL;
        _cleanup_free_ char *mconninfo = NULL;
        int k = maintenance_connect(R, &m, &mconninfo);
        if (k < 0)
                return k;
        if ((k = find_psql(R, m)) < 0)
                return k;
        if (R->o->globals && (k = run_globals(R, mconninfo)) < 0)
                return k;

        _cleanup_free_ char *q = lb_pg_ident_quote(R->dbname);
        if (!q)
                return -ENOMEM;
        if (R->o->clean) {
                _cleanup_free_ char *drop = lb_strdup_printf("DROP DATABASE IF EXISTS %s", q);
                if (!drop)
                        return -ENOMEM;
                if ((k = exec(R, m, "dropping the existing database (--create --clean)", drop, NULL)) < 0)
                        return k;
        }

        _cleanup_free_ char *create = NULL;
        char **other = NULL;
        size_t n_other = 0;
        if ((k = database_statements(R, &create, &other, &n_other)) < 0)
                return k;
        if (!create)
                create = lb_strdup_printf("CREATE DATABASE %s TEMPLATE template0", q);
        if (!create) {
                lb_pg_strv_free(other, n_other);
                return -ENOMEM;
        }
        _cleanup_free_ char *e = NULL;
        k = lb_pg_exec(m, create, NULL, &e);
        if (k < 0) {
                lb_pg_strv_free(other, n_other);
                return fail(R, k, "CREATE DATABASE %s failed: %s%s", q, e ? e : "unknown error",
                            e && strstr(e, "already exists") ? " (with --clean as well, --create drops it first)" : "");
        }
        for (size_t i = 0; i < n_other; i++) {
                free(e);
                e = NULL;
                if (lb_pg_exec(m, other[i], NULL, &e) < 0)
                        warn(R, "database.sql: \"%.80s%s\" not applied: %s", other[i],
                             strlen(other[i]) > 80 ? "..." : "", e ? e : "unknown error");
        }
        lb_pg_strv_free(other, n_other);
        return 0;
}

/* ---- whole database ---- */

static int check_empty(Restore *R) {
        _cleanup_free_ char *sql = lb_strdup_printf(
                "SELECT count(*), min(quote_ident(n.nspname) || '.' || quote_ident(c.relname)) "
                "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND %s",
                system_schemas_sql);
        if (!sql)
                return -ENOMEM;
        _cleanup_pgresult_ PGresult *res = NULL;
        int k = exec(R, R->c, "checking that the target database is empty", sql, &res);
        if (k < 0)
                return k;
        long long n = atoll(PQgetvalue(res, 0, 0));
        if (n > 0 && !R->o->clean)
                return fail(R, -EEXIST,
                            "database %s is not empty: it has %lld tables, views or sequences (such as %s); "
                            "--clean replaces its contents, --create --dbname NEWNAME restores into a new database",
                            R->dbname, n, PQgetvalue(res, 0, 1));
        if (R->o->clean)
                return 0;

        /* Large objects live outside schemas: one with an oid we restore
         * would be overwritten. */
        _cleanup_free_ uint32_t *have = NULL;
        size_t n_have = 0;
        if ((k = existing_los(R, R->c, &have, &n_have)) < 0)
                return k;
        for (size_t i = 0; i < R->l->n_los; i++)
                if (lb_bsearch(&R->l->los[i].oid, have, n_have, sizeof *have, cmp_u32))
                        return fail(R, -EEXIST,
                                    "database %s already has large object %" PRIu32 " (the snapshot has one with "
                                    "that oid); --clean removes the target's large objects first",
                                    R->dbname, R->l->los[i].oid);
        return 0;
}

/* Runs "<prefix> <each value of column 0 of query>" one by one. */
static int exec_each(Restore *R, const char *what, const char *query, const char *prefix, const char *suffix) {
        _cleanup_pgresult_ PGresult *res = NULL;
        int k = exec(R, R->c, what, query, &res);
        if (k < 0)
                return k;
        for (int i = 0; i < PQntuples(res); i++) {
                _cleanup_free_ char *sql = lb_strdup_printf("%s %s%s", prefix, PQgetvalue(res, i, 0), suffix);
                if (!sql)
                        return -ENOMEM;
                if ((k = exec(R, R->c, what, sql, NULL)) < 0)
                        return k;
        }
        return 0;
}

/* --clean of a whole database: what pre-data would collide with goes.
 * Objects outside schemas that pg_dump's pre-data does not create
 * (casts, languages, subscriptions, extensions installed in pg_catalog)
 * stay. */
static int clean_database(Restore *R) {
        int k;
        _cleanup_free_ char *schemas = lb_strdup_printf(
                "SELECT quote_ident(n.nspname) FROM pg_catalog.pg_namespace n WHERE %s ORDER BY 1", system_schemas_sql);
        if (!schemas)
                return -ENOMEM;
        if ((k = exec_each(R, "--clean: dropping event triggers",
                           "SELECT quote_ident(evtname) FROM pg_catalog.pg_event_trigger ORDER BY 1",
                           "DROP EVENT TRIGGER", "")) < 0 ||
            (k = exec_each(R, "--clean: dropping publications",
                           "SELECT quote_ident(pubname) FROM pg_catalog.pg_publication ORDER BY 1",
                           "DROP PUBLICATION", "")) < 0 ||
            (k = exec_each(R, "--clean: dropping schemas", schemas, "DROP SCHEMA", " CASCADE")) < 0 ||
            (k = exec_each(R, "--clean: dropping foreign-data wrappers",
                           "SELECT quote_ident(w.fdwname) FROM pg_catalog.pg_foreign_data_wrapper w WHERE NOT EXISTS "
                           "(SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = "
                           "'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass AND d.objid = w.oid AND "
                           "d.deptype = 'e') ORDER BY 1",
                           "DROP FOREIGN DATA WRAPPER", " CASCADE")) < 0 ||
            (k = exec(R, R->c, "--clean: removing large objects",
                      "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata", NULL)) < 0)
                return k;

        /* public as initdb creates it: since PostgreSQL 15 owned by
         * pg_database_owner with USAGE for PUBLIC, before by the bootstrap
         * superuser with CREATE and USAGE for PUBLIC. */
        if (PQserverVersion(R->c) >= 150000)
                return exec(R, R->c, "--clean: recreating schema public",
                            "CREATE SCHEMA public AUTHORIZATION pg_database_owner; "
                            "GRANT USAGE ON SCHEMA public TO PUBLIC; "
                            "COMMENT ON SCHEMA public IS 'standard public schema'",
                            NULL);
        _cleanup_pgresult_ PGresult *res = NULL;
        if ((k = exec(R, R->c, "--clean: recreating schema public",
                      "SELECT quote_ident(rolname) FROM pg_catalog.pg_roles WHERE oid = 10", &res)) < 0)
                return k;
        _cleanup_free_ char *sql = lb_strdup_printf(
                "CREATE SCHEMA public AUTHORIZATION %s; GRANT ALL ON SCHEMA public TO PUBLIC; "
                "COMMENT ON SCHEMA public IS 'standard public schema'",
                PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "CURRENT_USER");
        if (!sql)
                return -ENOMEM;
        return exec(R, R->c, "--clean: recreating schema public", sql, NULL);
}

static uint64_t count_setvals(const LbBuf *b) {
        uint64_t n = 0;
        const char *p = (const char *) b->data, *end = p + b->len;
        while (p && p < end && (p = memmem(p, (size_t) (end - p), "setval(", 7))) {
                n++;
                p += 7;
        }
        return n;
}

/* pg_dump --schema-only leaves out the REFRESH of materialized views;
 * when post-data has none, refresh every view pre-data created, in its
 * order (dependencies first). A failure is a warning: the view stays
 * unpopulated, the rest of the database is usable. */
static int refresh_matviews(Restore *R) {
        if (memmem(R->post.data, R->post.len, "REFRESH MATERIALIZED VIEW", 25))
                return 0;
        for (size_t i = 0; i < R->pre_script.n_blocks; i++) {
                const LbPgSqlBlock *b = &R->pre_script.blocks[i];
                if (strcmp(b->type, "MATERIALIZED VIEW") != 0)
                        continue;
                _cleanup_free_ char *q = lb_pg_ident_qualified(b->schema, b->name);
                _cleanup_free_ char *sql = q ? lb_strdup_printf("REFRESH MATERIALIZED VIEW %s", q) : NULL;
                if (!sql)
                        return -ENOMEM;
                _cleanup_free_ char *e = NULL;
                if (lb_pg_exec(R->c, sql, NULL, &e) < 0)
                        warn(R, "materialized view %s was not refreshed: %s", q, e ? e : "unknown error");
        }
        return 0;
}

typedef struct NameList {
        char **v;
        size_t n;
} NameList;

static int analyze_one(Restore *R, PGconn *c, size_t i, void *userdata) {
        NameList *l = userdata;
        _cleanup_free_ char *sql = lb_strdup_printf("ANALYZE %s", l->v[i]);
        if (!sql)
                return -ENOMEM;
        progress_step(R, "%s", sql);
        return exec(R, c, "ANALYZE", sql, NULL);
}

/* ANALYZE of every table, materialized view and partitioned table but
 * the layout's tables marked in done (may be NULL), the largest first. */
static int analyze_all(Restore *R, const bool *done) {
        _cleanup_free_ char *sql = lb_strdup_printf(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname, c.relname "
                "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'm', 'p') AND %s ORDER BY c.relpages DESC, 1",
                system_schemas_sql);
        if (!sql)
                return -ENOMEM;
        _cleanup_pgresult_ PGresult *res = NULL;
        int k = exec(R, R->c, "listing tables for ANALYZE", sql, &res);
        if (k < 0)
                return k;
        size_t n = (size_t) PQntuples(res);
        NameList l = { .v = calloc(n ? n : 1, sizeof *l.v) };
        if (!l.v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const LbPgTableFile *t = done ? lb_pg_layout_find_table(R->l, PQgetvalue(res, (int) i, 1),
                                                                        PQgetvalue(res, (int) i, 2)) : NULL;
                if (!t || !done[t - R->l->tables])
                        l.v[l.n++] = PQgetvalue(res, (int) i, 0);
        }
        k = pool_run(R, l.n, analyze_one, &l, NULL);
        free(l.v);
        return k;
}

/* ---- post-data ---- */

/* Appends a block's text to out. */
static int add_block(LbBuf *out, const LbBuf *script, const LbPgSqlBlock *b) {
        return lb_buf_append(out, script->data + b->offset, b->len);
}

/* preamble || body || trailer of a pg_dump script. */
static int wrap_script(const LbBuf *script, const LbPgSqlScript *sc, const LbBuf *body, LbBuf *out) {
        int k;
        if ((k = lb_buf_append(out, script->data, sc->preamble_len)) < 0 ||
            (k = lb_buf_append(out, body->data, body->len)) < 0)
                return k;
        return lb_buf_append(out, script->data + sc->trailer_offset, script->len - sc->trailer_offset);
}


/* The SETs of a pg_dump script's preamble, for libpq: psql's
 * meta-commands (\restrict) are not SQL. */
static int preamble_sets(const LbBuf *script, const LbPgSqlScript *sc, LbBuf *out) {
        const char *p = (const char *) script->data, *end = p + sc->preamble_len;
        int k = 0;
        while (k == 0 && p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *e = nl ? nl + 1 : end;
                if (*p != '\\')
                        k = lb_buf_append(out, p, (size_t) (e - p));
                p = e;
        }
        return k;
}

/* ---- whole database: the schedule, run on a pool of connections ---- */

typedef struct Runner {
        Restore *R;
        const LbPgSchedule *s;
        CopyJob *copies;              /* per layout table */
        const char *session_sql;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        size_t *waiting;              /* per item: prerequisites not finished */
        size_t *dep_off, *dependents; /* per item: the items waiting for it (CSR) */
        size_t *ready, n_ready;       /* prerequisites met, not started */
        size_t *running;              /* per worker: its item, or SIZE_MAX */
        size_t n_workers, n_running;
        size_t left;                  /* items not finished */
        int first_err;
        bool stop;
} Runner;

typedef struct RunnerWorker {
        Runner *x;
        size_t slot;
} RunnerWorker;

static bool items_conflict(const LbPgItem *a, const LbPgItem *b) {
        for (size_t i = 0; i < 2; i++)
                for (size_t j = 0; j < 2; j++)
                        if (a->rel[i] != LB_PG_NO_REL && a->rel[i] == b->rel[j] && !(a->shared && b->shared))
                                return true;
        return false;
}

/* Under x->lock: the ready item of highest priority that locks nothing a
 * running item locks (so no item ever waits for another's lock), removed
 * from the ready list; SIZE_MAX if none. */
static size_t runner_pick(Runner *x) {
        size_t best = SIZE_MAX;
        for (size_t r = 0; r < x->n_ready; r++) {
                const LbPgItem *it = &x->s->items[x->ready[r]];
                bool conflict = false;
                for (size_t w = 0; w < x->n_workers && !conflict; w++)
                        conflict = x->running[w] != SIZE_MAX && items_conflict(it, &x->s->items[x->running[w]]);
                if (!conflict && (best == SIZE_MAX || it->priority > x->s->items[x->ready[best]].priority))
                        best = r;
        }
        if (best == SIZE_MAX)
                return SIZE_MAX;
        size_t i = x->ready[best];
        x->ready[best] = x->ready[--x->n_ready];
        return i;
}

/* Under x->lock: item i is done; those waiting only for it become ready. */
static void runner_finish(Runner *x, size_t i) {
        x->left--;
        for (size_t d = x->dep_off[i]; d < x->dep_off[i + 1]; d++) {
                size_t j = x->dependents[d];
                if (--x->waiting[j] == 0)
                        x->ready[x->n_ready++] = j;
        }
        pthread_cond_broadcast(&x->cond);
}

static int run_sequences_sql(Restore *R, PGconn *c) {
        _cleanup_buf_ LbBuf b = {};
        int k = read_schema_file(R, &R->l->sequences, "sequences.sql", &b);
        if (k < 0)
                return k;
        uint64_t n = count_setvals(&b);
        if (n == 0)
                return 0;
        /* longbox writes it: one setval per line, plain SQL, one transaction. */
        if ((k = lb_buf_append_u8(&b, 0)) < 0 || (k = exec(R, c, "sequences.sql", (const char *) b.data, NULL)) < 0)
                return k;
        pthread_mutex_lock(&R->lock);
        R->res.sequences = n;
        pthread_mutex_unlock(&R->lock);
        return 0;
}

/* A post-data block on a loader connection, with the default tablespace
 * its header names: pg_dump emits that SET only when it changes, in the
 * text of the block before, which may run elsewhere. */
static int run_block(Restore *R, PGconn *c, const LbPgSqlBlock *b, bool tablespace) {
        _cleanup_free_ char *ts = NULL;
        if (tablespace) {
                _cleanup_free_ char *q = b->tablespace && *b->tablespace ? lb_pg_ident_quote(b->tablespace)
                                                                        : strdup("''");
                if (!q || !(ts = lb_strdup_printf("SET default_tablespace = %s;\n", q)))
                        return -ENOMEM;
        }
        size_t tl = ts ? strlen(ts) : 0;
        _cleanup_free_ char *sql = malloc(tl + b->len + 1);
        if (!sql)
                return -ENOMEM;
        if (ts)
                memcpy(sql, ts, tl);
        memcpy(sql + tl, R->post.data + b->offset, b->len);
        sql[tl + b->len] = 0;
        _cleanup_free_ char *e = NULL;
        int k = lb_pg_exec(c, sql, NULL, &e);
        if (k < 0)
                return fail(R, k, "post-data.sql: %s %s (schema %s) failed: %s", b->type, b->name, b->schema,
                            e ? e : "unknown error");
        return 0;
}

/* A foreign key is checked by one anti-join of the two tables. Both have
 * their indexes by now (the schedule waits for them) but no statistics
 * and no visibility map yet, so the planner hashes the whole referenced
 * table; a merge join over the indexes does the same check with half the
 * CPU time (measured on bench/run-pg's data, 1-4 million rows), and JIT
 * compiling the one-off query costs more than it saves. For this
 * statement only. */
static int run_fk(Restore *R, PGconn *c, const LbPgSqlBlock *b) {
        int k = exec(R, c, "post-data.sql: preparing a foreign key check",
                     "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL jit = off", NULL);
        if (k == 0 && (k = run_block(R, c, b, false)) == 0)
                return exec(R, c, "post-data.sql: committing a foreign key", "COMMIT", NULL);
        PQclear(PQexec(c, "ROLLBACK"));
        return k;
}

/* Progress after the table data: the step a connection starts (an index
 * build, a foreign key check, an ANALYZE), so the line names what the
 * restore waits for rather than the last table loaded. */
static void progress_step(Restore *R, const char *fmt, ...) {
        if (!R->o->progress)
                return;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *item = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (!item)
                return;
        pthread_mutex_lock(&R->lock);
        R->progress.item = item;
        R->progress.step = true;
        R->o->progress(R->o->userdata, &R->progress);
        R->progress.item = NULL;
        R->progress.step = false;
        pthread_mutex_unlock(&R->lock);
}

static void progress_block(Restore *R, const LbPgSqlBlock *b) {
        progress_step(R, "%s %s%s%s", b->type ? b->type : "post-data", b->schema && *b->schema ? b->schema : "",
                      b->schema && *b->schema ? "." : "", b->name ? b->name : "");
}

static int run_item(Runner *x, PGconn *c, size_t i) {
        Restore *R = x->R;
        const LbPgItem *it = &x->s->items[i];
        if (it->kind == LB_PG_ITEM_BUILD || it->kind == LB_PG_ITEM_FK)
                progress_block(R, &R->post_script.blocks[it->block]);
        else if (it->kind == LB_PG_ITEM_ANALYZE)
                progress_step(R, "ANALYZE %s", x->copies[it->table].display);
        switch (it->kind) {
        case LB_PG_ITEM_COPY:
                return copy_table(R, c, it->table, x->copies);
        case LB_PG_ITEM_SEQUENCES:
                return run_sequences_sql(R, c);
        case LB_PG_ITEM_LOS:
                return restore_los(R, c);
        case LB_PG_ITEM_BARRIER:
                return 0;
        case LB_PG_ITEM_BUILD:
                return run_block(R, c, &R->post_script.blocks[it->block], true);
        case LB_PG_ITEM_FK:
                return run_fk(R, c, &R->post_script.blocks[it->block]);
        case LB_PG_ITEM_ANALYZE: {
                _cleanup_free_ char *sql = lb_strdup_printf("ANALYZE %s", x->copies[it->table].qualified);
                if (!sql)
                        return -ENOMEM;
                return exec(R, c, "ANALYZE", sql, NULL);
        }
        }
        return -EINVAL;
}

static void *runner_worker(void *userdata) {
        RunnerWorker *w = userdata;
        Runner *x = w->x;
        Restore *R = x->R;
        PGconn *c = NULL;
        int k = connect_db(R, R->conninfo, R->dbname, &c);
        if (k == 0)
                k = exec(R, c, "setting up a loader connection", x->session_sql, NULL);
        pthread_mutex_lock(&x->lock);
        while (k == 0 && !x->stop && x->left > 0) {
                size_t i = runner_pick(x);
                if (i == SIZE_MAX) {
                        if (x->n_running == 0) {
                                /* Nothing runs and nothing can: a bug in the plan. */
                                pthread_mutex_unlock(&x->lock);
                                k = fail(R, -EINVAL, "the restore's schedule is stuck with %zu items left", x->left);
                                pthread_mutex_lock(&x->lock);
                                break;
                        }
                        pthread_cond_wait(&x->cond, &x->lock);
                        continue;
                }
                x->running[w->slot] = i;
                x->n_running++;
                pthread_mutex_unlock(&x->lock);
                k = run_item(x, c, i);
                pthread_mutex_lock(&x->lock);
                x->running[w->slot] = SIZE_MAX;
                x->n_running--;
                if (k == 0)
                        runner_finish(x, i);
        }
        if (k < 0) {
                /* Recorded before the others are told to stop, so that
                 * their -ECANCELED never stands in for the real error. */
                if (x->first_err == 0 || x->first_err == -ECANCELED)
                        x->first_err = k;
                x->stop = true;
                atomic_store(&R->abort, true);
                pthread_cond_broadcast(&x->cond);
        }
        pthread_mutex_unlock(&x->lock);
        if (c)
                PQfinish(c);
        return NULL;
}

static int run_schedule(Restore *R, const LbPgSchedule *s, const char *session_sql) {
        const LbPgLayout *l = R->l;
        size_t n = s->n_items;
        unsigned jobs = R->o->jobs ? R->o->jobs : 2;
        Runner x = { .R = R, .s = s, .session_sql = session_sql, .left = n, .n_workers = LB_MIN((size_t) jobs, n) };
        if (n == 0)
                return 0;
        x.copies = calloc(l->n_tables ? l->n_tables : 1, sizeof *x.copies);
        x.waiting = calloc(n, sizeof *x.waiting);
        x.dep_off = calloc(n + 1, sizeof *x.dep_off);
        x.ready = calloc(n, sizeof *x.ready);
        x.running = calloc(x.n_workers, sizeof *x.running);
        RunnerWorker *workers = calloc(x.n_workers, sizeof *workers);
        pthread_t *threads = calloc(x.n_workers, sizeof *threads);
        R->res.tables = calloc(l->n_tables ? l->n_tables : 1, sizeof *R->res.tables);
        int k = x.copies && x.waiting && x.dep_off && x.ready && x.running && workers && threads && R->res.tables
                ? 0 : -ENOMEM;

        /* Who waits for whom. */
        size_t edges = 0;
        for (size_t i = 0; i < n && k == 0; i++) {
                x.waiting[i] = s->items[i].n_deps;
                edges += s->items[i].n_deps;
                for (size_t d = 0; d < s->items[i].n_deps; d++)
                        x.dep_off[s->items[i].deps[d] + 1]++;
                if (x.waiting[i] == 0)
                        x.ready[x.n_ready++] = i;
        }
        for (size_t i = 0; i < n; i++)
                x.dep_off[i + 1] += x.dep_off[i];
        if (k == 0 && !(x.dependents = calloc(edges ? edges : 1, sizeof *x.dependents)))
                k = -ENOMEM;
        if (k == 0) {
                _cleanup_free_ size_t *fill = calloc(n, sizeof *fill);
                if (!fill)
                        k = -ENOMEM;
                for (size_t i = 0; i < n && k == 0; i++)
                        for (size_t d = 0; d < s->items[i].n_deps; d++) {
                                size_t j = s->items[i].deps[d];
                                x.dependents[x.dep_off[j] + fill[j]++] = i;
                        }
        }

        for (size_t t = 0; t < l->n_tables && k == 0; t++) {
                CopyJob *cj = &x.copies[t];
                cj->t = &l->tables[t];
                cj->qualified = lb_pg_ident_qualified(cj->t->schema, cj->t->table);
                cj->display = lb_strdup_printf("%s.%s", cj->t->schema, cj->t->table);
                if (!cj->qualified || !cj->display)
                        k = -ENOMEM;
                R->progress.bytes_total += cj->t->node.size;
        }
        R->progress.tables_total = l->n_tables;

        size_t started = 0;
        if (k == 0) {
                pthread_mutex_init(&x.lock, NULL);
                pthread_cond_init(&x.cond, NULL);
                for (size_t i = 0; i < x.n_workers; i++)
                        x.running[i] = SIZE_MAX;
                for (; started < x.n_workers; started++) {
                        workers[started] = (RunnerWorker) { .x = &x, .slot = started };
                        if (pthread_create(&threads[started], NULL, runner_worker, &workers[started]) != 0)
                                break;
                }
                for (size_t i = 0; i < started; i++)
                        pthread_join(threads[i], NULL);
                pthread_cond_destroy(&x.cond);
                pthread_mutex_destroy(&x.lock);
                atomic_store(&R->abort, false);
                k = started == 0 ? fail(R, -EAGAIN, "starting loader threads failed") : x.first_err;
        }
        for (size_t t = 0; x.copies && t < l->n_tables; t++) {
                free(x.copies[t].qualified);
                free(x.copies[t].display);
        }
        free(x.copies);
        free(x.waiting);
        free(x.dep_off);
        free(x.dependents);
        free(x.ready);
        free(x.running);
        free(workers);
        free(threads);
        return k;
}

/* The layout's tables that have inheritance children: their statistics
 * cover the children too, so they are analyzed at the end. */
static int inheritance_parents(Restore *R, bool **ret) {
        _cleanup_pgresult_ PGresult *res = NULL;
        int k = exec(R, R->c, "listing inheritance parents",
                     "SELECT DISTINCT n.nspname, c.relname FROM pg_catalog.pg_inherits i "
                     "JOIN pg_catalog.pg_class c ON c.oid = i.inhparent "
                     "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
                     &res);
        if (k < 0)
                return k;
        bool *v = calloc(R->l->n_tables ? R->l->n_tables : 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (int i = 0; i < PQntuples(res); i++) {
                const LbPgTableFile *t = lb_pg_layout_find_table(R->l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
                if (t)
                        v[t - R->l->tables] = true;
        }
        *ret = v;
        return 0;
}

/* Whether the loader connections keep every CPU of the server busy: the
 * server is on this machine (Unix socket or loopback) and has no more
 * CPUs than there are connections. Parallel workers for an index build
 * then only add work (about a third more CPU time per build, measured
 * here) instead of using idle CPUs. */
static bool busy_server(Restore *R) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned jobs = R->o->jobs ? R->o->jobs : 2;
        return lb_pg_conn_is_local(R->c) && cpus > 0 && (unsigned long) cpus <= jobs;
}

static const char no_parallel_builds[] = "SET max_parallel_maintenance_workers = 0;\n";

/* Pre-data (psql, one transaction); then the table data, sequences, large
 * objects and the post-data blocks the schedule takes, on jobs
 * connections; then the rest of post-data (psql, one transaction), the
 * materialized views, and ANALYZE of what was not analyzed yet. */
static int restore_whole(Restore *R) {
        int k;
        if ((k = check_empty(R)) < 0)
                return k;
        if (R->o->clean && (k = clean_database(R)) < 0)
                return k;
        if ((k = load_pre(R)) < 0 ||
            (k = psql_script(R, "pre-data.sql", R->psql_conninfo, R->pre.data, R->pre.len)) < 0)
                return k;
        if ((k = load_post(R)) < 0)
                return k;

        _cleanup_free_ bool *parents = NULL;
        if ((k = inheritance_parents(R, &parents)) < 0)
                return k;
        LbPgSchedule s = {};
        if ((k = lb_pg_schedule_new(R->l, (const char *) R->post.data, R->post.len, &R->post_script, parents,
                                    R->l->has_sequences, R->l->n_los > 0, &s)) < 0)
                return k;
        _cleanup_buf_ LbBuf session = {}, rest = {}, script = {};
        if ((k = lb_buf_append(&session, "SET synchronous_commit = off;\n", 30)) == 0 &&
            (k = preamble_sets(&R->post, &R->post_script, &session)) == 0 && busy_server(R))
                k = lb_buf_append(&session, no_parallel_builds, strlen(no_parallel_builds));
        if (k == 0)
                k = lb_buf_append_u8(&session, 0);
        if (k == 0)
                k = run_schedule(R, &s, (const char *) session.data);
        bool any_rest = false;
        for (size_t i = 0; i < R->post_script.n_blocks && k == 0; i++)
                if (s.rest[i]) {
                        any_rest = true;
                        k = add_block(&rest, &R->post, &R->post_script.blocks[i]);
                }
        if (k == 0 && any_rest && (k = wrap_script(&R->post, &R->post_script, &rest, &script)) == 0)
                k = psql_script(R, "post-data.sql", R->psql_conninfo, script.data, script.len);
        if (k == 0)
                k = refresh_matviews(R);
        if (k == 0) {
                R->res.usable_ns = lb_mono_ns() - R->start;
                k = analyze_all(R, s.analyzed);
        }
        lb_pg_schedule_clear(&s);
        return k;
}

/* ---- chosen tables ---- */

typedef struct Chosen {
        const LbPgTableFile *t;
        char *qualified;      /* "schema"."table" */
        char *dumped;         /* as pg_dump writes it: quote_ident(schema).quote_ident(table) */
        bool exists;
} Chosen;

static int resolve_table(Restore *R, const char *spec, const LbPgTableFile **ret) {
        _cleanup_free_ char *schema = NULL, *name = NULL;
        const LbPgTableFile *t = NULL;
        if (lb_pg_parse_qualified(spec, "public", &schema, &name) == 0)
                t = lb_pg_layout_find_table(R->l, schema, name);
        if (!t && !strchr(spec, '"')) {
                /* Not as SQL reads it: try the names as written. */
                t = lb_pg_layout_find_table(R->l, "public", spec);
                for (size_t i = 0; !t && i < R->l->n_tables; i++) {
                        const LbPgTableFile *c = &R->l->tables[i];
                        size_t sl = strlen(c->schema);
                        if (strncmp(spec, c->schema, sl) == 0 && spec[sl] == '.' && strcmp(spec + sl + 1, c->table) == 0)
                                t = c;
                }
        }
        if (!t)
                return fail(R, -ENOENT,
                            "snapshot %s has no data for table %s (name it as schema.table; partitioned tables "
                            "have their data in their partitions)",
                            R->sid, spec);
        *ret = t;
        return 0;
}

static bool has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool block_has(const LbBuf *script, const LbPgSqlBlock *b, const char *needle) {
        return memmem(script->data + b->offset, b->len, needle, strlen(needle)) != NULL;
}

/* Pre-data blocks that make up a table: the table, its column defaults,
 * the sequences it owns (serial: CREATE SEQUENCE + OWNED BY; identity:
 * ALTER TABLE ... ADD GENERATED), its partition attach, comments and
 * grants (of the table, its columns and its sequences). In script order,
 * which is dependency order. */
static int table_pre_blocks(Restore *R, const Chosen *ch, LbBuf *out) {
        const LbPgSqlScript *sc = &R->pre_script;
        const char *s = ch->t->schema, *t = ch->t->table;
        _cleanup_free_ char *owned_by = lb_strdup_printf("OWNED BY %s.", ch->dumped);
        _cleanup_free_ char *identity = lb_strdup_printf("ALTER TABLE %s ALTER COLUMN", ch->dumped);
        _cleanup_free_ char *def = lb_strdup_printf("%s ", t);
        _cleanup_free_ char *tab = lb_strdup_printf("TABLE %s", t);
        _cleanup_free_ char *col = lb_strdup_printf("COLUMN %s.", t);
        _cleanup_free_ char *qs = lb_pg_ident_quote(s);
        if (!owned_by || !identity || !def || !tab || !col || !qs)
                return -ENOMEM;
        /* The table's schema may be missing from the target too. Its owner,
         * grants and comment come with a full restore, not with --table. */
        _cleanup_free_ char *mk = lb_strdup_printf("CREATE SCHEMA IF NOT EXISTS %s;\n", qs);
        if (!mk)
                return -ENOMEM;
        int k0 = lb_buf_append(out, mk, strlen(mk));
        if (k0 < 0)
                return k0;
        /* The sequences the table owns, by block index. */
        _cleanup_free_ bool *seq = calloc(sc->n_blocks ? sc->n_blocks : 1, sizeof *seq);
        if (!seq)
                return -ENOMEM;
        for (size_t i = 0; i < sc->n_blocks; i++) {
                const LbPgSqlBlock *b = &sc->blocks[i];
                bool owned = strcmp(b->type, "SEQUENCE OWNED BY") == 0 && block_has(&R->pre, b, owned_by);
                bool ident = strcmp(b->type, "SEQUENCE") == 0 && block_has(&R->pre, b, identity);
                if (!owned && !ident)
                        continue;
                for (size_t j = 0; j < sc->n_blocks; j++) {
                        const LbPgSqlBlock *x = &sc->blocks[j];
                        if (strcmp(x->schema, b->schema) != 0)
                                continue;
                        bool same = strcmp(x->name, b->name) == 0 &&
                                    (strcmp(x->type, "SEQUENCE") == 0 || strcmp(x->type, "SEQUENCE OWNED BY") == 0);
                        bool about = (strcmp(x->type, "COMMENT") == 0 || strcmp(x->type, "ACL") == 0) &&
                                     has_prefix(x->name, "SEQUENCE ") && strcmp(x->name + 9, b->name) == 0;
                        if (same || about)
                                seq[j] = true;
                }
        }
        unsigned found = 0;
        for (size_t i = 0; i < sc->n_blocks; i++) {
                const LbPgSqlBlock *b = &sc->blocks[i];
                bool take = seq[i];
                if (!take && strcmp(b->schema, s) == 0) {
                        if (strcmp(b->type, "TABLE") == 0 && strcmp(b->name, t) == 0) {
                                take = true;
                                found++;
                        } else if (strcmp(b->type, "TABLE ATTACH") == 0)
                                take = strcmp(b->name, t) == 0;
                        else if (strcmp(b->type, "DEFAULT") == 0)
                                take = has_prefix(b->name, def);
                        else if (strcmp(b->type, "COMMENT") == 0 || strcmp(b->type, "ACL") == 0 ||
                                 strcmp(b->type, "SECURITY LABEL") == 0)
                                take = strcmp(b->name, tab) == 0 || has_prefix(b->name, col);
                }
                if (take) {
                        int k = add_block(out, &R->pre, b);
                        if (k < 0)
                                return k;
                }
        }
        if (found == 0)
                return fail(R, -ENOENT,
                            "table %s.%s does not exist in database %s, and pre-data.sql has no CREATE TABLE for it",
                            ch->t->schema, ch->t->table, R->dbname);
        return 0;
}

static bool index_attached(const LbPgSqlScript *sc, const char *schema, const char *index) {
        for (size_t i = 0; i < sc->n_blocks; i++)
                if (strcmp(sc->blocks[i].type, "INDEX ATTACH") == 0 && strcmp(sc->blocks[i].schema, schema) == 0 &&
                    strcmp(sc->blocks[i].name, index) == 0)
                        return true;
        return false;
}

/* Post-data blocks of a table: its constraints, indexes, triggers,
 * rules, policies. Foreign keys go to fk: the table's own (they may name
 * tables the target lacks) and those of other tables that reference it
 * (dropping the table dropped them). done marks blocks already taken,
 * for when two created tables share a foreign key. */
static int table_post_blocks(Restore *R, const Chosen *ch, LbBuf *out, LbBuf *fk, bool *done) {
        const LbPgSqlScript *sc = &R->post_script;
        _cleanup_free_ char *pfx = lb_strdup_printf("%s ", ch->t->table);
        _cleanup_free_ char *on = lb_strdup_printf(" ON %s ", ch->dumped);
        _cleanup_free_ char *on_only = lb_strdup_printf(" ON ONLY %s ", ch->dumped);
        _cleanup_free_ char *refs = lb_strdup_printf("REFERENCES %s(", ch->dumped);
        if (!pfx || !on || !on_only || !refs)
                return -ENOMEM;
        for (size_t i = 0; i < sc->n_blocks; i++) {
                const LbPgSqlBlock *b = &sc->blocks[i];
                if (done[i])
                        continue;
                if (strcmp(b->type, "FK CONSTRAINT") == 0 && block_has(&R->post, b, refs)) {
                        done[i] = true;
                        int k = add_block(fk, &R->post, b);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (strcmp(b->schema, ch->t->schema) != 0)
                        continue;
                bool mine = strcmp(b->name, ch->t->table) == 0 || has_prefix(b->name, pfx);
                /* A partition's index that the source attached to its
                 * parent's was made by ATTACH PARTITION already. */
                const char *idx = strcmp(b->type, "INDEX") == 0 ? b->name
                                : strcmp(b->type, "CONSTRAINT") == 0 && mine ? b->name + strlen(pfx) : NULL;
                if (idx && index_attached(sc, b->schema, idx))
                        continue;
                int k = 0;
                if (strcmp(b->type, "FK CONSTRAINT") == 0) {
                        if (mine) {
                                done[i] = true;
                                k = add_block(fk, &R->post, b);
                        }
                } else if (strcmp(b->type, "INDEX") == 0) {
                        if (block_has(&R->post, b, on) || block_has(&R->post, b, on_only))
                                k = add_block(out, &R->post, b);
                } else if (mine && strcmp(b->type, "INDEX ATTACH") != 0)
                        k = add_block(out, &R->post, b);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int owned_sequences(Restore *R, const Chosen *ch, PGresult **ret) {
        const char *params[] = { ch->qualified };
        return execp(R, R->c, "listing the sequences a table owns",
                     "SELECT sn.nspname, s.relname FROM pg_catalog.pg_depend d "
                     "JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                     "JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace "
                     "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
                     "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
                     "AND d.refobjid = $1::pg_catalog.regclass AND d.deptype IN ('a', 'i')",
                     1, params, ret);
}

static int table_sequences(Restore *R, const Chosen *ch, size_t n_ch) {
        if (!R->l->has_sequences)
                return 0;
        _cleanup_buf_ LbBuf b = {};
        int k = read_schema_file(R, &R->l->sequences, "sequences.sql", &b);
        if (k < 0)
                return k;
        char **st = NULL;
        size_t n = 0;
        if (lb_pg_sql_statements((const char *) b.data, b.len, &st, &n) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n_ch && k == 0; i++) {
                _cleanup_pgresult_ PGresult *res = NULL;
                if ((k = owned_sequences(R, &ch[i], &res)) < 0)
                        break;
                for (int r = 0; r < PQntuples(res) && k == 0; r++) {
                        for (size_t j = 0; j < n && k == 0; j++) {
                                _cleanup_free_ char *schema = NULL, *name = NULL;
                                if (lb_pg_setval_target(st[j], &schema, &name) < 0 ||
                                    strcmp(schema, PQgetvalue(res, r, 0)) != 0 || strcmp(name, PQgetvalue(res, r, 1)) != 0)
                                        continue;
                                if ((k = exec(R, R->c, "sequences.sql", st[j], NULL)) == 0)
                                        R->res.sequences++;
                        }
                }
        }
        lb_pg_strv_free(st, n);
        return k;
}

static int analyze_chosen(Restore *R, const Chosen *ch, size_t n) {
        NameList l = { .v = calloc(n, sizeof *l.v), .n = n };
        if (!l.v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                l.v[i] = ch[i].qualified;
        int k = pool_run(R, n, analyze_one, &l, NULL);
        free(l.v);
        return k;
}

static void chosen_free(Chosen *ch, size_t n) {
        for (size_t i = 0; ch && i < n; i++) {
                free(ch[i].qualified);
                free(ch[i].dumped);
        }
        free(ch);
}

static int restore_tables(Restore *R) {
        const LbPgRestoreOptions *o = R->o;
        Chosen *ch = calloc(o->n_tables, sizeof *ch);
        size_t n = 0;
        _cleanup_free_ const LbPgTableFile **sel = calloc(o->n_tables, sizeof *sel);
        _cleanup_buf_ LbBuf create = {}, post = {}, fk = {}, script = {};
        int k = ch && sel ? 0 : -ENOMEM;

        for (size_t i = 0; i < o->n_tables && k == 0; i++) {
                const LbPgTableFile *t = NULL;
                if ((k = resolve_table(R, o->tables[i], &t)) < 0)
                        break;
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                        dup |= ch[j].t == t;
                if (dup)
                        continue;
                ch[n].t = t;
                sel[n] = t;
                ch[n].qualified = lb_pg_ident_qualified(t->schema, t->table);
                if (!ch[n++].qualified)
                        k = -ENOMEM;
        }

        /* Which exist, how pg_dump spells them, and whether they are empty. */
        size_t n_missing = 0;
        for (size_t i = 0; i < n && k == 0; i++) {
                const char *params[] = { ch[i].t->schema, ch[i].t->table };
                _cleanup_pgresult_ PGresult *res = NULL;
                if ((k = execp(R, R->c, "looking up the tables in the target",
                               "SELECT quote_ident($1) || '.' || quote_ident($2), EXISTS (SELECT 1 FROM "
                               "pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))",
                               2, params, &res)) < 0)
                        break;
                ch[i].dumped = strdup(PQgetvalue(res, 0, 0));
                ch[i].exists = PQgetvalue(res, 0, 1)[0] == 't';
                if (!ch[i].dumped) {
                        k = -ENOMEM;
                        break;
                }
                if (!ch[i].exists) {
                        n_missing++;
                        continue;
                }
                if (o->clean)
                        continue;
                _cleanup_free_ char *sql = lb_strdup_printf("SELECT EXISTS (SELECT 1 FROM ONLY %s)", ch[i].qualified);
                _cleanup_pgresult_ PGresult *rows = NULL;
                if (!sql)
                        k = -ENOMEM;
                else if ((k = exec(R, R->c, "checking that the tables are empty", sql, &rows)) == 0 &&
                         PQgetvalue(rows, 0, 0)[0] == 't')
                        k = fail(R, -EEXIST,
                                 "table %s.%s in database %s already has rows; --clean empties it first (TRUNCATE)",
                                 ch[i].t->schema, ch[i].t->table, R->dbname);
        }

        /* Empty the existing ones together (foreign keys between them are fine). */
        if (k == 0 && o->clean && n > n_missing) {
                LbBuf t = {};
                k = lb_buf_append(&t, "TRUNCATE TABLE ", 15);
                bool first = true;
                for (size_t i = 0; i < n && k == 0; i++) {
                        if (!ch[i].exists)
                                continue;
                        if (!first)
                                k = lb_buf_append(&t, ", ", 2);
                        if (k == 0)
                                k = lb_buf_append(&t, "ONLY ", 5);
                        if (k == 0)
                                k = lb_buf_append(&t, ch[i].qualified, strlen(ch[i].qualified));
                        first = false;
                }
                if (k == 0)
                        k = lb_buf_append_u8(&t, 0);
                if (k == 0)
                        k = exec(R, R->c, "--clean: TRUNCATE", (const char *) t.data, NULL);
                lb_buf_free(&t);
        }

        /* Create the missing ones from pre-data. */
        if (k == 0 && n_missing > 0) {
                if ((k = load_pre(R)) == 0)
                        k = load_post(R);
                for (size_t i = 0; i < n && k == 0; i++)
                        if (!ch[i].exists)
                                k = table_pre_blocks(R, &ch[i], &create);
                if (k == 0 && (k = wrap_script(&R->pre, &R->pre_script, &create, &script)) == 0)
                        k = psql_script(R, "creating the tables from pre-data.sql", R->psql_conninfo, script.data,
                                        script.len);
                R->res.tables_created = n_missing;
        }

        if (k == 0)
                k = load_data(R, sel, n);
        if (k == 0)
                k = table_sequences(R, ch, n);

        if (k == 0 && n_missing > 0) {
                bool *done = calloc(R->post_script.n_blocks + 1, sizeof *done);
                if (!done)
                        k = -ENOMEM;
                for (size_t i = 0; i < n && k == 0; i++)
                        if (!ch[i].exists)
                                k = table_post_blocks(R, &ch[i], &post, &fk, done);
                free(done);
                /* Errors here are warnings: the rows are in; a missing index
                 * or constraint is reported, not fatal. */
                if (k == 0 && post.len > 0) {
                        lb_buf_clear(&script);
                        if ((k = wrap_script(&R->post, &R->post_script, &post, &script)) == 0)
                                k = psql_script_lenient(R, "post-data.sql", R->psql_conninfo, script.data, script.len);
                }
                if (k == 0 && fk.len > 0) {
                        lb_buf_clear(&script);
                        if ((k = wrap_script(&R->post, &R->post_script, &fk, &script)) == 0)
                                k = psql_script_lenient(R, "post-data.sql (foreign keys)", R->psql_conninfo,
                                                        script.data, script.len);
                }
        }
        if (k == 0) {
                R->res.usable_ns = lb_mono_ns() - R->start;
                k = analyze_chosen(R, ch, n);
        }
        chosen_free(ch, n);
        return k;
}

/* ---- entry point ---- */

void lb_pg_restore_result_clear(LbPgRestoreResult *res) {
        if (!res)
                return;
        free(res->database);
        for (size_t i = 0; i < res->n_tables; i++) {
                free((char *) res->tables[i].schema);
                free((char *) res->tables[i].table);
        }
        free(res->tables);
        *res = (LbPgRestoreResult) {};
}

static void restore_done(Restore *R) {
        if (R->c)
                PQfinish(R->c);
        if (R->opts)
                PQconninfoFree(R->opts);
        free(R->dbname);
        free_secret(R->conninfo);
        free(R->psql_conninfo);
        free_secret(R->password);
        free(R->psql);
        lb_buf_free(&R->pre);
        lb_buf_free(&R->post);
        lb_pg_sql_script_clear(&R->pre_script);
        lb_pg_sql_script_clear(&R->post_script);
        lb_pg_layout_free(R->l);
        free(R->res.tables);
        free(R->res.database);
        pthread_mutex_destroy(&R->lock);
}

/* The result owns copies of the names the layout lent it. */
static int result_take(Restore *R, LbPgRestoreResult *res) {
        for (size_t i = 0; i < R->res.n_tables; i++) {
                LbPgRestoreTable *t = &R->res.tables[i];
                char *s = strdup(t->schema), *n = strdup(t->table);
                if (!s || !n) {
                        free(s);
                        free(n);
                        for (size_t j = 0; j < i; j++) {
                                free((char *) R->res.tables[j].schema);
                                free((char *) R->res.tables[j].table);
                        }
                        return -ENOMEM;
                }
                t->schema = s;
                t->table = n;
        }
        *res = R->res;
        R->res = (LbPgRestoreResult) {};
        return 0;
}

int lb_pg_restore(LbRepo *r, const LbSnapshot *s, const LbPgRestoreOptions *o, LbPgRestoreResult *res,
                  char **ret_error) {
        Restore R = { .r = r, .s = s, .o = o, .err = ret_error, .start = lb_mono_ns() };
        pthread_mutex_init(&R.lock, NULL);
        lb_hex_encode(s->id.b, 4, R.sid);
        if (ret_error)
                *ret_error = NULL;

        int k = lb_pg_layout_load(r, s, &R.l, ret_error);
        if (k < 0)
                goto done;
        if ((k = parse_target(&R)) < 0)
                goto done;
        const char *pw = opt_value(&R, "password");
        if (pw && !(R.password = strdup(pw))) {
                k = -ENOMEM;
                goto done;
        }
        k = target_dbname(o->conninfo ? o->conninfo : "", &R.dbname);
        if (k == -ENOENT && o->create) {
                k = fail(&R, -EINVAL, "--create needs the name of the database to create (dbname in --dbname)");
                goto done;
        }
        if (k < 0 && k != -ENOENT)
                goto done;
        if ((k = build_conninfo(&R, NULL, true, &R.conninfo)) < 0 ||
            (k = build_conninfo(&R, NULL, false, &R.psql_conninfo)) < 0)
                goto done;

        if (o->create && (k = create_database(&R)) < 0)
                goto done;
        if ((k = connect_db(&R, R.conninfo, R.dbname, &R.c)) < 0)
                goto done;
        if (!R.dbname && !(R.dbname = strdup(PQdb(R.c)))) {
                k = -ENOMEM;
                goto done;
        }
        R.res.server_version = PQserverVersion(R.c);
        /* Several COPY streams from a local repository keep the CPUs busy
         * on their own; read-ahead threads per stream would only add
         * hand-offs (about a quarter of the client's CPU time). */
        R.serial_read = (o->jobs ? o->jobs : 2) > 1 && r->be->local_dir && r->be->local_dir(r->be);
        if ((k = find_psql(&R, R.c)) < 0)
                goto done;
        if (o->globals && !o->create && (k = run_globals(&R, R.psql_conninfo)) < 0)
                goto done;

        k = o->n_tables > 0 ? restore_tables(&R) : restore_whole(&R);
        if (k < 0)
                goto done;
        R.res.total_ns = lb_mono_ns() - R.start;
        if (!(R.res.database = strdup(R.dbname))) {
                k = -ENOMEM;
                goto done;
        }
        if (res && (k = result_take(&R, res)) < 0)
                goto done;
done:
        if (k < 0 && ret_error && !*ret_error && k != -ENOMEM)
                *ret_error = lb_strdup_printf("%s", strerror(-k));
        restore_done(&R);
        return k;
}
