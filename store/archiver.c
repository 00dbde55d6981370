/* SPDX-License-Identifier: MIT */
/*
 * Backup: walk inputs, cut chunks on the main thread, hash/dedup/compress/
 * seal on worker threads, build trees bottom-up, write the snapshot last.
 *
 * Pipeline: the main thread submits chunk jobs into a bounded FIFO; workers
 * take jobs in order and complete them in any order; the main thread pops
 * completed jobs strictly in submission order and appends each chunk ref
 * to the file it belongs to. Before a directory's tree is encoded, the
 * FIFO is drained, so every file in it is complete.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "lb-config.h"
#include "store/archiver.h"

#define QUEUE_JOBS 256
#define QUEUE_BYTES (64u << 20)
#define READ_BUF (8u << 20)

/* A file whose chunk refs are being collected. */
typedef struct FileBuilder {
        LbNode node;
        LbContentRef *refs;
        size_t n, cap;
        int error;
        struct FileBuilder *next;
} FileBuilder;

typedef struct Job {
        uint8_t *data;        /* owned unless it points at the zero buffer */
        size_t len;
        bool has_id;
        LbId id;
        int error;
        bool done;
        FileBuilder *fb;
} Job;

typedef struct Archiver {
        LbRepo *repo;
        LbWriter *writer;
        const LbBackupOptions *o;
        LbSnapshotStats stats;

        pthread_mutex_t lock;
        pthread_cond_t work_cond, done_cond;
        Job ring[QUEUE_JOBS];
        uint64_t head, next_work, tail;   /* head <= next_work <= tail */
        size_t inflight_bytes;
        bool stop;
        pthread_t *threads;
        unsigned n_threads;
        int error;                        /* first fatal error */

        uint8_t *buf;                     /* read buffer */
        uint8_t *zero;                    /* chunk_max zero bytes, shared by hole jobs */
        struct { uint32_t len; LbId id; } zero_ids[4];
} Archiver;

/* ---- worker pool ---- */

static void *worker_main(void *userdata) {
        Archiver *a = userdata;
        pthread_mutex_lock(&a->lock);
        for (;;) {
                while (a->next_work == a->tail && !a->stop)
                        pthread_cond_wait(&a->work_cond, &a->lock);
                if (a->next_work == a->tail && a->stop)
                        break;
                Job *j = &a->ring[a->next_work++ % QUEUE_JOBS];
                pthread_mutex_unlock(&a->lock);

                if (!j->has_id)
                        lb_chunk_id(&a->repo->keys, j->data, j->len, &j->id);
                int k = lb_writer_add_with_id(a->writer, LB_BLOB_DATA, &j->id, j->data, j->len);

                pthread_mutex_lock(&a->lock);
                j->error = k;
                j->done = true;
                pthread_cond_broadcast(&a->done_cond);
        }
        pthread_mutex_unlock(&a->lock);
        return NULL;
}

static int fb_append(FileBuilder *fb, const LbId *id, uint64_t size) {
        if (fb->n == fb->cap) {
                size_t cap = fb->cap ? fb->cap * 2 : 16;
                LbContentRef *v = realloc(fb->refs, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                fb->refs = v;
                fb->cap = cap;
        }
        fb->refs[fb->n++] = (LbContentRef) { .id = *id, .size = size };
        return 0;
}

/* Pops the oldest job once it is done. Called with a->lock held. */
static void pop_locked(Archiver *a) {
        Job *j = &a->ring[a->head % QUEUE_JOBS];
        while (!j->done)
                pthread_cond_wait(&a->done_cond, &a->lock);
        int k = j->error;
        if (k == 0)
                k = fb_append(j->fb, &j->id, j->len);
        if (k < 0 && j->fb->error == 0)
                j->fb->error = k;
        if (k < 0 && a->error == 0)
                a->error = k;
        if (j->data != a->zero)
                free(j->data);
        a->inflight_bytes -= j->len;
        *j = (Job) {};
        a->head++;
}

static void drain(Archiver *a) {
        pthread_mutex_lock(&a->lock);
        while (a->head < a->tail)
                pop_locked(a);
        pthread_mutex_unlock(&a->lock);
}

/* Submits a chunk; takes ownership of data (unless it is a->zero). */
static int submit(Archiver *a, FileBuilder *fb, uint8_t *data, size_t len, const LbId *id) {
        pthread_mutex_lock(&a->lock);
        while (a->tail - a->head >= QUEUE_JOBS || (a->tail > a->head && a->inflight_bytes + len > QUEUE_BYTES))
                pop_locked(a);
        int k = a->error;
        if (k == 0) {
                a->ring[a->tail % QUEUE_JOBS] = (Job) { .data = data, .len = len, .fb = fb,
                                                       .has_id = id != NULL, .id = id ? *id : (LbId) {} };
                a->tail++;
                a->inflight_bytes += len;
                pthread_cond_signal(&a->work_cond);
        }
        pthread_mutex_unlock(&a->lock);
        if (k < 0 && data != a->zero)
                free(data);
        a->stats.chunks++;
        return k;
}

static int pool_start(Archiver *a) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        a->n_threads = (unsigned) LB_MAX(1, LB_MIN(n, 8));
        a->threads = calloc(a->n_threads, sizeof *a->threads);
        if (!a->threads)
                return -ENOMEM;
        for (unsigned i = 0; i < a->n_threads; i++) {
                int k = pthread_create(&a->threads[i], NULL, worker_main, a);
                if (k != 0) {
                        a->n_threads = i;
                        return -k;
                }
        }
        return 0;
}

static void pool_stop(Archiver *a) {
        drain(a);
        pthread_mutex_lock(&a->lock);
        a->stop = true;
        pthread_cond_broadcast(&a->work_cond);
        pthread_mutex_unlock(&a->lock);
        for (unsigned i = 0; i < a->n_threads; i++)
                pthread_join(a->threads[i], NULL);
        free(a->threads);
        a->threads = NULL;
        a->n_threads = 0;
}

/* ---- reading content ---- */

static const LbId *zero_id(Archiver *a, uint32_t len) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(a->zero_ids); i++)
                if (a->zero_ids[i].len == len)
                        return &a->zero_ids[i].id;
        /* Rotate: keep the most recent sizes. */
        memmove(&a->zero_ids[1], &a->zero_ids[0], sizeof a->zero_ids - sizeof a->zero_ids[0]);
        a->zero_ids[0].len = len;
        lb_chunk_id(&a->repo->keys, a->zero, len, &a->zero_ids[0].id);
        return &a->zero_ids[0].id;
}

/* A hole of len bytes: zero chunks of chunk_max, no reading or hashing. */
static int submit_hole(Archiver *a, FileBuilder *fb, uint64_t len) {
        uint32_t max = a->repo->cfg.chunker.max;
        while (len > 0) {
                uint32_t n = (uint32_t) LB_MIN(len, (uint64_t) max);
                int k = submit(a, fb, a->zero, n, zero_id(a, n));
                if (k < 0)
                        return k;
                len -= n;
        }
        return 0;
}

/* Chunks `limit` bytes (UINT64_MAX: to EOF) of fd from its current position.
 * *ret_read gets the count read. */
static int chunk_stream(Archiver *a, FileBuilder *fb, int fd, uint64_t limit, uint64_t *ret_read) {
        size_t have = 0;
        uint64_t total = 0;
        bool eof = false;
        for (;;) {
                if (!eof && have < READ_BUF) {
                        size_t want = READ_BUF - have;
                        if (limit != UINT64_MAX)
                                want = (size_t) LB_MIN((uint64_t) want, limit - total);
                        size_t got = 0;
                        if (want > 0) {
                                int k = lb_read_all(fd, a->buf + have, want, &got);
                                if (k < 0)
                                        return k;
                        }
                        total += got;
                        have += got;
                        if (got < want || want == 0 || (limit != UINT64_MAX && total == limit))
                                eof = true;
                }
                size_t off = 0;
                while (off < have) {
                        size_t cut = lb_chunker_cut(&a->repo->chunker, a->buf + off, have - off, eof);
                        if (cut == 0)
                                break;
                        uint8_t *chunk = malloc(cut);
                        if (!chunk)
                                return -ENOMEM;
                        memcpy(chunk, a->buf + off, cut);
                        int k = submit(a, fb, chunk, cut, NULL);
                        if (k < 0)
                                return k;
                        off += cut;
                        /* Keep at least chunk_max bytes ahead unless at EOF. */
                        if (!eof && have - off < a->repo->cfg.chunker.max)
                                break;
                }
                memmove(a->buf, a->buf + off, have - off);
                have -= off;
                if (eof && have == 0)
                        break;
        }
        *ret_read = total;
        return 0;
}

/* Reads a regular file, skipping holes (SEEK_DATA/SEEK_HOLE) where the
 * file system reports them. */
static int chunk_file(Archiver *a, FileBuilder *fb, int fd, uint64_t size, uint64_t *ret_read) {
        uint64_t pos = 0, read_total = 0;
        while (pos < size) {
                off_t data = lseek(fd, (off_t) pos, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        data = (off_t) size; /* only a hole remains */
                else if (data < 0) {
                        /* No SEEK_DATA support: read the rest as data. */
                        if (lseek(fd, (off_t) pos, SEEK_SET) < 0)
                                return -errno;
                        uint64_t got;
                        int k = chunk_stream(a, fb, fd, size - pos, &got);
                        if (k < 0)
                                return k;
                        read_total += got;
                        pos += got;
                        break;
                }
                if ((uint64_t) data > size)
                        data = (off_t) size;
                if ((uint64_t) data > pos) {
                        int k = submit_hole(a, fb, (uint64_t) data - pos);
                        if (k < 0)
                                return k;
                        pos = (uint64_t) data;
                        if (pos >= size)
                                break;
                }
                off_t hole = lseek(fd, (off_t) pos, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                if ((uint64_t) hole > size || (uint64_t) hole <= pos)
                        hole = (off_t) size;
                if (lseek(fd, (off_t) pos, SEEK_SET) < 0)
                        return -errno;
                uint64_t got;
                int k = chunk_stream(a, fb, fd, (uint64_t) hole - pos, &got);
                if (k < 0)
                        return k;
                read_total += got;
                pos += got;
                if (got < (uint64_t) hole - (pos - got))
                        break; /* the file shrank while we read it */
        }
        *ret_read = read_total;
        return 0;
}

/* ---- nodes ---- */

static void fill_owner(LbNode *n, uid_t uid, gid_t gid) {
        n->uid = (uint32_t) uid;
        n->gid = (uint32_t) gid;
        char buf[4096];
        struct passwd pw, *pwp = NULL;
        if (getpwuid_r(uid, &pw, buf, sizeof buf, &pwp) == 0 && pwp)
                n->user = strdup(pwp->pw_name);
        struct group gr, *grp = NULL;
        if (getgrgid_r(gid, &gr, buf, sizeof buf, &grp) == 0 && grp)
                n->group = strdup(grp->gr_name);
}

static void fill_from_stat(LbNode *n, const struct stat *st) {
        n->mode = (uint32_t) (st->st_mode & 07777);
        n->mtime_ns = (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
        fill_owner(n, st->st_uid, st->st_gid);
}

/* Turns a finished file builder into its node's content: inline chunk refs,
 * or chunk-list blobs split by the content-defined rule. */
static int finish_file(Archiver *a, FileBuilder *fb) {
        LbNode *n = &fb->node;
        uint64_t total = 0;
        for (size_t i = 0; i < fb->n; i++)
                total += fb->refs[i].size;
        n->size = total;
        if (fb->n <= LB_INLINE_CHUNKS_MAX) {
                n->content = LB_TAKE_PTR(fb->refs);
                n->n_content = fb->n;
                fb->n = fb->cap = 0;
                return 0;
        }
        LbContentRef *lists = NULL;
        size_t n_lists = 0, start = 0;
        _cleanup_buf_ LbBuf enc = {};
        int k = 0;
        for (size_t i = 0; i < fb->n && k == 0; i++) {
                size_t count = i - start + 1;
                if (i + 1 < fb->n && !lb_chunklist_is_boundary(&fb->refs[i].id, count))
                        continue;
                lb_buf_clear(&enc);
                k = lb_chunklist_encode(fb->refs + start, count, &enc);
                if (k < 0)
                        break;
                LbContentRef ref = {};
                for (size_t j = start; j <= i; j++)
                        ref.size += fb->refs[j].size;
                k = lb_writer_add(a->writer, LB_BLOB_CHUNKLIST, enc.data, enc.len, &ref.id);
                if (k < 0)
                        break;
                LbContentRef *v = realloc(lists, (n_lists + 1) * sizeof *v);
                if (!v) {
                        k = -ENOMEM;
                        break;
                }
                lists = v;
                lists[n_lists++] = ref;
                start = i + 1;
        }
        if (k < 0) {
                free(lists);
                return k;
        }
        n->indirect = true;
        n->content = lists;
        n->n_content = n_lists;
        return 0;
}

static void fb_free(FileBuilder *fb) {
        while (fb) {
                FileBuilder *next = fb->next;
                lb_node_clear(&fb->node);
                free(fb->refs);
                free(fb);
                fb = next;
        }
}

static void warn(Archiver *a, const char *path, int err) {
        a->stats.errors++;
        if (a->o->warn)
                a->o->warn(a->o->userdata, path, err);
}

static int archive_dir(Archiver *a, const char *path, LbId *ret_tree);

/* Archives one filesystem object into a node. Returns 0 with *ret_skip set
 * when the object is skipped (unreadable, a socket). Fatal errors (the
 * repository cannot be written) are negative. */
static int archive_path(Archiver *a, const char *path, const char *name, FileBuilder **files, LbNode *ret,
                        bool *ret_skip) {
        struct stat st;
        *ret_skip = false;
        if (lstat(path, &st) < 0) {
                warn(a, path, -errno);
                *ret_skip = true;
                return 0;
        }
        LbNode n = { .name = strdup(name) };
        if (!n.name)
                return -ENOMEM;
        fill_from_stat(&n, &st);
        int k = 0;
        if (S_ISREG(st.st_mode)) {
                int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME | O_NOFOLLOW);
                if (fd < 0 && errno == EPERM)
                        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0) {
                        warn(a, path, -errno);
                        lb_node_clear(&n);
                        *ret_skip = true;
                        return 0;
                }
                FileBuilder *fb = calloc(1, sizeof *fb);
                if (!fb) {
                        close(fd);
                        lb_node_clear(&n);
                        return -ENOMEM;
                }
                n.type = LB_NODE_FILE;
                fb->node = n;
                fb->next = *files;
                *files = fb;
                uint64_t got = 0;
                k = chunk_file(a, fb, fd, (uint64_t) st.st_size, &got);
                close(fd);
                if (k < 0 && a->error == 0 && k != -ENOMEM) {
                        /* A read error: the file is skipped, the backup goes on. */
                        fb->error = k;
                        warn(a, path, k);
                        k = 0;
                }
                if (k == 0) {
                        a->stats.files++;
                        a->stats.bytes_read += got;
                }
                /* The node itself is completed in finish_dir() once its jobs are done. */
                *ret = (LbNode) {};
                return k;
        }
        if (S_ISDIR(st.st_mode)) {
                n.type = LB_NODE_DIR;
                k = archive_dir(a, path, &n.subtree);
                if (k == -ENOTDIR || k == -EACCES || k == -ENOENT || k == -EIO) {
                        warn(a, path, k);
                        lb_node_clear(&n);
                        *ret_skip = true;
                        return 0;
                }
                n.has_subtree = true;
                a->stats.dirs++;
        } else if (S_ISLNK(st.st_mode)) {
                n.type = LB_NODE_SYMLINK;
                size_t cap = (size_t) LB_MAX(st.st_size + 1, 256);
                n.link = malloc(cap);
                ssize_t l = n.link ? readlink(path, n.link, cap - 1) : -1;
                if (l < 0) {
                        warn(a, path, -errno);
                        lb_node_clear(&n);
                        *ret_skip = true;
                        return 0;
                }
                n.link[l] = 0;
        } else if (S_ISFIFO(st.st_mode))
                n.type = LB_NODE_FIFO;
        else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
                n.type = S_ISCHR(st.st_mode) ? LB_NODE_CHARDEV : LB_NODE_BLOCKDEV;
                n.rdev = (uint64_t) st.st_rdev;
        } else {
                lb_node_clear(&n); /* sockets are not backed up, as with restic */
                *ret_skip = true;
                return 0;
        }
        if (k < 0) {
                lb_node_clear(&n);
                return k;
        }
        *ret = n;
        return 0;
}

static int name_cmp(const void *x, const void *y) {
        return strcmp(*(char *const *) x, *(char *const *) y);
}

/* Completes the files of a directory (after drain) and adds them to t. */
static int finish_files(Archiver *a, FileBuilder *files, LbTree *t) {
        for (FileBuilder *fb = files; fb; fb = fb->next) {
                if (fb->error < 0)
                        continue; /* already reported; the file is left out */
                int k = finish_file(a, fb);
                if (k < 0)
                        return k;
                k = lb_tree_add(t, &fb->node);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int store_tree(Archiver *a, LbTree *t, LbId *ret) {
        int k = lb_tree_sort(t);
        if (k < 0)
                return k;
        _cleanup_buf_ LbBuf enc = {};
        k = lb_tree_encode(t, &enc);
        if (k < 0)
                return k;
        return lb_writer_add(a->writer, LB_BLOB_TREE, enc.data, enc.len, ret);
}

static int archive_dir(Archiver *a, const char *path, LbId *ret_tree) {
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        char **names = NULL;
        size_t n = 0;
        int k = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                char **v = realloc(names, (n + 1) * sizeof *v);
                if (!v || !(v[n] = strdup(de->d_name))) {
                        names = v ? v : names;
                        k = -ENOMEM;
                        break;
                }
                names = v;
                n++;
        }
        closedir(d);
        if (k == 0)
                lb_qsort(names, n, sizeof *names, name_cmp);

        LbTree t = {};
        FileBuilder *files = NULL;
        for (size_t i = 0; i < n && k == 0; i++) {
                _cleanup_free_ char *child = strcmp(path, "/") == 0 ? lb_strdup_printf("/%s", names[i])
                                                                     : lb_path_join(path, names[i]);
                if (!child) {
                        k = -ENOMEM;
                        break;
                }
                LbNode node;
                bool skip;
                k = archive_path(a, child, names[i], &files, &node, &skip);
                if (k == 0 && !skip && node.name)
                        k = lb_tree_add(&t, &node);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (k == 0) {
                drain(a);
                k = a->error;
        }
        if (k == 0)
                k = finish_files(a, files, &t);
        if (k == 0)
                k = store_tree(a, &t, ret_tree);
        fb_free(files);
        /* lb_tree_free frees the struct too; t is on the stack, so clear nodes by hand. */
        for (size_t i = 0; i < t.n; i++)
                lb_node_clear(&t.nodes[i]);
        free(t.nodes);
        return k;
}

/* ---- the virtual top of the snapshot: given paths and their parents ---- */

typedef struct VDir {
        char *name;
        char *real;             /* an input path: archived as found */
        struct VDir **kids;
        size_t n;
} VDir;

static void vdir_free(VDir *v) {
        if (!v)
                return;
        for (size_t i = 0; i < v->n; i++)
                vdir_free(v->kids[i]);
        free(v->kids);
        free(v->name);
        free(v->real);
        free(v);
}

/* Makes path absolute and normal (no ".", "..", or repeated slashes),
 * without resolving symlinks, as restic does. */
static char *normalize(const char *path) {
        _cleanup_free_ char *abs = NULL;
        if (path[0] == '/')
                abs = strdup(path);
        else {
                char cwd[4096];
                if (!getcwd(cwd, sizeof cwd))
                        return NULL;
                abs = lb_strdup_printf("%s/%s", cwd, path);
        }
        if (!abs)
                return NULL;
        char *out = malloc(strlen(abs) + 2);
        if (!out)
                return NULL;
        size_t o = 0;
        for (char *save = NULL, *c = strtok_r(abs, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (strcmp(c, ".") == 0)
                        continue;
                if (strcmp(c, "..") == 0) {
                        while (o > 0 && out[o - 1] != '/')
                                o--;
                        if (o > 0)
                                o--;
                        continue;
                }
                out[o++] = '/';
                memcpy(out + o, c, strlen(c));
                o += strlen(c);
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = 0;
        return out;
}

static VDir *vdir_child(VDir *v, const char *name) {
        for (size_t i = 0; i < v->n; i++)
                if (strcmp(v->kids[i]->name, name) == 0)
                        return v->kids[i];
        VDir **kids = realloc(v->kids, (v->n + 1) * sizeof *kids);
        if (!kids)
                return NULL;
        v->kids = kids;
        VDir *c = calloc(1, sizeof *c);
        if (!c || !(c->name = strdup(name))) {
                free(c);
                return NULL;
        }
        v->kids[v->n++] = c;
        return c;
}

static int vdir_insert(VDir *root, const char *norm) {
        _cleanup_free_ char *copy = strdup(norm);
        if (!copy)
                return -ENOMEM;
        VDir *v = root;
        for (char *save = NULL, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (v->real)
                        return 0; /* already covered by an enclosing input */
                v = vdir_child(v, c);
                if (!v)
                        return -ENOMEM;
        }
        if (v == root)
                return -EINVAL; /* "/" itself: handled by the caller */
        free(v->real);
        v->real = strdup(norm);
        return v->real ? 0 : -ENOMEM;
}

static int archive_vdir(Archiver *a, VDir *v, const char *path, LbTree *t, FileBuilder **files);

static int archive_vchildren(Archiver *a, VDir *v, const char *path, LbId *ret_tree) {
        LbTree t = {};
        FileBuilder *files = NULL;
        int k = 0;
        for (size_t i = 0; i < v->n && k == 0; i++) {
                _cleanup_free_ char *child = lb_strdup_printf("%s/%s", strcmp(path, "/") == 0 ? "" : path,
                                                              v->kids[i]->name);
                k = child ? archive_vdir(a, v->kids[i], child, &t, &files) : -ENOMEM;
        }
        if (k == 0) {
                drain(a);
                k = a->error;
        }
        if (k == 0)
                k = finish_files(a, files, &t);
        if (k == 0)
                k = store_tree(a, &t, ret_tree);
        fb_free(files);
        for (size_t i = 0; i < t.n; i++)
                lb_node_clear(&t.nodes[i]);
        free(t.nodes);
        return k;
}

static int archive_vdir(Archiver *a, VDir *v, const char *path, LbTree *t, FileBuilder **files) {
        LbNode node;
        bool skip;
        int k;
        if (v->real) {
                k = archive_path(a, v->real, v->name, files, &node, &skip);
                if (k == 0 && !skip && node.name)
                        k = lb_tree_add(t, &node);
                return k;
        }
        /* A parent of an input: recorded with its own metadata. */
        struct stat st;
        node = (LbNode) { .name = strdup(v->name), .type = LB_NODE_DIR, .mode = 0755, .has_subtree = true };
        if (!node.name)
                return -ENOMEM;
        if (stat(path, &st) == 0)
                fill_from_stat(&node, &st);
        k = archive_vchildren(a, v, path, &node.subtree);
        if (k == 0)
                k = lb_tree_add(t, &node);
        else
                lb_node_clear(&node);
        return k;
}

static int archive_stdin(Archiver *a, LbTree *t, FileBuilder **files) {
        const char *name = a->o->stdin_name;
        if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return -EINVAL;
        FileBuilder *fb = calloc(1, sizeof *fb);
        if (!fb)
                return -ENOMEM;
        fb->node = (LbNode) { .name = strdup(name), .type = LB_NODE_FILE, .mode = 0600,
                              .mtime_ns = a->o->time_ns ? a->o->time_ns : lb_now_ns() };
        fill_owner(&fb->node, getuid(), getgid());
        fb->next = *files;
        *files = fb;
        if (!fb->node.name)
                return -ENOMEM;
        uint64_t got;
        int k = chunk_stream(a, fb, a->o->stdin_fd, UINT64_MAX, &got);
        if (k < 0)
                return k; /* a broken stream is fatal: no partial snapshot */
        a->stats.files++;
        a->stats.bytes_read += got;
        return 0;
}

static int build_root(Archiver *a, LbId *ret_tree) {
        const LbBackupOptions *o = a->o;
        VDir *root = calloc(1, sizeof *root);
        if (!root)
                return -ENOMEM;
        int k = 0;
        bool whole_root = false;
        for (size_t i = 0; i < o->n_paths && k == 0; i++) {
                _cleanup_free_ char *norm = normalize(o->paths[i]);
                if (!norm) {
                        k = -ENOMEM;
                        break;
                }
                if (strcmp(norm, "/") == 0)
                        whole_root = true;
                else
                        k = vdir_insert(root, norm);
        }
        if (k < 0) {
                vdir_free(root);
                return k;
        }
        if (whole_root) {
                vdir_free(root);
                return archive_dir(a, "/", ret_tree);
        }
        LbTree t = {};
        FileBuilder *files = NULL;
        for (size_t i = 0; i < root->n && k == 0; i++) {
                _cleanup_free_ char *child = lb_strdup_printf("/%s", root->kids[i]->name);
                k = child ? archive_vdir(a, root->kids[i], child, &t, &files) : -ENOMEM;
        }
        if (k == 0 && o->stdin_name)
                k = archive_stdin(a, &t, &files);
        if (k == 0) {
                drain(a);
                k = a->error;
        }
        if (k == 0)
                k = finish_files(a, files, &t);
        if (k == 0)
                k = store_tree(a, &t, ret_tree);
        fb_free(files);
        for (size_t i = 0; i < t.n; i++)
                lb_node_clear(&t.nodes[i]);
        free(t.nodes);
        vdir_free(root);
        return k;
}

static int32_t local_offset(int64_t time_ns) {
        time_t t = (time_t) (time_ns / 1000000000);
        struct tm tm;
        localtime_r(&t, &tm);
        return (int32_t) tm.tm_gmtoff;
}

int lb_backup_run(LbRepo *r, const LbBackupOptions *o, LbBackupResult *ret) {
        if (o->n_paths == 0 && !o->stdin_name)
                return -EINVAL;
        int64_t start = lb_mono_ns();
        Archiver a = { .repo = r, .o = o };
        pthread_mutex_init(&a.lock, NULL);
        pthread_cond_init(&a.work_cond, NULL);
        pthread_cond_init(&a.done_cond, NULL);
        LbSnapshot snap = {};
        char host[256] = "";
        char **paths = NULL;
        int k = lb_writer_new(r, &a.writer);
        if (k < 0)
                goto done;
        a.buf = malloc(READ_BUF);
        a.zero = calloc(1, r->cfg.chunker.max);
        if (!a.buf || !a.zero) {
                k = -ENOMEM;
                goto done;
        }
        k = pool_start(&a);
        if (k == 0)
                k = build_root(&a, &snap.tree);
        pool_stop(&a);
        if (k == 0)
                k = a.error;
        if (k == 0)
                k = lb_writer_flush(a.writer);
        if (k == 0 && o->before_commit)
                k = o->before_commit(o->userdata);
        if (k < 0)
                goto done;

        LbWriterStats ws;
        lb_writer_stats(a.writer, &ws);
        a.stats.bytes_new = ws.bytes_new;
        a.stats.bytes_stored = ws.bytes_stored;
        a.stats.chunks_new = ws.blobs_new;
        a.stats.duration_ns = (uint64_t) (lb_mono_ns() - start);

        if (o->hostname)
                snprintf(host, sizeof host, "%s", o->hostname);
        else if (gethostname(host, sizeof host - 1) < 0)
                strcpy(host, "unknown");
        struct passwd pw, *pwp = NULL;
        char pwbuf[4096];
        (void) getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &pwp);
        snap.time_ns = o->time_ns ? o->time_ns : lb_now_ns();
        snap.tz_offset = o->has_tz_offset ? o->tz_offset : local_offset(snap.time_ns);
        snap.hostname = host;
        snap.username = pwp ? pwp->pw_name : NULL;
        snap.tags = (char **) o->tags;
        snap.n_tags = o->n_tags;
        paths = calloc(o->n_paths + 1, sizeof *paths);
        if (!paths) {
                k = -ENOMEM;
                goto done;
        }
        for (size_t i = 0; i < o->n_paths; i++)
                paths[snap.n_paths++] = normalize(o->paths[i]);
        if (o->stdin_name)
                paths[snap.n_paths++] = lb_strdup_printf("/%s", o->stdin_name);
        snap.paths = paths;
        snap.source = (char *) (o->source ? o->source : o->stdin_name && o->n_paths == 0 ? "stdin" : "files");
        snap.program = (char *) "longbox " LB_VERSION;
        snap.stats = a.stats;
        snap.meta = (LbMeta *) o->meta;
        snap.n_meta = o->n_meta;
        for (size_t i = 0; i < snap.n_paths; i++)
                if (!paths[i])
                        k = -ENOMEM;
        if (k == 0)
                k = lb_repo_snapshot_save(r, &snap, &ret->snapshot_id);
        if (k == 0)
                ret->stats = a.stats;
done:
        for (size_t i = 0; i < snap.n_paths; i++)
                free(paths[i]);
        free(paths);
        lb_writer_free(a.writer);
        free(a.buf);
        free(a.zero);
        pthread_cond_destroy(&a.work_cond);
        pthread_cond_destroy(&a.done_cond);
        pthread_mutex_destroy(&a.lock);
        return k;
}
