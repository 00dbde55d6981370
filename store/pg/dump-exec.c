/* SPDX-License-Identifier: MIT */
/* Running pg_dump and pg_dumpall for a backup: where they connect (without
 * the password on their command line), capturing their output, and the
 * database-level part of `pg_dump --create`. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "store/pg/dump.h"

extern char **environ;

/* ---- where a child connects ---- */

static int append_kv(LbBuf *b, const char *key, const char *val) {
        int k = 0;
        if (b->len > 0)
                k = lb_buf_append(b, " ", 1);
        if (k == 0)
                k = lb_buf_append(b, key, strlen(key));
        if (k == 0)
                k = lb_buf_append(b, "='", 2);
        for (const char *p = val; k == 0 && *p; p++) {
                if (*p == '\'' || *p == '\\')
                        k = lb_buf_append_u8(b, '\\');
                if (k == 0)
                        k = lb_buf_append_u8(b, (uint8_t) *p);
        }
        if (k == 0)
                k = lb_buf_append(b, "'", 1);
        return k;
}

void lb_pg_child_conn_clear(LbPgChildConn *cc) {
        if (cc->password) {
                explicit_bzero(cc->password, strlen(cc->password));
                free(cc->password);
        }
        free(cc->conninfo);
        *cc = (LbPgChildConn) {};
}

int lb_pg_child_conn(PGconn *c, const char *conninfo, const char *dbname, LbPgChildConn *ret) {
        char *err = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
        if (!opts) {
                PQfreemem(err);
                return -EINVAL;
        }
        LbPgChildConn cc = {};
        LbBuf b = {};
        bool hostaddr = false;
        int k = 0;
        for (PQconninfoOption *o = opts; k == 0 && o->keyword; o++) {
                if (!o->val || !*o->val)
                        continue;
                if (strcmp(o->keyword, "password") == 0) {
                        if (!(cc.password = strdup(o->val)))
                                k = -ENOMEM;
                        continue;
                }
                /* libpq has no environment variable for it, and a command line
                 * is readable by every local user: children go without. */
                if (strcmp(o->keyword, "sslpassword") == 0)
                        continue;
                if (strcmp(o->keyword, "hostaddr") == 0)
                        hostaddr = true;
                if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0 ||
                    strcmp(o->keyword, "port") == 0 || strcmp(o->keyword, "dbname") == 0)
                        continue;
                k = append_kv(&b, o->keyword, o->val);
        }
        PQconninfoFree(opts);
        /* The server the leader reached, not the first of a host list. */
        const char *host = PQhost(c), *port = PQport(c), *addr = PQhostaddr(c);
        if (k == 0 && host && *host)
                k = append_kv(&b, "host", host);
        if (k == 0 && hostaddr && addr && *addr)
                k = append_kv(&b, "hostaddr", addr);
        if (k == 0 && port && *port)
                k = append_kv(&b, "port", port);
        if (k == 0)
                k = append_kv(&b, "dbname", dbname);
        if (k == 0)
                k = lb_buf_append_u8(&b, 0);
        if (k < 0) {
                lb_buf_free(&b);
                lb_pg_child_conn_clear(&cc);
                return k;
        }
        cc.conninfo = (char *) b.data;
        *ret = cc;
        return 0;
}

/* ---- running a child ---- */

#define STDERR_KEEP (16u * 1024)
#define READ_SIZE (256u * 1024)

static void env_free(char **env, char *pw_entry) {
        if (pw_entry) {
                explicit_bzero(pw_entry, strlen(pw_entry));
                free(pw_entry);
        }
        free(env);
}

/* environ, with PGPASSWORD replaced when password is set. */
static int env_build(const char *password, char ***ret, char **ret_pw_entry) {
        size_t n = 0;
        while (environ && environ[n])
                n++;
        char **env = calloc(n + 2, sizeof *env);
        if (!env)
                return -ENOMEM;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
                if (!password || strncmp(environ[i], "PGPASSWORD=", 11) != 0)
                        env[m++] = environ[i];
        char *pw = NULL;
        if (password) {
                pw = lb_strdup_printf("PGPASSWORD=%s", password);
                if (!pw) {
                        free(env);
                        return -ENOMEM;
                }
                env[m++] = pw;
        }
        *ret = env;
        *ret_pw_entry = pw;
        return 0;
}

static void keep_tail(LbBuf *b, const uint8_t *p, size_t n) {
        if (n >= STDERR_KEEP) {
                p += n - STDERR_KEEP;
                n = STDERR_KEEP;
        }
        if (b->len + n > 2 * STDERR_KEEP) {
                size_t drop = b->len + n - STDERR_KEEP;
                drop = LB_MIN(drop, b->len);
                memmove(b->data, b->data + drop, b->len - drop);
                b->len -= drop;
        }
        if (lb_buf_append(b, p, n) < 0)
                return; /* out of memory: keep what we have */
}

static int wait_pid(pid_t pid, int *ret_status) {
        int status;
        pid_t p;
        do
                p = waitpid(pid, &status, 0);
        while (p < 0 && errno == EINTR);
        if (p < 0)
                return -errno;
        *ret_status = status;
        return 0;
}

static int spawn(const char *const *argv, const char *password, int out_fd, int err_fd, pid_t *ret) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        char **env = NULL, *pw = NULL;
        int k = env_build(password, &env, &pw);
        if (k < 0)
                return k;
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&at);
        sigset_t def, none;
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        sigaddset(&def, SIGTERM);
        sigaddset(&def, SIGINT);
        sigemptyset(&none);
        int e = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (e == 0)
                e = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
        if (e == 0)
                e = posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
        if (e == 0)
                e = posix_spawnattr_setsigdefault(&at, &def);
        if (e == 0)
                e = posix_spawnattr_setsigmask(&at, &none);
        if (e == 0)
                e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
        if (e == 0)
                e = posix_spawn(ret, argv[0], &fa, &at, (char *const *) argv, env);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        env_free(env, pw);
        return -e;
}

int lb_pg_run(const char *const *argv, const char *password, LbPgOutputFn fn, void *userdata,
              const atomic_bool *cancel, int *ret_status, char **ret_stderr) {
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        if (pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(err, O_CLOEXEC) < 0) {
                int k = -errno;
                close(out[0]);
                close(out[1]);
                return k;
        }
        pid_t pid = 0;
        int k = spawn(argv, password, out[1], err[1], &pid);
        close(out[1]);
        close(err[1]);
        if (k < 0) {
                close(out[0]);
                close(err[0]);
                return k;
        }
        _cleanup_free_ uint8_t *buf = malloc(READ_SIZE);
        _cleanup_buf_ LbBuf tail = {};
        struct pollfd pfd[2] = { { .fd = out[0], .events = POLLIN }, { .fd = err[0], .events = POLLIN } };
        if (!buf)
                k = -ENOMEM;
        while (k == 0 && (pfd[0].fd >= 0 || pfd[1].fd >= 0)) {
                if (cancel && atomic_load(cancel)) {
                        k = -ECANCELED;
                        break;
                }
                int r = poll(pfd, 2, 200);
                if (r < 0 && errno != EINTR)
                        k = -errno;
                if (r <= 0)
                        continue;
                for (int i = 0; i < 2 && k == 0; i++) {
                        if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t n = read(pfd[i].fd, buf, READ_SIZE);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n < 0)
                                k = -errno;
                        else if (n == 0) {
                                close(pfd[i].fd);
                                pfd[i].fd = -1;
                        } else if (i == 0)
                                k = fn(buf, (size_t) n, userdata);
                        else
                                keep_tail(&tail, buf, (size_t) n);
                }
        }
        for (int i = 0; i < 2; i++)
                if (pfd[i].fd >= 0)
                        close(pfd[i].fd);
        if (k < 0)
                (void) kill(pid, SIGTERM);
        int status = 0;
        int w = wait_pid(pid, &status);
        if (k < 0)
                return k;
        if (w < 0)
                return w;
        if (ret_stderr) {
                if (lb_buf_append_u8(&tail, 0) < 0)
                        return -ENOMEM;
                *ret_stderr = (char *) LB_TAKE_PTR(tail.data);
        }
        *ret_status = status;
        return 0;
}

/* ---- the database-level part of pg_dump --create ---- */

static bool starts(const char *p, const char *end, const char *prefix) {
        size_t n = strlen(prefix);
        return (size_t) (end - p) >= n && memcmp(p, prefix, n) == 0;
}

static bool is_meta_command(const char *p, const char *end) {
        return starts(p, end, "\\connect") || starts(p, end, "\\restrict") || starts(p, end, "\\unrestrict");
}

/* Whether the entry whose "-- Name: ..." line is [p, end) belongs to the database itself. */
static bool database_entry(const char *p, const char *end) {
        const char *name = p + strlen("-- Name: ");
        const char *type = memmem(name, (size_t) (end - name), "; Type: ", 8);
        if (!type)
                return false;
        const char *tend = memmem(type + 8, (size_t) (end - type - 8), "; Schema: ", 10);
        if (!tend)
                return false;
        size_t tlen = (size_t) (tend - type - 8);
        const char *t = type + 8;
#define TYPE_IS(s) (tlen == strlen(s) && memcmp(t, s, tlen) == 0)
        if (TYPE_IS("DATABASE") || TYPE_IS("DATABASE PROPERTIES"))
                return true;
        if (TYPE_IS("COMMENT") || TYPE_IS("ACL") || TYPE_IS("SECURITY LABEL"))
                return starts(name, type, "DATABASE ");
#undef TYPE_IS
        return false;
}

typedef struct Line {
        const char *p, *end;       /* end: at the '\n' or the end of input */
} Line;

static bool entry_starts(const Line *l, size_t i, size_t n) {
        return i + 1 < n && l[i].end - l[i].p == 2 && starts(l[i].p, l[i].end, "--") &&
               starts(l[i + 1].p, l[i + 1].end, "-- Name: ");
}

int lb_pg_database_sql(const char *dump, size_t n, LbBuf *out) {
        static const char head[] = "--\n-- The database itself, as pg_dump --create emits it (longbox)\n--\n\n";
        size_t n_lines = 0;
        for (size_t i = 0; i < n; i++)
                n_lines += dump[i] == '\n';
        _cleanup_free_ Line *l = calloc(n_lines + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        n_lines = 0;
        for (const char *p = dump, *end = dump + n; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                l[n_lines++] = (Line) { p, nl ? nl : end };
                p = nl ? nl + 1 : end;
        }
        int k = lb_buf_append(out, head, sizeof head - 1);
        size_t i = 0;
        /* The preamble: its settings only. */
        bool any = false;
        for (; k == 0 && i < n_lines && !entry_starts(l, i, n_lines); i++)
                if (starts(l[i].p, l[i].end, "SET ") || starts(l[i].p, l[i].end, "SELECT pg_catalog.set_config(")) {
                        k = lb_buf_append(out, l[i].p, (size_t) (l[i].end - l[i].p));
                        if (k == 0)
                                k = lb_buf_append(out, "\n", 1);
                        any = true;
                }
        if (k == 0 && any)
                k = lb_buf_append(out, "\n", 1);
        /* The entries: the database's own, each up to a psql meta-command
         * (\connect and the settings repeated after it are left out). */
        while (k == 0 && i < n_lines) {
                size_t start = i++;
                while (i < n_lines && !entry_starts(l, i, n_lines))
                        i++;
                if (!database_entry(l[start + 1].p, l[start + 1].end))
                        continue;
                for (size_t j = start; k == 0 && j < i && !is_meta_command(l[j].p, l[j].end); j++) {
                        k = lb_buf_append(out, l[j].p, (size_t) (l[j].end - l[j].p));
                        if (k == 0)
                                k = lb_buf_append(out, "\n", 1);
                }
        }
        return k;
}
