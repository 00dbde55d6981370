/* SPDX-License-Identifier: MIT */
#include "store/restore.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store/walk.h"

typedef struct Ctx {
        LbRepo *r;
        const LbRestoreOptions *o;
        LbRestoreStats st;
        int first_err;
        char **inc;              /* normalized include paths */
        size_t n_inc;
        bool root;               /* running as root: chown failures are real */
        unsigned tmp_counter;
        uint64_t progress_bytes;  /* written so far, for o->progress */
} Ctx;

static void record(Ctx *c, const char *path, int err, bool damaged) {
        c->st.errors++;
        if (damaged)
                c->st.errors_damaged++;
        if (c->first_err == 0)
                c->first_err = err;
        if (c->o->warn)
                c->o->warn(c->o->userdata, path, err);
}


/* true when p is a or lies below a. */
static bool path_under(const char *p, const char *a) {
        if (strcmp(a, "/") == 0)
                return true;
        size_t n = strlen(a);
        return strncmp(p, a, n) == 0 && (p[n] == 0 || p[n] == '/');
}

enum { SEL_NONE, SEL_PARENT, SEL_ALL };

static int select_path(const Ctx *c, const char *p) {
        if (c->n_inc == 0)
                return SEL_ALL;
        for (size_t i = 0; i < c->n_inc; i++)
                if (path_under(p, c->inc[i]))
                        return SEL_ALL;
        for (size_t i = 0; i < c->n_inc; i++)
                if (path_under(c->inc[i], p))
                        return SEL_PARENT;
        return SEL_NONE;
}

static void node_times(const LbNode *n, struct timespec ts[2]) {
        int64_t sec = n->mtime_ns / 1000000000;
        int64_t nsec = n->mtime_ns % 1000000000;
        if (nsec < 0) {
                nsec += 1000000000;
                sec--;
        }
        ts[0] = ts[1] = (struct timespec) { .tv_sec = (time_t) sec, .tv_nsec = (long) nsec };
}

/* chown that a non-root user may fail at: EPERM is expected then. */
static int chown_result(Ctx *c, int k) {
        if (k < 0 && !(errno == EPERM && !c->root))
                return -errno;
        return 0;
}

static int restore_tree(Ctx *c, int dirfd, const LbId *tree, const char *snap_prefix, const char *tpath_prefix,
                        bool all, unsigned depth);

static int open_dir_at(int dirfd, const char *name) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static void restore_dir(Ctx *c, int dirfd, const LbNode *n, const char *snap_path, const char *tpath, bool all,
                        unsigned depth) {
        if (mkdirat(dirfd, n->name, 0700) < 0 && errno != EEXIST) {
                record(c, tpath, -errno, false);
                return;
        }
        int fd = open_dir_at(dirfd, n->name);
        if (fd == -ENOTDIR || fd == -ELOOP) {
                /* Something else has the name: a directory replaces it. */
                if (unlinkat(dirfd, n->name, 0) < 0 || mkdirat(dirfd, n->name, 0700) < 0) {
                        record(c, tpath, -errno, false);
                        return;
                }
                fd = open_dir_at(dirfd, n->name);
        }
        if (fd < 0) {
                record(c, tpath, fd, false);
                return;
        }
        _cleanup_close_ int dfd = fd;

        if (n->has_subtree) {
                int k = restore_tree(c, dfd, &n->subtree, snap_path, tpath, all, depth + 1);
                if (k < 0)
                        record(c, tpath, k, k == -EBADMSG || k == -ENOENT);
        }

        /* Post-order: the directory's own metadata after its contents. */
        struct timespec ts[2];
        node_times(n, ts);
        int k = chown_result(c, fchown(dfd, n->uid, n->gid));
        if (k == 0 && fchmod(dfd, n->mode & 07777) < 0)
                k = -errno;
        if (k == 0 && futimens(dfd, ts) < 0)
                k = -errno;
        if (k < 0) {
                record(c, tpath, k, false);
                return;
        }
        c->st.dirs++;
}

static int open_tmp(Ctx *c, int dirfd, char name[static 64]) {
        for (unsigned tries = 0; tries < 1000; tries++) {
                snprintf(name, 64, ".longbox-restore-%ld-%u", (long) getpid(), c->tmp_counter++);
                int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0)
                        return fd;
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

typedef struct Sink {
        Ctx *c;
        int fd;
        bool sparse;
        const char *tpath;
} Sink;

/* As lb_content_write_fd_full's, with progress reports. */
static int write_chunk(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        Sink *s = userdata;
        int k;
        if (s->sparse && lb_is_zero(p, n))
                k = lseek(s->fd, (off_t) n, SEEK_CUR) < 0 ? -errno : 0;
        else
                k = lb_write_all(s->fd, p, n);
        if (k < 0)
                return k;
        s->c->progress_bytes += n;
        s->c->o->progress(s->c->o->userdata, s->c->progress_bytes, s->tpath);
        return 0;
}

static int write_content(Ctx *c, const LbNode *n, int fd, const char *tpath, LbContentFailure *failure) {
        bool sparse = !c->o->no_sparse;
        if (!c->o->progress)
                return lb_content_write_fd_full(c->r, n, fd, sparse, failure);
        Sink s = { .c = c, .fd = fd, .sparse = sparse, .tpath = tpath };
        int k = lb_content_foreach_full(c->r, n, write_chunk, &s, failure);
        if (k < 0)
                return k;
        if (sparse && ftruncate(fd, (off_t) n->size) < 0)
                return -errno;
        return 0;
}

static void restore_file(Ctx *c, int dirfd, const LbNode *n, const char *tpath) {
        char tmp[64];
        int fd = open_tmp(c, dirfd, tmp);
        if (fd < 0) {
                record(c, tpath, fd, false);
                return;
        }

        LbContentFailure failure = {};
        int k = write_content(c, n, fd, tpath, &failure);
        bool damaged = k == -EBADMSG || (k == -ENOENT && failure.has_id);
        if (k == 0) {
                struct timespec ts[2];
                node_times(n, ts);
                /* chown before chmod: chown clears set-id bits. */
                k = chown_result(c, fchown(fd, n->uid, n->gid));
                if (k == 0 && fchmod(fd, n->mode & 07777) < 0)
                        k = -errno;
                if (k == 0 && futimens(fd, ts) < 0)
                        k = -errno;
        }
        if (close(fd) < 0 && k == 0)
                k = -errno;
        if (k == 0 && renameat(dirfd, tmp, dirfd, n->name) < 0)
                k = -errno;
        if (k < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                record(c, tpath, k, damaged);
                return;
        }
        c->st.files++;
        c->st.bytes += n->size;
}

/* Runs create(); if the name exists (and is not a directory), removes it and tries once more. */
static int create_replacing(int dirfd, const char *name, int (*create)(int dirfd, const LbNode *n), const LbNode *n) {
        int k = create(dirfd, n);
        if (k != -EEXIST)
                return k;
        if (unlinkat(dirfd, name, 0) < 0)
                return -errno;
        return create(dirfd, n);
}

static int create_symlink(int dirfd, const LbNode *n) {
        return symlinkat(n->link, dirfd, n->name) < 0 ? -errno : 0;
}

static int create_special(int dirfd, const LbNode *n) {
        mode_t type = n->type == LB_NODE_FIFO ? S_IFIFO : n->type == LB_NODE_CHARDEV ? S_IFCHR : S_IFBLK;
        dev_t dev = n->type == LB_NODE_FIFO ? 0 : (dev_t) n->rdev;
        return mknodat(dirfd, n->name, type | (n->mode & 0777), dev) < 0 ? -errno : 0;
}

static void restore_other(Ctx *c, int dirfd, const LbNode *n, const char *tpath) {
        bool is_link = n->type == LB_NODE_SYMLINK;
        int k;
        if (is_link && !n->link)
                k = -EBADMSG;
        else
                k = create_replacing(dirfd, n->name, is_link ? create_symlink : create_special, n);

        if (k == 0)
                k = chown_result(c, fchownat(dirfd, n->name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW));
        /* No-follow: the name could have been swapped for a symlink since it
         * was created, and a root restore must not chmod what it points at. */
        if (k == 0 && !is_link && fchmodat(dirfd, n->name, n->mode & 07777, AT_SYMLINK_NOFOLLOW) < 0)
                k = -errno;
        if (k == 0) {
                struct timespec ts[2];
                node_times(n, ts);
                if (utimensat(dirfd, n->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                        k = -errno;
        }
        if (k < 0) {
                record(c, tpath, k, k == -EBADMSG);
                return;
        }
        if (is_link)
                c->st.symlinks++;
        else
                c->st.specials++;
}

static int restore_tree(Ctx *c, int dirfd, const LbId *tree, const char *snap_prefix, const char *tpath_prefix,
                        bool all, unsigned depth) {
        if (depth >= LB_WALK_DEPTH_MAX)
                return -ELOOP;

        _cleanup_tree_ LbTree *t = NULL;
        int k = lb_repo_load_tree(c->r, tree, &t);
        if (k < 0)
                return k;

        for (size_t i = 0; i < t->n; i++) {
                const LbNode *n = &t->nodes[i];
                if (!lb_tree_name_valid(n->name))
                        return -EBADMSG;
                _cleanup_free_ char *snap_path = lb_strdup_printf("%s/%s", snap_prefix, n->name);
                _cleanup_free_ char *tpath = lb_strdup_printf("%s/%s", tpath_prefix, n->name);
                if (!snap_path || !tpath)
                        return -ENOMEM;

                int sel = all ? SEL_ALL : select_path(c, snap_path);
                if (sel == SEL_NONE || (sel == SEL_PARENT && n->type != LB_NODE_DIR))
                        continue;

                switch (n->type) {
                case LB_NODE_DIR:
                        restore_dir(c, dirfd, n, snap_path, tpath, sel == SEL_ALL, depth);
                        break;
                case LB_NODE_FILE:
                        restore_file(c, dirfd, n, tpath);
                        break;
                case LB_NODE_SYMLINK:
                case LB_NODE_FIFO:
                case LB_NODE_CHARDEV:
                case LB_NODE_BLOCKDEV:
                        restore_other(c, dirfd, n, tpath);
                        break;
                default:
                        record(c, tpath, -EBADMSG, true);
                        break;
                }
        }
        return 0;
}

static int run(Ctx *c, const LbSnapshot *s) {
        /* The target without trailing slashes, for the paths in messages. */
        _cleanup_free_ char *target = strdup(c->o->target);
        if (!target)
                return -ENOMEM;
        for (size_t n = strlen(target); n > 1 && target[n - 1] == '/'; n--)
                target[n - 1] = 0;
        const char *tprefix = strcmp(target, "/") == 0 ? "" : target;

        int k = lb_mkdir_p(target, 0700);
        if (k < 0) {
                record(c, target, k, false);
                return k;
        }
        _cleanup_close_ int tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (tfd < 0) {
                k = -errno;
                record(c, target, k, false);
                return k;
        }
        k = restore_tree(c, tfd, &s->tree, "", tprefix, c->n_inc == 0, 0);
        if (k < 0)
                record(c, target, k, k == -EBADMSG || k == -ENOENT);
        return c->first_err;
}

int lb_restore_run(LbRepo *r, const LbSnapshot *s, const LbRestoreOptions *o, LbRestoreStats *stats) {
        Ctx c = {
                .r = r,
                .o = o,
                .root = geteuid() == 0,
        };
        int k = 0;

        if (!o->target || !o->target[0])
                return -EINVAL;
        if (o->n_includes > 0) {
                c.inc = calloc(o->n_includes, sizeof *c.inc);
                if (!c.inc)
                        return -ENOMEM;
                for (; k == 0 && c.n_inc < o->n_includes; c.n_inc++) {
                        c.inc[c.n_inc] = lb_snapshot_path_normalize(o->includes[c.n_inc]);
                        if (!c.inc[c.n_inc])
                                k = -ENOMEM;
                }
        }
        if (k == 0)
                k = run(&c, s);

        for (size_t i = 0; i < c.n_inc; i++)
                free(c.inc[i]);
        free(c.inc);
        if (stats)
                *stats = c.st;
        return k;
}
