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

#define QUEUE_JOBS 64
#define QUEUE_BYTES (16u << 20)
#define READ_BUF (8u << 20)

/* A file whose chunk refs are being collected. */
typedef struct FileBuilder {
        LbNode node;
        LbContentRef *refs;
        size_t n, cap;
        int error;
        struct FileBuilder *next;
} FileBuilder;

/* A job is a batch of consecutive chunks of one file, so threads meet
 * once per batch (about a MiB) rather than once per chunk. */
#define BATCH_BYTES (1u << 20)
#define BATCH_CHUNKS 256
/* Batch buffers are recycled rather than freed: a fresh MiB from malloc
 * comes back from the kernel as pages to fault in and zero, which cost the
 * main thread as much as the copy into them. Enough for the queue's bytes
 * in flight plus the batch being filled. */
#define SPARE_BUFFERS (QUEUE_BYTES / BATCH_BYTES + 2)

typedef struct Job {
        uint8_t *data;        /* the chunks back to back; NULL for a hole (all zero chunks) */
        size_t len;
        uint32_t n;
        uint32_t lens[BATCH_CHUNKS];
        LbId ids[BATCH_CHUNKS];   /* computed by the worker (given for holes) */
        int error;
        bool done;
        FileBuilder *fb;
} Job;

typedef struct Archiver {
        LbRepo *repo;
        LbWriter *writer;
        const LbBackupOptions *o;
        LbSnapshotStats stats;
        LbChangeCounts changes;

        pthread_mutex_t lock;
        pthread_cond_t work_cond, done_cond;
        Job *ring;                        /* QUEUE_JOBS */
        uint64_t head, next_work, tail;   /* head <= next_work <= tail */
        size_t inflight_bytes;
        bool stop;
        pthread_t *threads;
        unsigned n_threads;
        int error;                        /* first fatal error */

        Job batch;                        /* being filled by the main thread */
        uint8_t *spare[SPARE_BUFFERS];    /* batch buffers to reuse (main thread only) */
        unsigned n_spare;
        uint8_t *buf;                     /* read buffer */
        size_t buf_size;                  /* >= 2 * chunk_max */
        uint8_t *zero;                    /* chunk_max zero bytes, shared by hole jobs */
        struct { uint32_t len; LbId id; } zero_ids[4];

        uint64_t progress_bytes;          /* read so far, for o->progress */
        const char *cur_path;             /* the file being read */
} Archiver;

static void progress(Archiver *a, uint64_t n) {
        a->progress_bytes += n;
        if (a->o->progress)
                a->o->progress(a->o->userdata, a->progress_bytes, a->cur_path ? a->cur_path : "");
}

/* ---- worker pool ---- */

static int process(Archiver *a, Job *j) {
        size_t off = 0;
        for (uint32_t i = 0; i < j->n; i++) {
                const uint8_t *p = j->data ? j->data + off : a->zero;
                if (j->data)
                        lb_chunk_id(&a->repo->keys, p, j->lens[i], &j->ids[i]);
                int k = lb_writer_add_with_id(a->writer, LB_BLOB_DATA, &j->ids[i], p, j->lens[i]);
                if (k < 0)
                        return k;
                off += j->lens[i];
        }
        return 0;
}

/* Takes the next unstarted job and does it. Called with a->lock held,
 * which is dropped while the job runs. */
static void work_one_locked(Archiver *a) {
        Job *j = &a->ring[a->next_work++ % QUEUE_JOBS];
        pthread_mutex_unlock(&a->lock);
        int k = process(a, j);
        pthread_mutex_lock(&a->lock);
        j->error = k;
        j->done = true;
        pthread_cond_broadcast(&a->done_cond);
}

static void *worker_main(void *userdata) {
        Archiver *a = userdata;
        pthread_mutex_lock(&a->lock);
        for (;;) {
                while (a->next_work == a->tail && !a->stop)
                        pthread_cond_wait(&a->work_cond, &a->lock);
                if (a->next_work == a->tail && a->stop)
                        break;
                work_one_locked(a);
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

/* Keeps a finished batch buffer for the next batch, or frees it. */
static void buffer_release(Archiver *a, uint8_t *data) {
        if (data && a->n_spare < SPARE_BUFFERS)
                a->spare[a->n_spare++] = data;
        else
                free(data);
}

static uint8_t *buffer_get(Archiver *a) {
        if (a->n_spare > 0)
                return a->spare[--a->n_spare];
        return malloc(LB_MAX((size_t) BATCH_BYTES, (size_t) a->repo->cfg.chunker.max));
}

/* Pops the oldest job once it is done and appends its chunk refs to its
 * file. Called with a->lock held. While the oldest job is not done, the
 * main thread does queued jobs itself rather than sleep: it then never
 * competes with a worker for a core, and no core idles while jobs wait. */
static void pop_locked(Archiver *a) {
        Job *j = &a->ring[a->head % QUEUE_JOBS];
        while (!j->done) {
                if (a->next_work < a->tail)
                        work_one_locked(a);
                else
                        pthread_cond_wait(&a->done_cond, &a->lock);
        }
        int k = j->error;
        for (uint32_t i = 0; k == 0 && i < j->n; i++)
                k = fb_append(j->fb, &j->ids[i], j->lens[i]);
        if (k < 0 && j->fb->error == 0)
                j->fb->error = k;
        if (k < 0 && a->error == 0)
                a->error = k;
        buffer_release(a, j->data);
        a->inflight_bytes -= j->len;
        j->data = NULL;
        j->n = 0;
        j->len = 0;
        j->done = false;
        j->error = 0;
        j->fb = NULL;
        a->head++;
}

/* Queues a job (copied into the ring; its data now belongs to the ring). */
static int submit(Archiver *a, const Job *job) {
        pthread_mutex_lock(&a->lock);
        while (a->tail - a->head >= QUEUE_JOBS || (a->tail > a->head && a->inflight_bytes + job->len > QUEUE_BYTES))
                pop_locked(a);
        int k = a->error;
        if (k == 0) {
                Job *j = &a->ring[a->tail % QUEUE_JOBS];
                j->data = job->data;
                j->len = job->len;
                j->n = job->n;
                j->fb = job->fb;
                memcpy(j->lens, job->lens, job->n * sizeof job->lens[0]);
                if (!job->data)
                        memcpy(j->ids, job->ids, job->n * sizeof job->ids[0]);
                a->tail++;
                a->inflight_bytes += job->len;
                pthread_cond_signal(&a->work_cond);
        }
        pthread_mutex_unlock(&a->lock);
        if (k < 0)
                buffer_release(a, job->data);
        return k;
}

/* Submits the batch being filled, if any. */
static int batch_flush(Archiver *a) {
        Job *b = &a->batch;
        if (b->n == 0)
                return 0;
        int k = submit(a, b);
        b->data = NULL;
        b->len = 0;
        b->n = 0;
        return k;
}

/* Adds one chunk (copied) to the batch of file fb. */
static int batch_add(Archiver *a, FileBuilder *fb, const uint8_t *p, size_t len) {
        Job *b = &a->batch;
        if (b->n > 0 && (b->fb != fb || b->n == BATCH_CHUNKS || b->len + len > BATCH_BYTES)) {
                int k = batch_flush(a);
                if (k < 0)
                        return k;
        }
        if (!b->data) {
                /* A batch is flushed before it would pass BATCH_BYTES, so it
                 * holds at most that, or one chunk of chunk_max. */
                b->data = buffer_get(a);
                if (!b->data)
                        return -ENOMEM;
        }
        b->fb = fb;
        memcpy(b->data + b->len, p, len);
        b->len += len;
        b->lens[b->n++] = (uint32_t) len;
        a->stats.chunks++;
        return 0;
}

static void drain(Archiver *a) {
        int k = batch_flush(a);
        pthread_mutex_lock(&a->lock);
        if (k < 0 && a->error == 0)
                a->error = k;
        while (a->head < a->tail)
                pop_locked(a);
        pthread_mutex_unlock(&a->lock);
}

static int pool_start(Archiver *a) {
        a->ring = calloc(QUEUE_JOBS, sizeof *a->ring);
        if (!a->ring)
                return -ENOMEM;
        /* One core is the main thread's: it reads and cuts chunks, and
         * does jobs itself while the queue is full (pop_locked). */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        a->n_threads = (unsigned) LB_MAX(1, LB_MIN(n - 1, 8));
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
        if (a->ring)
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
        free(a->batch.data);
        a->batch.data = NULL;
        while (a->n_spare > 0)
                free(a->spare[--a->n_spare]);
        free(a->ring);
        a->ring = NULL;
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
        int k = batch_flush(a);
        if (k < 0)
                return k;
        uint32_t max = a->repo->cfg.chunker.max;
        Job *hole = calloc(1, sizeof *hole);
        if (!hole)
                return -ENOMEM;
        hole->fb = fb;
        while (len > 0 && k == 0) {
                uint32_t n = (uint32_t) LB_MIN(len, (uint64_t) max);
                hole->ids[hole->n] = *zero_id(a, n);
                hole->lens[hole->n++] = n;
                a->stats.chunks++;
                len -= n;
                if (hole->n == BATCH_CHUNKS || len == 0) {
                        k = submit(a, hole);
                        hole->n = 0;
                }
        }
        free(hole);
        return k;
}

/* Chunks `limit` bytes (UINT64_MAX: to EOF) of fd from its current position.
 * *ret_read gets the count read. */
static int chunk_stream(Archiver *a, FileBuilder *fb, int fd, uint64_t limit, uint64_t *ret_read) {
        size_t have = 0;
        uint64_t total = 0;
        bool eof = false;
        for (;;) {
                if (!eof && have < a->buf_size) {
                        size_t want = a->buf_size - have;
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
                        if (got > 0)
                                progress(a, got);
                        if (got < want || want == 0 || (limit != UINT64_MAX && total == limit))
                                eof = true;
                }
                size_t off = 0;
                while (off < have) {
                        /* Keep at least chunk_max bytes ahead unless at EOF. */
                        if (!eof && have - off < a->repo->cfg.chunker.max)
                                break;
                        size_t cut = lb_chunker_cut(&a->repo->chunker, a->buf + off, have - off, eof);
                        if (cut == 0)
                                break;
                        int k = batch_add(a, fb, a->buf + off, cut);
                        if (k < 0)
                                return k;
                        off += cut;
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
 * file system reports them. *ret_read gets the bytes covered, holes included. */
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
                        read_total += (uint64_t) data - pos;
                        progress(a, (uint64_t) data - pos);
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

/* Turns a finished file builder into its node's content. */
static int finish_file(Archiver *a, FileBuilder *fb) {
        int k = lb_writer_set_content(a->writer, &fb->node, fb->refs, fb->n);
        if (k == 0) {
                fb->refs = NULL;
                fb->n = fb->cap = 0;
        }
        return k;
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

/* A directory being built: its finished nodes, its files still in the
 * pipeline, and the same directory in the parent snapshot (or NULL). */
typedef struct DirBuilder {
        LbTree t;
        FileBuilder *files;
        LbTree *parent;
} DirBuilder;

static void dir_begin(Archiver *a, DirBuilder *d, const LbNode *parent_node) {
        *d = (DirBuilder) {};
        if (parent_node && parent_node->type == LB_NODE_DIR && parent_node->has_subtree &&
            lb_repo_load_tree(a->repo, &parent_node->subtree, &d->parent) < 0)
                d->parent = NULL; /* an unreadable parent only costs the comparison */
}

/* Frees a directory being built. Its files' chunks may still be in the
 * pipeline (after an error), so drain first: jobs point at the builders. */
static void dir_free(Archiver *a, DirBuilder *d) {
        drain(a);
        fb_free(d->files);
        for (size_t i = 0; i < d->t.n; i++)
                lb_node_clear(&d->t.nodes[i]);
        free(d->t.nodes);
        lb_tree_free(d->parent);
        *d = (DirBuilder) {};
}

static const LbNode *parent_of(const DirBuilder *d, const char *name) {
        return d->parent ? lb_tree_find(d->parent, name) : NULL;
}

/* Counts a finished node as new, changed or unmodified against its parent. */
static void classify(Archiver *a, const DirBuilder *d, const LbNode *n) {
        const LbNode *p = parent_of(d, n->name);
        bool same = p && !lb_node_changed(p, n);
        LbChangeCounts *c = &a->changes;
        if (n->type == LB_NODE_DIR) {
                same = same && p->has_subtree && lb_id_cmp(&p->subtree, &n->subtree) == 0;
                (*(!p ? &c->dirs_new : same ? &c->dirs_unmodified : &c->dirs_changed))++;
        } else if (n->type == LB_NODE_FILE)
                (*(!p ? &c->files_new : same ? &c->files_unmodified : &c->files_changed))++;
}

/* Drains the pipeline, completes the directory's files, and stores its tree. */
static int dir_finish(Archiver *a, DirBuilder *d, LbId *ret_tree) {
        drain(a);
        int k = a->error;
        for (FileBuilder *fb = d->files; fb && k == 0; fb = fb->next) {
                if (fb->error < 0)
                        continue; /* already reported; the file is left out */
                k = finish_file(a, fb);
                if (k == 0)
                        classify(a, d, &fb->node);
                if (k == 0)
                        k = lb_tree_add(&d->t, &fb->node);
        }
        if (k == 0)
                k = lb_tree_sort(&d->t);
        _cleanup_buf_ LbBuf enc = {};
        if (k == 0)
                k = lb_tree_encode(&d->t, &enc);
        if (k == 0)
                k = lb_writer_add(a->writer, LB_BLOB_TREE, enc.data, enc.len, ret_tree);
        return k;
}

/* Adds a finished (non-file) node to d. */
static int dir_add(Archiver *a, DirBuilder *d, LbNode *n) {
        classify(a, d, n);
        return lb_tree_add(&d->t, n);
}

static int archive_dir(Archiver *a, const char *path, const LbNode *parent_node, LbId *ret_tree);

/* Archives one filesystem object into d. An unreadable object is reported
 * and skipped; negative returns are fatal (the repository cannot be written). */
static int archive_path(Archiver *a, DirBuilder *d, const char *path, const char *name) {
        struct stat st;
        if (lstat(path, &st) < 0) {
                warn(a, path, -errno);
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
                fb->next = d->files;
                d->files = fb;
                uint64_t covered = 0;
                a->cur_path = path;
                k = chunk_file(a, fb, fd, (uint64_t) st.st_size, &covered);
                a->cur_path = NULL;
                close(fd);
                if (k < 0 && a->error == 0 && k != -ENOMEM) {
                        /* A read error: the file is left out, the backup goes on. */
                        fb->error = k;
                        warn(a, path, k);
                        return 0;
                }
                if (k == 0) {
                        a->stats.files++;
                        a->stats.bytes_read += covered;
                }
                /* The node is completed by dir_finish() once its chunks are done. */
                return k;
        }
        if (S_ISDIR(st.st_mode)) {
                n.type = LB_NODE_DIR;
                k = archive_dir(a, path, parent_of(d, name), &n.subtree);
                if (k < 0 && a->error == 0 && k != -ENOMEM) {
                        warn(a, path, k);
                        lb_node_clear(&n);
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
                return 0;
        }
        if (k == 0)
                k = dir_add(a, d, &n);
        lb_node_clear(&n);
        return k;
}

static int name_cmp(const void *x, const void *y) {
        return strcmp(*(char *const *) x, *(char *const *) y);
}

/* Reads a directory's entry names, sorted bytewise. */
static int read_names(const char *path, char ***ret, size_t *ret_n) {
        DIR *dir = opendir(path);
        if (!dir)
                return -errno;
        char **names = NULL;
        size_t n = 0;
        int k = 0;
        struct dirent *de;
        for (;;) {
                errno = 0;
                de = readdir(dir);
                if (!de) {
                        k = -errno;
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                char **v = realloc(names, (n + 1) * sizeof *v);
                if (!v) {
                        k = -ENOMEM;
                        break;
                }
                names = v;
                if (!(names[n] = strdup(de->d_name))) {
                        k = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(dir);
        if (k < 0) {
                for (size_t i = 0; i < n; i++)
                        free(names[i]);
                free(names);
                return k;
        }
        lb_qsort(names, n, sizeof *names, name_cmp);
        *ret = names;
        *ret_n = n;
        return 0;
}

static int archive_dir(Archiver *a, const char *path, const LbNode *parent_node, LbId *ret_tree) {
        char **names = NULL;
        size_t n = 0;
        int k = read_names(path, &names, &n);
        if (k < 0)
                return k;
        DirBuilder d;
        dir_begin(a, &d, parent_node);
        for (size_t i = 0; i < n && k == 0; i++) {
                _cleanup_free_ char *child = lb_strdup_printf("%s/%s", strcmp(path, "/") == 0 ? "" : path, names[i]);
                k = child ? archive_path(a, &d, child, names[i]) : -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (k == 0)
                k = dir_finish(a, &d, ret_tree);
        dir_free(a, &d);
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

static int archive_stdin(Archiver *a, DirBuilder *d) {
        const char *name = a->o->stdin_name;
        if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return -EINVAL;
        FileBuilder *fb = calloc(1, sizeof *fb);
        if (!fb)
                return -ENOMEM;
        fb->node = (LbNode) { .name = strdup(name), .type = LB_NODE_FILE, .mode = 0600,
                              .mtime_ns = a->o->time_ns ? a->o->time_ns : lb_now_ns() };
        fill_owner(&fb->node, getuid(), getgid());
        fb->next = d->files;
        d->files = fb;
        if (!fb->node.name)
                return -ENOMEM;
        uint64_t got;
        _cleanup_free_ char *shown = lb_strdup_printf("/%s", name);
        a->cur_path = shown;
        int k = chunk_stream(a, fb, a->o->stdin_fd, UINT64_MAX, &got);
        a->cur_path = NULL;
        if (k < 0)
                return k; /* a broken stream is fatal: no partial snapshot */
        a->stats.files++;
        a->stats.bytes_read += got;
        return 0;
}

/* Builds the tree of a virtual directory: the inputs below it and the
 * directories leading to them (recorded with their own metadata). */
static int archive_vdir(Archiver *a, VDir *v, const char *path, const LbNode *parent_node, bool with_stdin,
                        LbId *ret_tree) {
        DirBuilder d;
        dir_begin(a, &d, parent_node);
        int k = 0;
        for (size_t i = 0; i < v->n && k == 0; i++) {
                VDir *kid = v->kids[i];
                _cleanup_free_ char *child = lb_strdup_printf("%s/%s", strcmp(path, "/") == 0 ? "" : path, kid->name);
                if (!child) {
                        k = -ENOMEM;
                        break;
                }
                if (kid->real) {
                        k = archive_path(a, &d, kid->real, kid->name);
                        continue;
                }
                struct stat st;
                LbNode n = { .name = strdup(kid->name), .type = LB_NODE_DIR, .mode = 0755, .has_subtree = true };
                if (!n.name) {
                        k = -ENOMEM;
                        break;
                }
                if (stat(child, &st) == 0)
                        fill_from_stat(&n, &st);
                k = archive_vdir(a, kid, child, parent_of(&d, kid->name), false, &n.subtree);
                if (k == 0)
                        k = dir_add(a, &d, &n);
                lb_node_clear(&n);
        }
        if (k == 0 && with_stdin)
                k = archive_stdin(a, &d);
        if (k == 0)
                k = dir_finish(a, &d, ret_tree);
        dir_free(a, &d);
        return k;
}

static int build_root(Archiver *a, LbId *ret_tree) {
        const LbBackupOptions *o = a->o;
        /* The parent snapshot's root, as a node, so the walk can compare. */
        LbNode parent_root = { .type = LB_NODE_DIR };
        if (o->parent) {
                parent_root.has_subtree = true;
                parent_root.subtree = o->parent->tree;
        }
        VDir *root = calloc(1, sizeof *root);
        if (!root)
                return -ENOMEM;
        int k = 0;
        bool whole_root = false;
        for (size_t i = 0; i < o->n_paths && k == 0; i++) {
                _cleanup_free_ char *norm = normalize(o->paths[i]);
                if (!norm)
                        k = -ENOMEM;
                else if (strcmp(norm, "/") == 0)
                        whole_root = true;
                else
                        k = vdir_insert(root, norm);
        }
        if (k == 0 && whole_root && !o->stdin_name)
                k = archive_dir(a, "/", &parent_root, ret_tree);
        else if (k == 0 && whole_root)
                k = -EINVAL; /* "/" and a stdin stream cannot share the root */
        else if (k == 0)
                k = archive_vdir(a, root, "/", &parent_root, o->stdin_name != NULL, ret_tree);
        vdir_free(root);
        return k;
}

static void backup_hostname(const LbBackupOptions *o, char host[256]) {
        if (o->hostname)
                snprintf(host, 256, "%s", o->hostname);
        else if (gethostname(host, 255) < 0)
                strcpy(host, "unknown");
        host[255] = 0;
}

/* The snapshot's paths: the normalized inputs, then "/<stdin name>". */
static int backup_paths(const LbBackupOptions *o, char ***ret, size_t *ret_n) {
        char **paths = calloc(o->n_paths + 1, sizeof *paths);
        if (!paths)
                return -ENOMEM;
        size_t n = 0;
        int k = 0;
        for (size_t i = 0; i < o->n_paths && k == 0; i++)
                if (!(paths[n++] = normalize(o->paths[i])))
                        k = -ENOMEM;
        if (k == 0 && o->stdin_name && !(paths[n++] = lb_strdup_printf("/%s", o->stdin_name)))
                k = -ENOMEM;
        if (k < 0) {
                for (size_t i = 0; i < n; i++)
                        free(paths[i]);
                free(paths);
                return k;
        }
        *ret = paths;
        *ret_n = n;
        return 0;
}

static bool same_path_set(char **a, size_t na, char **b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++) {
                bool found = false;
                for (size_t j = 0; j < nb && !found; j++)
                        found = strcmp(a[i], b[j]) == 0;
                if (!found)
                        return false;
        }
        return true;
}

int lb_backup_find_parent(LbRepo *r, const LbBackupOptions *o, LbSnapshot **ret) {
        char host[256];
        backup_hostname(o, host);
        char **paths;
        size_t n_paths;
        int k = backup_paths(o, &paths, &n_paths);
        if (k < 0)
                return k;
        LbSnapshot **v = NULL;
        size_t n = 0;
        k = lb_repo_snapshot_list(r, &v, &n);
        ssize_t best = -1;
        for (size_t i = 0; k == 0 && i < n; i++)  /* sorted oldest first: the last match wins */
                if (v[i]->hostname && strcmp(v[i]->hostname, host) == 0 &&
                    same_path_set(v[i]->paths, v[i]->n_paths, paths, n_paths))
                        best = (ssize_t) i;
        if (k == 0 && best < 0)
                k = -ENOENT;
        if (k == 0) {
                *ret = v[best];
                v[best] = NULL;
        }
        lb_snapshots_free(v, n);
        for (size_t i = 0; i < n_paths; i++)
                free(paths[i]);
        free(paths);
        return k;
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
        /* Room for a full read plus a whole chunk_max carried over. */
        a.buf_size = LB_MAX((size_t) READ_BUF, 2 * (size_t) r->cfg.chunker.max);
        a.buf = malloc(a.buf_size);
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
        a.stats.bytes_new = ws.data_bytes_new;
        a.stats.bytes_stored = ws.bytes_stored;
        a.stats.chunks_new = ws.data_new;
        a.stats.duration_ns = (uint64_t) (lb_mono_ns() - start);

        backup_hostname(o, host);
        struct passwd pw, *pwp = NULL;
        char pwbuf[4096];
        (void) getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &pwp);
        snap.time_ns = o->time_ns ? o->time_ns : lb_now_ns();
        snap.tz_offset = o->has_tz_offset ? o->tz_offset : lb_local_tz_offset(snap.time_ns);
        snap.hostname = host;
        snap.username = pwp ? pwp->pw_name : NULL;
        snap.tags = (char **) o->tags;
        snap.n_tags = o->n_tags;
        k = backup_paths(o, &paths, &snap.n_paths);
        if (k < 0)
                goto done;
        snap.paths = paths;
        snap.source = (char *) (o->source ? o->source : o->stdin_name && o->n_paths == 0 ? "stdin" : "files");
        snap.program = (char *) "longbox " LB_VERSION;
        snap.stats = a.stats;
        snap.meta = (LbMeta *) o->meta;
        if (o->parent) {
                snap.has_parent = true;
                snap.parent = o->parent->id;
        }
        snap.n_meta = o->n_meta;
        k = lb_repo_snapshot_save(r, &snap, &ret->snapshot_id);
        if (k == 0) {
                ret->stats = a.stats;
                ret->changes = a.changes;
        }
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
