/* SPDX-License-Identifier: MIT */
/*
 * The WebDAV backend, and the rclone backend built on it (docs/design.md
 * "Remote repositories").
 *
 * Objects are files BASE/<layout path>. A put is a PUT to a temporary
 * name in the object's folder (".tmp-<random>", which listings ignore)
 * followed by a MOVE onto the final name, so a reader never sees a partial
 * object even on servers that write PUT bodies in place. A PUT into a
 * missing folder fails (404 or 409); then the folders are made with MKCOL
 * and the PUT is repeated. Listings are PROPFIND Depth: 1; packs/ is
 * listed one shard folder at a time.
 *
 * rclone:REMOTE:PATH starts `rclone serve webdav REMOTE:PATH` on a free
 * loopback port with a random user and password (passed through the
 * environment, not the command line), waits until it answers, talks
 * WebDAV to it and stops it when the backend is freed.
 */
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "store/backend.h"
#include "store/crypto.h"
#include "store/http.h"
#include "store/location.h"
#include "store/remote.h"
#include "store/xmllist.h"

extern char **environ;

typedef struct DavBackend {
        LbBackend base;    /* must be first */
        LbRemoteCache cache;
        LbHttp *http;
        char *origin;      /* "http://host:port" */
        char *root;        /* URL path of the repository, "" or "/a/b" (%-encoded) */
        pid_t rclone;      /* the server we started, 0 if none */
} DavBackend;

static const char *const top_dirs[] = { "keys", "packs", "index", "snapshots", "locks" };

static const char propfind_body[] =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
        "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>";

/* URL of a path relative to the repository root ("" for the root). */
static char *rel_url(DavBackend *d, const char *rel) {
        return lb_strdup_printf("%s%s/%s", d->origin, d->root, rel);
}

static char *obj_url(DavBackend *d, LbObjType t, const char *name) {
        if (t != LB_OBJ_CONFIG && !lb_obj_name_ok(name))
                return NULL;
        _cleanup_free_ char *rel = lb_obj_path(t, name);
        return rel ? rel_url(d, rel) : NULL;
}

static int bad_name_or_nomem(LbObjType t, const char *name) {
        return t != LB_OBJ_CONFIG && !lb_obj_name_ok(name) ? -EINVAL : -ENOMEM;
}

static int simple(DavBackend *d, const char *method, const char *url, const char *const *hdrs, long *ret_status) {
        LbHttpRequest q = { .method = method, .url = url, .headers = hdrs };
        LbHttpResponse resp = {};
        int k = lb_http_do(d->http, &q, &resp);
        lb_buf_free(&resp.body);
        if (ret_status)
                *ret_status = resp.status;
        return k;
}

/* MKCOL of a folder (path relative to the root, "" for the root itself)
 * and of its missing parents. */
static int mkcol_p(DavBackend *d, const char *rel, unsigned depth) {
        if (depth > 64)
                return -ELOOP;
        _cleanup_free_ char *url = lb_strdup_printf("%s%s%s%s", d->origin, d->root, *rel ? "/" : "", rel);
        if (!url)
                return -ENOMEM;
        int k = simple(d, "MKCOL", url, NULL, NULL);
        if (k == 0 || k == -EEXIST)
                return 0;
        if (k != -EBUSY && k != -ENOENT)
                return k;
        /* The parent is missing: make it, then try again. */
        const char *slash = strrchr(rel, '/');
        if (slash) {
                _cleanup_free_ char *parent = strndup(rel, (size_t) (slash - rel));
                if (!parent)
                        return -ENOMEM;
                k = mkcol_p(d, parent, depth + 1);
        } else if (*rel) {
                k = mkcol_p(d, "", depth + 1);
        } else {
                /* The root's parents: walk up the URL path. */
                const char *rs = strrchr(d->root, '/');
                if (!rs || rs == d->root)
                        return -ENXIO;
                DavBackend up = *d;
                _cleanup_free_ char *root = strndup(d->root, (size_t) (rs - d->root));
                if (!root)
                        return -ENOMEM;
                up.root = root;
                k = mkcol_p(&up, "", depth + 1);
        }
        if (k < 0)
                return k;
        k = simple(d, "MKCOL", url, NULL, NULL);
        return k == -EEXIST ? 0 : k;
}

static int dav_put(LbBackend *b, LbObjType t, const char *name, const void *p, size_t n) {
        DavBackend *d = (DavBackend *) b;
        _cleanup_free_ char *url = obj_url(d, t, name);
        _cleanup_free_ char *rel = lb_obj_path(t, name);
        if (!url || !rel)
                return bad_name_or_nomem(t, name);
        uint8_t rnd[8];
        char tmpname[2 * sizeof rnd + 1];
        lb_random(rnd, sizeof rnd);
        lb_hex_encode(rnd, sizeof rnd, tmpname);
        const char *slash = strrchr(rel, '/');
        _cleanup_free_ char *dir = slash ? strndup(rel, (size_t) (slash - rel)) : strdup("");
        _cleanup_free_ char *tmp = dir ? lb_strdup_printf("%s%s/%s%s.tmp-%s", d->origin, d->root, dir, *dir ? "/" : "",
                                                          tmpname)
                                       : NULL;
        _cleanup_free_ char *dest = lb_strdup_printf("Destination: %s", url);
        if (!dir || !tmp || !dest)
                return -ENOMEM;
        static const char *const put_hdrs[] = { "Content-Type: application/octet-stream", NULL };
        LbHttpRequest q = { .method = "PUT", .url = tmp, .headers = put_hdrs, .body = p, .body_len = n, .has_body = true };
        LbHttpResponse resp = {};
        int k = lb_http_do(d->http, &q, &resp);
        if (k == -ENOENT || k == -EBUSY) {
                /* The folder is missing (a new pack shard, or a fresh remote). */
                k = mkcol_p(d, dir, 0);
                if (k == 0)
                        k = lb_http_do(d->http, &q, &resp);
        }
        lb_buf_free(&resp.body);
        if (k < 0)
                return k;
        const char *move_hdrs[] = { dest, "Overwrite: T", NULL };
        k = simple(d, "MOVE", tmp, move_hdrs, NULL);
        if (k < 0)
                (void) simple(d, "DELETE", tmp, NULL, NULL);
        return k;
}

static int dav_fetch(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out) {
        DavBackend *d = (DavBackend *) b;
        _cleanup_free_ char *url = obj_url(d, t, name);
        if (!url)
                return bad_name_or_nomem(t, name);
        return lb_remote_fetch(d->http, url, NULL, off, len, out);
}

static int dav_get(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out) {
        DavBackend *d = (DavBackend *) b;
        return lb_remote_cache_get(&d->cache, b, dav_fetch, t, name, off, len, out);
}

static int dav_stat(LbBackend *b, LbObjType t, const char *name, uint64_t *ret_size) {
        DavBackend *d = (DavBackend *) b;
        _cleanup_free_ char *url = obj_url(d, t, name);
        if (!url)
                return bad_name_or_nomem(t, name);
        LbHttpRequest q = { .method = "HEAD", .url = url };
        LbHttpResponse resp = {};
        int k = lb_http_do(d->http, &q, &resp);
        lb_buf_free(&resp.body);
        if (k < 0)
                return k;
        if (resp.content_length == UINT64_MAX)
                return -EPROTO;
        *ret_size = resp.content_length;
        return 0;
}

/* PROPFIND Depth: 1 of a folder (relative path, "" for the root). */
static int propfind(DavBackend *d, const char *rel, LbRemoteList *ret) {
        _cleanup_free_ char *url = lb_strdup_printf("%s%s/%s%s", d->origin, d->root, rel, *rel ? "/" : "");
        if (!url)
                return -ENOMEM;
        static const char *const hdrs[] = { "Depth: 1", "Content-Type: application/xml; charset=utf-8", NULL };
        LbHttpRequest q = { .method = "PROPFIND", .url = url, .headers = hdrs, .body = propfind_body,
                            .body_len = sizeof propfind_body - 1, .has_body = true, .max_response = LB_XML_MAX };
        LbHttpResponse resp = {};
        int k = lb_http_do(d->http, &q, &resp);
        if (k == 0 && resp.status != 207)
                k = -EPROTO;
        if (k == 0)
                k = lb_webdav_parse_multistatus(resp.body.data, resp.body.len, ret);
        lb_buf_free(&resp.body);
        return k;
}

static int list_files(DavBackend *d, const char *rel, LbListFn fn, void *userdata) {
        LbRemoteList l = {};
        int k = propfind(d, rel, &l);
        if (k == -ENOENT)
                return 0; /* no folder yet: nothing in it */
        for (size_t i = 0; k == 0 && i < l.n; i++) {
                if (l.v[i].is_dir || !lb_obj_name_ok(l.v[i].name))
                        continue; /* the folder itself, temp files, strangers */
                k = fn(l.v[i].name, l.v[i].size, userdata);
        }
        lb_remote_list_clear(&l);
        return k;
}

static int dav_list(LbBackend *b, LbObjType t, LbListFn fn, void *userdata) {
        DavBackend *d = (DavBackend *) b;
        if (t == LB_OBJ_CONFIG || !lb_obj_type_dir(t))
                return -EINVAL;
        if (t != LB_OBJ_PACK)
                return list_files(d, lb_obj_type_dir(t), fn, userdata);
        LbRemoteList shards = {};
        int k = propfind(d, "packs", &shards);
        if (k == -ENOENT)
                return 0;
        for (size_t i = 0; k == 0 && i < shards.n; i++) {
                const char *s = shards.v[i].name;
                if (!shards.v[i].is_dir || strlen(s) != 2 || !lb_is_hex(s, 2) || s[0] != (char) tolower(s[0]) ||
                    s[1] != (char) tolower(s[1]))
                        continue;
                _cleanup_free_ char *rel = lb_strdup_printf("packs/%s", s);
                k = rel ? list_files(d, rel, fn, userdata) : -ENOMEM;
        }
        lb_remote_list_clear(&shards);
        return k;
}

/* DELETEs the ".tmp-*" uploads a killed put left in one folder. */
static int remove_temps_in(DavBackend *d, const char *rel, unsigned *n) {
        LbRemoteList l = {};
        int k = propfind(d, rel, &l);
        if (k == -ENOENT)
                return 0;
        for (size_t i = 0; k == 0 && i < l.n; i++) {
                if (l.v[i].is_dir || strncmp(l.v[i].name, ".tmp-", 5) != 0 || strchr(l.v[i].name, '/'))
                        continue;
                _cleanup_free_ char *url = lb_strdup_printf("%s%s/%s/%s", d->origin, d->root, rel, l.v[i].name);
                k = url ? simple(d, "DELETE", url, NULL, NULL) : -ENOMEM;
                if (k == -ENOENT)
                        k = 0;
                else if (k == 0)
                        (*n)++;
        }
        lb_remote_list_clear(&l);
        return k;
}

static int dav_remove_temporaries(LbBackend *b, unsigned *ret_removed) {
        DavBackend *d = (DavBackend *) b;
        unsigned n = 0;
        int k = remove_temps_in(d, "index", &n);
        if (k == 0)
                k = remove_temps_in(d, "snapshots", &n);
        LbRemoteList shards = {};
        if (k == 0) {
                k = propfind(d, "packs", &shards);
                if (k == -ENOENT)
                        k = 0;
        }
        for (size_t i = 0; k == 0 && i < shards.n; i++) {
                const char *s = shards.v[i].name;
                if (!shards.v[i].is_dir || strlen(s) != 2 || !lb_is_hex(s, 2))
                        continue;
                _cleanup_free_ char *rel = lb_strdup_printf("packs/%s", s);
                k = rel ? remove_temps_in(d, rel, &n) : -ENOMEM;
        }
        lb_remote_list_clear(&shards);
        if (k == 0 && ret_removed)
                *ret_removed = n;
        return k;
}

static int dav_remove(LbBackend *b, LbObjType t, const char *name) {
        DavBackend *d = (DavBackend *) b;
        _cleanup_free_ char *url = obj_url(d, t, name);
        if (!url)
                return bad_name_or_nomem(t, name);
        lb_remote_cache_forget(&d->cache, t, name);
        return simple(d, "DELETE", url, NULL, NULL);
}

static int dav_create(LbBackend *b) {
        DavBackend *d = (DavBackend *) b;
        LbRemoteList l = {};
        int k = propfind(d, "", &l);
        if (k == -ENOENT)
                k = mkcol_p(d, "", 0);
        else if (k == 0) {
                /* Anything but the folder itself makes it non-empty. */
                for (size_t i = 0; i < l.n; i++) {
                        size_t rl = strlen(l.v[i].path);
                        bool self = l.n == 1 || (l.v[i].is_dir && rl <= strlen(d->root) &&
                                                 strncmp(d->root + strlen(d->root) - rl, l.v[i].path, rl) == 0);
                        if (!self)
                                k = -ENOTEMPTY;
                }
        }
        lb_remote_list_clear(&l);
        if (k < 0)
                return k;
        for (size_t i = 0; i < LB_ARRAY_SIZE(top_dirs); i++) {
                k = mkcol_p(d, top_dirs[i], 0);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int dav_exists(LbBackend *b) {
        DavBackend *d = (DavBackend *) b;
        _cleanup_free_ char *url = rel_url(d, "config");
        if (!url)
                return -ENOMEM;
        int k = simple(d, "HEAD", url, NULL, NULL);
        if (k != -ENOENT)
                return k;
        /* Tell a missing folder from a missing repository. */
        LbRemoteList l = {};
        k = propfind(d, "", &l);
        lb_remote_list_clear(&l);
        return k == -ENOENT ? -ENXIO : k < 0 ? k : -ENOENT;
}

static const char *dav_local_dir(LbBackend *b) {
        return NULL;
}

static void dav_free(LbBackend *b) {
        DavBackend *d = (DavBackend *) b;
        lb_remote_cache_done(&d->cache);
        lb_http_free(d->http);
        if (d->rclone > 0) {
                kill(d->rclone, SIGTERM);
                while (waitpid(d->rclone, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        free(d->origin);
        free(d->root);
        free(d->base.location);
        free(d);
}

static DavBackend *dav_new(const char *text) {
        DavBackend *d = calloc(1, sizeof *d);
        if (!d)
                return NULL;
        d->base = (LbBackend) {
                .version = LB_BACKEND_VERSION,
                .kind = "webdav",
                .create = dav_create,
                .exists = dav_exists,
                .put = dav_put,
                .get = dav_get,
                .stat = dav_stat,
                .list = dav_list,
                .remove_temporaries = dav_remove_temporaries,
                .remove = dav_remove,
                .local_dir = dav_local_dir,
                .free = dav_free,
        };
        lb_remote_cache_init(&d->cache);
        d->base.location = strdup(text);
        if (!d->base.location) {
                dav_free(&d->base);
                return NULL;
        }
        return d;
}

static int dav_connect(DavBackend *d, const char *user, const char *password) {
        LbHttpOptions o;
        lb_http_get_defaults(&o);
        o.user = user;
        o.password = password;
        return lb_http_new(&o, &d->http);
}

int lb_backend_webdav_open(const LbLocation *loc, const char *text, LbBackend **ret) {
        DavBackend *d = dav_new(text);
        if (!d)
                return -ENOMEM;
        char port[16] = "";
        if (loc->port)
                snprintf(port, sizeof port, ":%u", loc->port);
        d->origin = lb_strdup_printf("%s://%s%s", loc->https ? "https" : "http", loc->host, port);
        d->root = strdup(loc->prefix);
        int k = d->origin && d->root ? 0 : -ENOMEM;
        const char *password = getenv("LONGBOX_WEBDAV_PASSWORD");
        if (!password || !*password)
                password = loc->password;
        if (k == 0)
                k = dav_connect(d, loc->user, password);
        if (k < 0) {
                dav_free(&d->base);
                return k;
        }
        *ret = &d->base;
        return 0;
}

/* ---- rclone ---- */

static int free_port(unsigned *ret) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof a;
        if (bind(fd, (struct sockaddr *) &a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *) &a, &l) < 0)
                return -errno;
        *ret = ntohs(a.sin_port);
        return 0;
}

/* Starts rclone; *ret_pid on success. -ENOPKG when rclone cannot be run. */
static int spawn_rclone(const char *remote, unsigned port, const char *user, const char *pass, pid_t *ret_pid) {
        const char *exe = getenv("LONGBOX_RCLONE");
        if (!exe || !*exe)
                exe = "rclone";
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
        /* The credentials go through rclone's environment: the command line is
         * visible to every local user. */
        size_t ne = 0;
        while (environ[ne])
                ne++;
        char **envp = calloc(ne + 3, sizeof *envp);
        _cleanup_free_ char *eu = lb_strdup_printf("RCLONE_USER=%s", user);
        _cleanup_free_ char *ep = lb_strdup_printf("RCLONE_PASS=%s", pass);
        if (!envp || !eu || !ep) {
                free(envp);
                return -ENOMEM;
        }
        size_t j = 0;
        for (size_t i = 0; i < ne; i++)
                if (strncmp(environ[i], "RCLONE_USER=", 12) != 0 && strncmp(environ[i], "RCLONE_PASS=", 12) != 0)
                        envp[j++] = environ[i];
        envp[j++] = eu;
        envp[j++] = ep;
        envp[j] = NULL;
        const char *argv[] = { exe, "serve", "webdav", remote, "--addr", addr, "--log-level", "ERROR", NULL };

        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0) {
                free(envp);
                return -errno;
        }
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                int k = -errno;
                close(pfd[0]);
                close(pfd[1]);
                free(envp);
                return k;
        }
        if (pid == 0) {
                /* Die with longbox, and keep stdin/stdout for longbox's own use. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                        _exit(127);
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull >= 0) {
                        dup2(devnull, STDIN_FILENO);
                        dup2(devnull, STDOUT_FILENO);
                }
                execvpe(exe, (char *const *) argv, envp);
                int e = errno;
                (void) !write(pfd[1], &e, sizeof e);
                _exit(127);
        }
        close(pfd[1]);
        free(envp);
        int e = 0;
        ssize_t n;
        while ((n = read(pfd[0], &e, sizeof e)) < 0 && errno == EINTR)
                ;
        close(pfd[0]);
        if (n == (ssize_t) sizeof e) {
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return e == ENOENT || e == EACCES ? -ENOPKG : -e;
        }
        *ret_pid = pid;
        return 0;
}

/* Waits until the server answers a PROPFIND of the root (or dies). */
static int wait_ready(DavBackend *d) {
        _cleanup_free_ char *url = lb_strdup_printf("%s/", d->origin);
        if (!url)
                return -ENOMEM;
        static const char *const hdrs[] = { "Depth: 0", NULL };
        int64_t deadline = lb_mono_ns() + 30 * 1000000000ll;
        for (;;) {
                int st;
                pid_t w = waitpid(d->rclone, &st, WNOHANG);
                if (w == d->rclone) {
                        d->rclone = 0;
                        return -ECHILD; /* rclone exited: bad remote, or the port was taken */
                }
                LbHttpRequest q = { .method = "PROPFIND", .url = url, .headers = hdrs, .no_retry = true };
                LbHttpResponse resp = {};
                int k = lb_http_do(d->http, &q, &resp);
                lb_buf_free(&resp.body);
                if (k == 0 || resp.status >= 400)
                        return resp.status == 401 ? -EACCES : 0;
                if (lb_mono_ns() > deadline)
                        return -ETIMEDOUT;
                struct timespec ts = { .tv_nsec = 50 * 1000000 };
                nanosleep(&ts, NULL);
        }
}

int lb_backend_rclone_open(const LbLocation *loc, const char *text, LbBackend **ret) {
        uint8_t rnd[16];
        char user[2 * 8 + 1], pass[2 * 16 + 1];
        lb_random(rnd, 8);
        lb_hex_encode(rnd, 8, user);
        lb_random(rnd, sizeof rnd);
        lb_hex_encode(rnd, sizeof rnd, pass);
        int k = -ECHILD;
        for (int tries = 0; tries < 3 && k == -ECHILD; tries++) {
                DavBackend *d = dav_new(text);
                if (!d)
                        return -ENOMEM;
                d->base.kind = "rclone";
                unsigned port = 0;
                k = free_port(&port);
                if (k == 0) {
                        d->origin = lb_strdup_printf("http://127.0.0.1:%u", port);
                        d->root = strdup("");
                        k = d->origin && d->root ? 0 : -ENOMEM;
                }
                if (k == 0)
                        k = dav_connect(d, user, pass);
                if (k == 0)
                        k = spawn_rclone(loc->path, port, user, pass, &d->rclone);
                if (k == 0)
                        k = wait_ready(d);
                if (k == 0) {
                        explicit_bzero(pass, sizeof pass);
                        *ret = &d->base;
                        return 0;
                }
                dav_free(&d->base);
        }
        explicit_bzero(pass, sizeof pass);
        return k == -ECHILD ? -EIO : k;
}
