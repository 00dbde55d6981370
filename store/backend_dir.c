/* SPDX-License-Identifier: MIT */
/*
 * The local directory backend. Objects are files; puts go through a temp
 * file, fsync and rename, and the directory is fsync'd, so an object is
 * either absent or complete and durable. Files are 0600, directories 0700.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "store/backend.h"

/* Open pack files, kept for range reads: a restore reads thousands of
 * blobs from each pack, and packs never change once written. */
#define FD_CACHE 16
typedef struct CachedFd {
        char name[2 * 32 + 1];
        int fd;               /* -1: empty */
        uint64_t size;
        unsigned refs;        /* readers using fd right now */
        uint64_t used;        /* LRU clock */
} CachedFd;

typedef struct DirBackend {
        LbBackend base;   /* must be first */
        char *root;
        pthread_mutex_t lock;
        CachedFd fds[FD_CACHE];
        uint64_t clock;
        uint8_t shard_synced[256 / 8];   /* packs/<xx>/ known durable in packs/ */
        /* Directories with removals not yet synced (remove_nosync). */
        uint8_t shard_unsynced[256 / 8];
        uint32_t types_unsynced;         /* bit per LbObjType but packs */
} DirBackend;

static const char *const top_dirs[] = { "keys", "packs", "index", "snapshots", "locks", "events" };

#define name_ok lb_obj_name_ok

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

static int dir_put_iov(LbBackend *b, LbObjType t, const char *name, const struct iovec *iov, size_t n) {
        DirBackend *d = (DirBackend *) b;
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        _cleanup_free_ char *dir = obj_dir(d, t, name);
        if (!dir)
                return -ENOMEM;
        if (t == LB_OBJ_PACK) {
                /* The shard directory's entry in packs/ must be durable before a
                 * pack in it is referenced. Another process may have created it
                 * and not synced it yet, so sync once per shard per process. */
                uint8_t shard;
                if (lb_hex_decode((const char[3]) { name[0], name[1], 0 }, &shard, 1) < 0)
                        return -EINVAL;
                if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                        return -errno;
                pthread_mutex_lock(&d->lock);
                bool synced = d->shard_synced[shard / 8] & (1u << (shard % 8));
                pthread_mutex_unlock(&d->lock);
                if (!synced) {
                        _cleanup_free_ char *packs = lb_path_join(d->root, "packs");
                        int r = packs ? lb_fsync_dir(packs) : -ENOMEM;
                        if (r < 0)
                                return r;
                        pthread_mutex_lock(&d->lock);
                        d->shard_synced[shard / 8] |= (uint8_t) (1u << (shard % 8));
                        pthread_mutex_unlock(&d->lock);
                }
        }
        if (t == LB_OBJ_EVENT && mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;   /* repositories made before events existed */
        return lb_write_file_atomic_iov(dir, t == LB_OBJ_CONFIG ? "config" : name, iov, n, 0600);
}

static int dir_put(LbBackend *b, LbObjType t, const char *name, const void *p, size_t n) {
        struct iovec one = { (void *) p, n };
        return dir_put_iov(b, t, name, &one, 1);
}

/* Opens (or finds) an object for reading. For packs the fd comes from the
 * cache with a reference taken (*ret_slot >= 0); release with fd_release. */
static int fd_acquire(DirBackend *d, LbObjType t, const char *name, int *ret_fd, uint64_t *ret_size, int *ret_slot) {
        *ret_slot = -1;
        if (t == LB_OBJ_PACK && strlen(name) < sizeof d->fds[0].name) {
                pthread_mutex_lock(&d->lock);
                for (int i = 0; i < FD_CACHE; i++)
                        if (d->fds[i].fd >= 0 && strcmp(d->fds[i].name, name) == 0) {
                                d->fds[i].refs++;
                                d->fds[i].used = ++d->clock;
                                *ret_fd = d->fds[i].fd;
                                *ret_size = d->fds[i].size;
                                *ret_slot = i;
                                pthread_mutex_unlock(&d->lock);
                                return 0;
                        }
                pthread_mutex_unlock(&d->lock);
        }
        _cleanup_free_ char *path = obj_path(d, t, name);
        if (!path)
                return -ENOMEM;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int k = -errno;
                close(fd);
                return k;
        }
        *ret_fd = fd;
        *ret_size = (uint64_t) st.st_size;
        if (t != LB_OBJ_PACK || strlen(name) >= sizeof d->fds[0].name)
                return 0;
        /* Cache it in the least recently used idle slot, if any. */
        pthread_mutex_lock(&d->lock);
        int victim = -1;
        for (int i = 0; i < FD_CACHE; i++) {
                if (d->fds[i].refs > 0)
                        continue;
                if (d->fds[i].fd < 0) {
                        victim = i;
                        break;
                }
                if (victim < 0 || d->fds[i].used < d->fds[victim].used)
                        victim = i;
        }
        if (victim >= 0) {
                CachedFd *c = &d->fds[victim];
                if (c->fd >= 0)
                        close(c->fd);
                *c = (CachedFd) { .fd = fd, .size = *ret_size, .refs = 1, .used = ++d->clock };
                snprintf(c->name, sizeof c->name, "%s", name);
                *ret_slot = victim;
        }
        pthread_mutex_unlock(&d->lock);
        return 0;
}

static void fd_release(DirBackend *d, int fd, int slot) {
        if (slot < 0) {
                close(fd);
                return;
        }
        pthread_mutex_lock(&d->lock);
        d->fds[slot].refs--;
        pthread_mutex_unlock(&d->lock);
}

/* Forgets a cached fd (the object was removed). */
static void fd_forget(DirBackend *d, const char *name) {
        pthread_mutex_lock(&d->lock);
        for (int i = 0; i < FD_CACHE; i++)
                if (d->fds[i].fd >= 0 && d->fds[i].refs == 0 && strcmp(d->fds[i].name, name) == 0) {
                        close(d->fds[i].fd);
                        d->fds[i] = (CachedFd) { .fd = -1 };
                }
        pthread_mutex_unlock(&d->lock);
}

static int dir_get(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out) {
        DirBackend *d = (DirBackend *) b;
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        int fd = -1, slot = -1;
        uint64_t size = 0;
        int r = fd_acquire(d, t, name, &fd, &size, &slot);
        if (r < 0)
                return r;
        if (off > size || (len != SIZE_MAX && len > size - off))
                r = -EBADMSG;
        else if (len == SIZE_MAX)
                len = (size_t) (size - off);
        uint8_t *p = NULL;
        if (r == 0) {
                lb_buf_clear(out);
                r = lb_buf_grow(out, len, &p);
        }
        if (r == 0)
                r = lb_pread_all(fd, p, len, off);
        if (r < 0)
                lb_buf_clear(out);
        fd_release(d, fd, slot);
        return r;
}

/* Ranges a hint merges: at most a page apart, so what is read beyond the
 * ranges asked for is less than a page per range. */
#define HINT_GAP 4096

static int dir_hint(LbBackend *b, LbObjType t, const char *name, LbRange *v, size_t n) {
        DirBackend *d = (DirBackend *) b;
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        n = lb_ranges_coalesce(v, n, HINT_GAP);
        if (n == 0)
                return 0;
        int fd = -1, slot = -1;
        uint64_t size = 0;
        int r = fd_acquire(d, t, name, &fd, &size, &slot);
        if (r < 0)
                return r;
        /* WILLNEED starts the reads of the pages not cached yet and
         * returns without waiting for them. */
        for (size_t i = 0; i < n && v[i].off < size; i++) {
                uint64_t len = LB_MIN(v[i].len, size - v[i].off);
                int e = posix_fadvise(fd, (off_t) v[i].off, (off_t) len, POSIX_FADV_WILLNEED);
                if (e != 0) {
                        r = -e;
                        break;
                }
        }
        fd_release(d, fd, slot);
        return r;
}

static int dir_map(LbBackend *b, LbObjType t, const char *name, const uint8_t **ret, size_t *ret_len) {
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
        if (st.st_size == 0) {
                *ret = (const uint8_t *) "";
                *ret_len = 0;
                return 0;
        }
        if ((uint64_t) st.st_size > SIZE_MAX)
                return -EFBIG;
        /* Objects never change once written, so the mapping cannot shrink
         * under the reader. */
        void *m = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        *ret = m;
        *ret_len = (size_t) st.st_size;
        return 0;
}

static void dir_unmap(LbBackend *b, const uint8_t *p, size_t len) {
        if (len > 0)
                munmap((void *) p, len);
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

static int remove_object(DirBackend *d, LbObjType t, const char *name, bool sync) {
        if (t != LB_OBJ_CONFIG && !name_ok(name))
                return -EINVAL;
        _cleanup_free_ char *path = obj_path(d, t, name);
        _cleanup_free_ char *dir = obj_dir(d, t, name);
        if (!path || !dir)
                return -ENOMEM;
        if (t == LB_OBJ_PACK)
                fd_forget(d, name);
        if (unlink(path) < 0)
                return -errno;
        int hi = t == LB_OBJ_PACK ? lb_hex_digit(name[0]) : 0, lo = hi >= 0 && t == LB_OBJ_PACK ? lb_hex_digit(name[1]) : 0;
        if (sync || hi < 0 || lo < 0)
                return lb_fsync_dir(dir);
        pthread_mutex_lock(&d->lock);
        if (t == LB_OBJ_PACK) {
                unsigned shard = (unsigned) (hi * 16 + lo);
                d->shard_unsynced[shard / 8] |= (uint8_t) (1u << (shard % 8));
        } else
                d->types_unsynced |= 1u << t;
        pthread_mutex_unlock(&d->lock);
        return 0;
}

static int dir_remove(LbBackend *b, LbObjType t, const char *name) {
        return remove_object((DirBackend *) b, t, name, true);
}

static int dir_remove_nosync(LbBackend *b, LbObjType t, const char *name) {
        return remove_object((DirBackend *) b, t, name, false);
}

/* Takes the "unsynced" mark of one directory: true if it had one. */
static bool take_unsynced(DirBackend *d, LbObjType t, unsigned shard) {
        pthread_mutex_lock(&d->lock);
        bool dirty;
        if (t == LB_OBJ_PACK) {
                dirty = d->shard_unsynced[shard / 8] & (1u << (shard % 8));
                d->shard_unsynced[shard / 8] &= (uint8_t) ~(1u << (shard % 8));
        } else {
                dirty = d->types_unsynced & (1u << t);
                d->types_unsynced &= ~(1u << t);
        }
        pthread_mutex_unlock(&d->lock);
        return dirty;
}

static int dir_sync(LbBackend *b, LbObjType t) {
        DirBackend *d = (DirBackend *) b;
        for (unsigned shard = 0; shard < (t == LB_OBJ_PACK ? 256u : 1u); shard++) {
                if (!take_unsynced(d, t, shard))
                        continue;
                char name[3];
                snprintf(name, sizeof name, "%02x", shard);
                _cleanup_free_ char *dir = obj_dir(d, t, name);
                int r = dir ? lb_fsync_dir(dir) : -ENOMEM;
                if (r < 0) {
                        /* Still to be done: keep the mark for the next sync. */
                        pthread_mutex_lock(&d->lock);
                        if (t == LB_OBJ_PACK)
                                d->shard_unsynced[shard / 8] |= (uint8_t) (1u << (shard % 8));
                        else
                                d->types_unsynced |= 1u << t;
                        pthread_mutex_unlock(&d->lock);
                        return r;
                }
        }
        return 0;
}

/* Unlinks the ".tmp-*" files of one directory (atomic puts that crashed). */
static int remove_temps_in(const char *path, unsigned *n) {
        DIR *dir = opendir(path);
        if (!dir)
                return errno == ENOENT ? 0 : -errno;
        int r = 0;
        bool any = false;
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (strncmp(de->d_name, ".tmp-", 5) != 0)
                        continue;
                if (unlinkat(dirfd(dir), de->d_name, 0) < 0 && errno != ENOENT) {
                        r = -errno;
                        break;
                }
                any = true;
                (*n)++;
        }
        closedir(dir);
        if (r == 0 && any)
                r = lb_fsync_dir(path);
        return r;
}

static int dir_remove_temporaries(LbBackend *b, unsigned *ret_removed) {
        DirBackend *d = (DirBackend *) b;
        static const LbObjType types[] = { LB_OBJ_INDEX, LB_OBJ_SNAPSHOT };
        unsigned n = 0;
        int r = 0;
        for (size_t i = 0; r == 0 && i < LB_ARRAY_SIZE(types); i++) {
                _cleanup_free_ char *p = lb_path_join(d->root, lb_obj_type_dir(types[i]));
                r = p ? remove_temps_in(p, &n) : -ENOMEM;
        }
        for (unsigned i = 0; r == 0 && i < 256; i++) {
                _cleanup_free_ char *p = lb_strdup_printf("%s/%s/%02x", d->root, lb_obj_type_dir(LB_OBJ_PACK), i);
                r = p ? remove_temps_in(p, &n) : -ENOMEM;
        }
        if (r == 0 && ret_removed)
                *ret_removed = n;
        return r;
}

static const char *dir_local_dir(LbBackend *b) {
        return ((DirBackend *) b)->root;
}

static void dir_free(LbBackend *b) {
        DirBackend *d = (DirBackend *) b;
        for (int i = 0; i < FD_CACHE; i++)
                if (d->fds[i].fd >= 0)
                        close(d->fds[i].fd);
        pthread_mutex_destroy(&d->lock);
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
                .remove_temporaries = dir_remove_temporaries,
                .remove_nosync = dir_remove_nosync,
                .sync = dir_sync,
                .put_iov = dir_put_iov,
                .map = dir_map,
                .unmap = dir_unmap,
                .hint = dir_hint,
        };
        pthread_mutex_init(&d->lock, NULL);
        for (int i = 0; i < FD_CACHE; i++)
                d->fds[i].fd = -1;
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
