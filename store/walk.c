/* SPDX-License-Identifier: MIT */
#include <pthread.h>

#include "store/walk.h"

#include <fcntl.h>
#include <sys/stat.h>

static int dup_str(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int lb_node_copy(const LbNode *src, LbNode *ret) {
        LbNode n = *src;
        n.name = n.user = n.group = n.link = NULL;
        n.content = NULL;
        n.meta = NULL;
        n.n_meta = 0;

        int r = dup_str(src->name, &n.name);
        if (r == 0)
                r = dup_str(src->user, &n.user);
        if (r == 0)
                r = dup_str(src->group, &n.group);
        if (r == 0)
                r = dup_str(src->link, &n.link);
        if (r == 0 && src->n_content > 0) {
                n.content = calloc(src->n_content, sizeof *n.content);
                if (n.content)
                        memcpy(n.content, src->content, src->n_content * sizeof *n.content);
                else
                        r = -ENOMEM;
        }
        if (r == 0 && src->n_meta > 0) {
                n.meta = calloc(src->n_meta, sizeof *n.meta);
                if (!n.meta)
                        r = -ENOMEM;
                for (size_t i = 0; r == 0 && i < src->n_meta; i++) {
                        n.n_meta = i + 1;
                        r = dup_str(src->meta[i].key, &n.meta[i].key);
                        if (r == 0)
                                r = dup_str(src->meta[i].value, &n.meta[i].value);
                }
        }
        if (r < 0) {
                if (!n.content)
                        n.n_content = 0;
                lb_node_clear(&n);
                return r;
        }
        *ret = n;
        return 0;
}

/* Names that must never appear in a tree read back: they would escape the
 * directory they are restored into. */
char *lb_snapshot_path_normalize(const char *p) {
        size_t n = strlen(p);
        char *out = malloc(n + 2);
        if (!out)
                return NULL;
        size_t j = 0;
        out[j++] = '/';
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '/' && out[j - 1] == '/')
                        continue;
                out[j++] = p[i];
        }
        if (j > 1 && out[j - 1] == '/')
                j--;
        out[j] = 0;
        return out;
}

int lb_snapshot_lookup_path(LbRepo *r, const LbSnapshot *s, const char *path, LbNode *ret) {
        if (!path || path[0] != '/')
                return -EINVAL;

        /* The synthesized root. */
        LbNode cur = {
                .type = LB_NODE_DIR,
                .mode = 0755,
                .mtime_ns = s->time_ns,
                .has_subtree = true,
                .subtree = s->tree,
        };
        _cleanup_free_ char *rootname = strdup("/");
        if (!rootname)
                return -ENOMEM;
        cur.name = rootname;

        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;

        _cleanup_tree_ LbTree *tree = NULL;
        char *save = NULL;
        for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
                if (strcmp(comp, ".") == 0)
                        continue;
                if (cur.type != LB_NODE_DIR)
                        return -ENOTDIR;
                if (!cur.has_subtree)
                        return -ENOENT;   /* a directory recorded without contents */
                LbTree *next = NULL;
                int k = lb_repo_load_tree(r, &cur.subtree, &next);
                if (k < 0)
                        return k;
                const LbNode *found = lb_tree_find(next, comp);
                if (!found) {
                        lb_tree_free(next);
                        return -ENOENT;
                }
                /* cur borrows from next; keep next alive until replaced. */
                cur = *found;
                lb_tree_free(tree);
                tree = next;
        }

        return lb_node_copy(&cur, ret);
}

static int walk_tree(LbRepo *r, const LbId *id, const char *prefix, unsigned depth, LbWalkFn fn, void *userdata) {
        if (depth >= LB_WALK_DEPTH_MAX)
                return -ELOOP;

        _cleanup_tree_ LbTree *t = NULL;
        int k = lb_repo_load_tree(r, id, &t);
        if (k < 0)
                return k;

        for (size_t i = 0; i < t->n; i++) {
                const LbNode *n = &t->nodes[i];
                if (!lb_tree_name_valid(n->name))
                        return -EBADMSG;
                _cleanup_free_ char *path = lb_strdup_printf("%s/%s", prefix, n->name);
                if (!path)
                        return -ENOMEM;
                k = fn(path, n, userdata);
                if (k < 0)
                        return k;
                if (k == LB_WALK_SKIP || n->type != LB_NODE_DIR || !n->has_subtree)
                        continue;
                k = walk_tree(r, &n->subtree, path, depth + 1, fn, userdata);
                if (k < 0)
                        return k;
        }
        return 0;
}

int lb_walk(LbRepo *r, const LbId *tree, const char *prefix, LbWalkFn fn, void *userdata) {
        /* A prefix of "/" would give "//name". */
        if (strcmp(prefix, "/") == 0)
                prefix = "";
        return walk_tree(r, tree, prefix, 0, fn, userdata);
}

bool lb_is_zero(const void *p, size_t n) {
        const uint8_t *b = p;
        if (n == 0)
                return true;
        /* Check a short head byte by byte, then compare the buffer with itself shifted. */
        size_t head = LB_MIN(n, (size_t) 16);
        for (size_t i = 0; i < head; i++)
                if (b[i])
                        return false;
        return n <= 16 || memcmp(b, b + 16, n - 16) == 0;
}

typedef struct Stream {
        LbRepo *r;
        LbContentFn fn;
        void *userdata;
        uint64_t offset;
        uint64_t size;
        LbBuf chunk;
        LbContentFailure *failure;
        bool serial;             /* no read-ahead threads */
        /* For hints: the refs that follow the ones being streamed (the
         * next chunk list's), and how many refs are announced already: of
         * the ones being streamed when stream_refs starts, of next when
         * it returns. */
        const LbContentRef *next;
        size_t n_next;
        size_t hinted;
} Stream;

static void fail_on(Stream *st, const LbId *id, bool is_list) {
        if (!st->failure)
                return;
        *st->failure = (LbContentFailure) { .has_id = true, .id = *id, .is_list = is_list, .offset = st->offset };
}

/* Hands one verified chunk to the caller. */
static int deliver(Stream *st, const LbContentRef *ref, const LbBuf *chunk) {
        if (chunk->len != ref->size) {
                fail_on(st, &ref->id, false);
                return -EBADMSG;
        }
        int k = st->fn(chunk->data, chunk->len, st->offset, st->userdata);
        if (k < 0)
                return k;
        st->offset += ref->size;
        return 0;
}

static int check_ref(Stream *st, const LbContentRef *ref, uint64_t at) {
        if (ref->size > LB_CHUNK_MAX_LIMIT || ref->size > st->size - at) {
                fail_on(st, &ref->id, false);
                return -EBADMSG;
        }
        return 0;
}

/* ---- read hints: the blobs of the next HINT_AHEAD chunks are announced to
 * the backend (lb_repo_hint_blobs), at least HINT_BATCH at a time, so a
 * local disk reads them in parallel before the reads get there. Blobs lie
 * in random order inside their packs: without hints a cold sequential
 * read waits for one small random read after another. ---- */

#define HINT_AHEAD 2048
#define HINT_BATCH 256

/* Announces refs [from, to) of refs (n of them) followed by next. */
static void hint_refs(LbRepo *r, const LbContentRef *refs, size_t n, const LbContentRef *next, size_t from,
                      size_t to) {
        if (!r->be->hint || from >= to)
                return;
        _cleanup_free_ LbId *ids = malloc((to - from) * sizeof *ids);
        if (!ids)
                return;
        for (size_t i = from; i < to; i++)
                ids[i - from] = i < n ? refs[i].id : next[i - n].id;
        (void) lb_repo_hint_blobs(r, ids, to - from);
}

/* With refs below hinted announced and the reads at at, how far to
 * announce now (hinted: nothing to do yet); total counts the refs that
 * follow too. */
static size_t hint_upto(size_t hinted, size_t at, size_t total) {
        size_t want = LB_MIN(total, at + HINT_AHEAD);
        return want >= hinted + HINT_BATCH || want == total ? LB_MAX(want, hinted) : hinted;
}

/* ---- read-ahead: worker threads fetch and verify groups of consecutive
 * chunks, up to SLOTS groups ahead, and the caller takes them in order.
 * Working a group at a time (not a chunk) keeps the threads from waking
 * each other for every 8 KiB chunk; the slots' buffers are reused. ---- */

#define GROUP 16
#define SLOTS 16
#define READAHEAD_MIN_CHUNKS 4

typedef struct Slot {
        LbBuf bufs[GROUP];
        size_t n;             /* chunks fetched into bufs */
        int error;            /* fetching chunk n failed */
        bool done;
} Slot;

typedef struct Prefetch {
        LbRepo *r;
        const LbContentRef *refs;
        size_t n, n_groups;
        const LbContentRef *after;  /* for hints: Stream.next */
        size_t n_after;
        pthread_mutex_t lock;
        pthread_cond_t ready;   /* a slot is done (the caller waits) */
        pthread_cond_t room;    /* a slot is free, or stop (workers wait) */
        size_t next;            /* next group a worker takes */
        size_t consumed;        /* groups below this are delivered */
        size_t hinted;          /* refs below this are announced (hint_refs) */
        bool stop;
        Slot slots[SLOTS];
} Prefetch;

static void fetch_group(Prefetch *p, size_t g, Slot *sl) {
        size_t first = g * GROUP, count = LB_MIN((size_t) GROUP, p->n - first);
        LbBuf stored = {};
        sl->n = 0;
        sl->error = 0;
        for (size_t i = 0; i < count; i++) {
                int k = lb_repo_read_blob_buf(p->r, &p->refs[first + i].id, &stored, &sl->bufs[i]);
                if (k < 0) {
                        sl->error = k;
                        break;
                }
                sl->n++;
        }
        lb_buf_free(&stored);
}

static void *prefetch_worker(void *userdata) {
        Prefetch *p = userdata;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->stop && p->next < p->n_groups && p->next >= p->consumed + SLOTS)
                        pthread_cond_wait(&p->room, &p->lock);
                if (p->stop || p->next >= p->n_groups)
                        break;
                size_t g = p->next++;
                Slot *sl = &p->slots[g % SLOTS];
                size_t hint_from = p->hinted;
                p->hinted = hint_upto(hint_from, (g + 1) * GROUP, p->n + p->n_after);
                size_t hint_to = p->hinted;
                pthread_mutex_unlock(&p->lock);
                hint_refs(p->r, p->refs, p->n, p->after, hint_from, hint_to);
                /* The slot is this worker's until it is marked done. */
                fetch_group(p, g, sl);
                pthread_mutex_lock(&p->lock);
                sl->done = true;
                pthread_cond_signal(&p->ready);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static int stream_refs(Stream *st, const LbContentRef *refs, size_t n) {
        uint64_t at = st->offset;
        for (size_t i = 0; i < n; i++) {
                int k = check_ref(st, &refs[i], at);
                if (k < 0)
                        return k;
                at += refs[i].size;
        }
        size_t total = n + st->n_next, hinted = LB_MIN(st->hinted, n);
        if (total < READAHEAD_MIN_CHUNKS)
                hinted = total;   /* too few to be worth it */
        if (n < READAHEAD_MIN_CHUNKS || st->serial) {
                for (size_t i = 0; i < n; i++) {
                        size_t upto = hint_upto(hinted, i + 1, total);
                        hint_refs(st->r, refs, n, st->next, hinted, upto);
                        hinted = upto;
                        int k = lb_repo_read_blob(st->r, &refs[i].id, &st->chunk);
                        if (k == 0)
                                k = deliver(st, &refs[i], &st->chunk);
                        else
                                fail_on(st, &refs[i].id, false);
                        if (k < 0)
                                return k;
                }
                st->hinted = hinted > n ? hinted - n : 0;
                return 0;
        }

        Prefetch *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        *p = (Prefetch) { .r = st->r, .refs = refs, .n = n, .n_groups = (n + GROUP - 1) / GROUP,
                          .after = st->next, .n_after = st->n_next, .hinted = hinted };
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->ready, NULL);
        pthread_cond_init(&p->room, NULL);
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        pthread_t threads[4];
        unsigned nt = 0, want = (unsigned) LB_MAX(1, LB_MIN(cpus, 4));
        while (nt < want && pthread_create(&threads[nt], NULL, prefetch_worker, p) == 0)
                nt++;
        int k = nt > 0 ? 0 : -EAGAIN;
        for (size_t g = 0; g < p->n_groups && k == 0; g++) {
                Slot *sl = &p->slots[g % SLOTS];
                pthread_mutex_lock(&p->lock);
                while (!sl->done)
                        pthread_cond_wait(&p->ready, &p->lock);
                pthread_mutex_unlock(&p->lock);
                /* The slot is ours until consumed moves past it. */
                const LbContentRef *gr = &refs[g * GROUP];
                for (size_t i = 0; i < sl->n && k == 0; i++)
                        k = deliver(st, &gr[i], &sl->bufs[i]);
                if (k == 0 && sl->error < 0) {
                        k = sl->error;
                        fail_on(st, &gr[sl->n].id, false);
                }
                pthread_mutex_lock(&p->lock);
                sl->done = false;
                p->consumed = g + 1;
                pthread_cond_signal(&p->room);
                pthread_mutex_unlock(&p->lock);
        }
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->room);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < nt; i++)
                pthread_join(threads[i], NULL);
        st->hinted = p->hinted > n ? p->hinted - n : 0;
        for (size_t i = 0; i < SLOTS; i++)
                for (size_t j = 0; j < GROUP; j++)
                        lb_buf_free(&p->slots[i].bufs[j]);
        pthread_cond_destroy(&p->ready);
        pthread_cond_destroy(&p->room);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return k;
}

/* Reads, decodes and checks the chunk list list (ret_refs: the caller frees). */
static int load_list(LbRepo *r, const LbContentRef *list, LbContentRef **ret_refs, size_t *ret_n) {
        _cleanup_buf_ LbBuf raw = {};
        int k = lb_repo_read_blob(r, &list->id, &raw);
        if (k < 0)
                return k;
        LbContentRef *refs = NULL;
        size_t n = 0;
        k = lb_chunklist_decode(raw.data, raw.len, &refs, &n);
        if (k < 0)
                return k;
        /* The list must cover exactly the bytes its reference says. */
        uint64_t covered = 0;
        for (size_t i = 0; i < n; i++) {
                if (refs[i].size > list->size - covered) {
                        free(refs);
                        return -EBADMSG;
                }
                covered += refs[i].size;
        }
        if (covered != list->size) {
                free(refs);
                return -EBADMSG;
        }
        *ret_refs = refs;
        *ret_n = n;
        return 0;
}

/* Streams the chunks of n chunk lists. Where the backend takes hints, the
 * next list is loaded before the current one is streamed, so the hints
 * run on across the lists' boundaries, and the list after it is
 * announced: a cold read does not stop at each list. */
static int stream_lists(Stream *st, const LbContentRef *lists, size_t n) {
        _cleanup_free_ LbContentRef *cur = NULL, *next = NULL;
        size_t n_cur = 0, n_next = 0;
        bool ahead = st->r->be->hint != NULL;
        for (size_t i = 0; i < n; i++) {
                const LbContentRef *list = &lists[i];
                if (list->size > st->size - st->offset) {
                        fail_on(st, &list->id, true);
                        return -EBADMSG;
                }
                free(cur);
                cur = NULL;
                if (next) {
                        cur = LB_TAKE_PTR(next);
                        n_cur = n_next;
                } else {
                        st->hinted = 0;
                        int k = load_list(st->r, list, &cur, &n_cur);
                        if (k < 0) {
                                fail_on(st, &list->id, true);
                                return k;
                        }
                }
                /* Best effort: a list that fails here fails again, and is
                 * reported, when its turn comes. */
                if (ahead && i + 1 < n && load_list(st->r, &lists[i + 1], &next, &n_next) < 0)
                        next = NULL;
                if (ahead && i + 2 < n)
                        (void) lb_repo_hint_blobs(st->r, &lists[i + 2].id, 1);
                st->next = next;
                st->n_next = next ? n_next : 0;
                int k = stream_refs(st, cur, n_cur);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int content_foreach(LbRepo *r, const LbNode *file, LbContentFn fn, void *userdata,
                           LbContentFailure *failure, bool serial) {
        if (file->type != LB_NODE_FILE)
                return -EINVAL;

        Stream st = {
                .r = r,
                .fn = fn,
                .userdata = userdata,
                .size = file->size,
                .failure = failure,
                .serial = serial,
        };
        int k = file->indirect ? stream_lists(&st, file->content, file->n_content)
                               : stream_refs(&st, file->content, file->n_content);
        lb_buf_free(&st.chunk);
        if (k < 0)
                return k;
        if (st.offset != file->size)
                return -EBADMSG;
        if (failure)
                failure->has_id = false;
        return 0;
}

int lb_content_foreach_full(LbRepo *r, const LbNode *file, LbContentFn fn, void *userdata,
                            LbContentFailure *failure) {
        return content_foreach(r, file, fn, userdata, failure, false);
}

int lb_content_foreach_serial(LbRepo *r, const LbNode *file, LbContentFn fn, void *userdata,
                              LbContentFailure *failure) {
        return content_foreach(r, file, fn, userdata, failure, true);
}

int lb_content_foreach(LbRepo *r, const LbNode *file, LbContentFn fn, void *userdata) {
        return lb_content_foreach_full(r, file, fn, userdata, NULL);
}

typedef struct FdSink {
        int fd;
        bool sparse;
} FdSink;

static int write_chunk(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        FdSink *s = userdata;
        if (s->sparse && lb_is_zero(p, n)) {
                if (lseek(s->fd, (off_t) n, SEEK_CUR) < 0)
                        return -errno;
                return 0;
        }
        return lb_write_all(s->fd, p, n);
}

int lb_content_write_fd_full(LbRepo *r, const LbNode *file, int fd, bool sparse, LbContentFailure *failure) {
        FdSink s = { .fd = fd, .sparse = sparse };
        int k = lb_content_foreach_full(r, file, write_chunk, &s, failure);
        if (k < 0)
                return k;
        /* Trailing holes are only a seek so far: give the file its length. */
        if (sparse && ftruncate(fd, (off_t) file->size) < 0)
                return -errno;
        return 0;
}

int lb_content_write_fd(LbRepo *r, const LbNode *file, int fd, bool sparse) {
        return lb_content_write_fd_full(r, file, fd, sparse, NULL);
}
