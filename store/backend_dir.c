/* SPDX-License-Identifier: MIT */
/*
 * The local directory backend. Objects are files; puts go through a temp
 * file, fsync and rename, and the directory is fsync'd, so an object is
 * either absent or complete and durable. Files are 0600, directories 0700.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store/backend.h"

typedef struct DirBackend {
        LbBackend base;   /* must be first */
        char *root;
} DirBackend;

static const char *const top_dirs[] = { "keys", "packs", "index", "snapshots", "locks" };

static bool name_ok(const char *name) {
        /* Object names are ours (hex ids); refuse anything that could escape. */
        if (!*name || strlen(name) > 128)
                return false;
        for (const char *c = name; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || *c == '-' || *c == '_'))
                        return false;
        return true;
}

/* Directory of an object of type t named name; pack names shard on their first two characters. */
static char *obj_dir(DirBackend *d, LbObjType t, const char *name) {
        if (t == LB_OBJ_CONFIG)
                return strdup(d->root);
        if (t == LB_OBJ_PACK)
                return lb_strdup_printf("%s/packs/%.2s", d->root, name);
        return lb_strdup_printf("%s/%s", d->root, lb_obj_type_dir(t));
}

static char *obj_path(DirBackend *d, LbObjType t, const char *name) {
        if (t == LB_OBJ_CONFIG)
                return lb_path_join(d->root, "config");
        if (t == LB_OBJ_PACK)
                return lb_strdup_printf("%s/packs/%.2s/%s", d->root, name, name);
        return lb_strdup_printf("%s/%s/%s", d->root, lb_obj_type_dir(t), name);
}

static int dir_create(LbBackend *b) {
        DirBackend *d = (DirBackend *) b;
        int r = lb_mkdir_p(d->root, 0700);
        if (r < 0)
                return r;
        DIR *dir = opendir(d->root);
        if (!dir)
                return -errno;
        struct dirent *de;
        bool empty = true;
        while ((de = readdir(dir)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                        empty = false;
                        break;
                }
        closedir(dir);
        if (!empty)
                return -ENOTEMPTY;
        for (size_t i = 0; i < LB_ARRAY_SIZE(top_dirs); i++) {
                _cleanup_free_ char *p = lb_path_join(d->root, top_dirs[i]);
                if (!p)
                        return -ENOMEM;
                if (mkdir(p, 0700) < 0)
                        return -errno;
        }
        return lb_fsync_dir(d->root);
}

static int dir_exists(LbBackend *b) {
        DirBackend *d = (DirBackend *) b;
        _cleanup_free_ char *p = lb_path_join(d->root, "config");
        if (!p)
                return -ENOMEM;
        struct stat st;
        if (stat(p, &st) < 0)
                return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
        return 0;
}

static int dir_put(LbBackend *b, LbObjType t, const char *name, const void *p, size_t n) {
        DirBackend *d = (DirBackend *) b;
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        _cleanup_free_ char *dir = obj_dir(d, t, name);
        if (!dir)
                return -ENOMEM;
        if (t == LB_OBJ_PACK) {
                if (mkdir(dir, 0700) == 0) {
                        /* a new shard directory must itself be durable */
                        _cleanup_free_ char *packs = lb_path_join(d->root, "packs");
                        int r = packs ? lb_fsync_dir(packs) : -ENOMEM;
                        if (r < 0)
                                return r;
                } else if (errno != EEXIST)
                        return -errno;
        }
        return lb_write_file_atomic(dir, t == LB_OBJ_CONFIG ? "config" : name, p, n, 0600);
}

static int dir_get(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out) {
        DirBackend *d = (DirBackend *) b;
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        _cleanup_free_ char *path = obj_path(d, t, name);
        if (!path)
                return -ENOMEM;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        uint64_t size = (uint64_t) st.st_size;
        if (off > size)
                return -EBADMSG;
        if (len == SIZE_MAX)
                len = (size_t) (size - off);
        else if (len > size - off)
                return -EBADMSG;
        lb_buf_clear(out);
        uint8_t *p;
        int r = lb_buf_grow(out, len, &p);
        if (r < 0)
                return r;
        r = lb_pread_all(fd, p, len, off);
        if (r < 0)
                lb_buf_clear(out);
        return r;
}

static int dir_stat(LbBackend *b, LbObjType t, const char *name, uint64_t *ret_size) {
        DirBackend *d = (DirBackend *) b;
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        _cleanup_free_ char *path = obj_path(d, t, name);
        if (!path)
                return -ENOMEM;
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

static int list_dir(const char *path, LbListFn fn, void *userdata) {
        DIR *dir = opendir(path);
        if (!dir)
                return errno == ENOENT ? 0 : -errno;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.' || !name_ok(de->d_name))
                        continue; /* temp files and strangers */
                struct stat st;
                if (fstatat(dirfd(dir), de->d_name, &st, 0) < 0) {
                        if (errno == ENOENT)
                                continue; /* removed meanwhile */
                        r = -errno;
                        break;
                }
                if (!S_ISREG(st.st_mode))
                        continue;
                r = fn(de->d_name, (uint64_t) st.st_size, userdata);
                if (r < 0)
                        break;
        }
        closedir(dir);
        return r;
}

static int dir_list(LbBackend *b, LbObjType t, LbListFn fn, void *userdata) {
        DirBackend *d = (DirBackend *) b;
        if (t == LB_OBJ_CONFIG)
                return -EINVAL;
        _cleanup_free_ char *top = lb_path_join(d->root, lb_obj_type_dir(t));
        if (!top)
                return -ENOMEM;
        if (t != LB_OBJ_PACK)
                return list_dir(top, fn, userdata);
        DIR *dir = opendir(top);
        if (!dir)
                return errno == ENOENT ? 0 : -errno;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (strlen(de->d_name) != 2 || !lb_is_hex(de->d_name, 2))
                        continue;
                _cleanup_free_ char *sub = lb_path_join(top, de->d_name);
                if (!sub) {
                        r = -ENOMEM;
                        break;
                }
                r = list_dir(sub, fn, userdata);
                if (r < 0)
                        break;
        }
        closedir(dir);
        return r;
}

static int dir_remove(LbBackend *b, LbObjType t, const char *name) {
        DirBackend *d = (DirBackend *) b;
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        _cleanup_free_ char *path = obj_path(d, t, name);
        _cleanup_free_ char *dir = obj_dir(d, t, name);
        if (!path || !dir)
                return -ENOMEM;
        if (unlink(path) < 0)
                return -errno;
        return lb_fsync_dir(dir);
}

static const char *dir_local_dir(LbBackend *b) {
        return ((DirBackend *) b)->root;
}

static void dir_free(LbBackend *b) {
        DirBackend *d = (DirBackend *) b;
        free(d->root);
        free(d->base.location);
        free(d);
}

int lb_backend_dir_open(const char *path, LbBackend **ret) {
        if (!path || !*path)
                return -EINVAL;
        DirBackend *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->base = (LbBackend) {
                .version = LB_BACKEND_VERSION,
                .kind = "dir",
                .create = dir_create,
                .exists = dir_exists,
                .put = dir_put,
                .get = dir_get,
                .stat = dir_stat,
                .list = dir_list,
                .remove = dir_remove,
                .local_dir = dir_local_dir,
                .free = dir_free,
        };
        d->base.location = strdup(path);
        /* Keep the path as given but without trailing slashes. */
        d->root = strdup(path);
        if (!d->root || !d->base.location) {
                dir_free(&d->base);
                return -ENOMEM;
        }
        for (size_t l = strlen(d->root); l > 1 && d->root[l - 1] == '/'; l--)
                d->root[l - 1] = 0;
        *ret = &d->base;
        return 0;
}
