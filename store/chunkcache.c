/* SPDX-License-Identifier: MIT */
#include <pthread.h>

#include "store/chunkcache.h"

/* Blobs queued for read-ahead at most (the rest of a request is dropped). */
#define QUEUE_MAX 1024u
#define WORKERS_MAX 16u

typedef struct Entry {
        LbId id;
        uint8_t *data;
        size_t len;
        unsigned refs;
        unsigned waiters;          /* threads waiting for this load */
        pthread_cond_t done;       /* this load finished (signalled only with waiters) */
        int error;
        bool loading;
        bool started;              /* a thread is reading it (queued ones: not yet) */
        bool in_table;             /* findable; false once failed or evicted */
        struct Entry *hnext;       /* hash chain */
        struct Entry *prev, *next; /* LRU list of loaded entries, most recent first */
} Entry;

struct LbChunkCache {
        LbRepo *r;
        uint64_t max_bytes;
        pthread_mutex_t lock;
        pthread_cond_t work;       /* the queue or hints have work, or stop */
        Entry **buckets;
        size_t mask;
        Entry *lru_head, *lru_tail;
        uint64_t bytes;            /* plaintext of loaded entries in the table */
        Entry *queue[QUEUE_MAX];
        size_t q_head, q_len;
        /* Queued blobs not yet announced to the backend (lb_repo_hint_blobs):
         * a worker announces them, not the reader that queued them, whose
         * read would wait for the many small hints. */
        LbId *hints;
        size_t n_hints, cap_hints;
        bool stop;
        pthread_t threads[WORKERS_MAX];
        unsigned n_threads;
        LbChunkCacheStats stats;
};

static size_t bucket_of(const LbChunkCache *c, const LbId *id) {
        /* Ids are keyed hashes: any 8 bytes are uniform. */
        return (size_t) lb_get_le64(id->b) & c->mask;
}

static Entry *find(LbChunkCache *c, const LbId *id) {
        for (Entry *e = c->buckets[bucket_of(c, id)]; e; e = e->hnext)
                if (memcmp(e->id.b, id->b, LB_ID_SIZE) == 0)
                        return e;
        return NULL;
}

static Entry *insert_new(LbChunkCache *c, const LbId *id) {
        Entry *e = calloc(1, sizeof *e);
        if (!e)
                return NULL;
        e->id = *id;
        pthread_cond_init(&e->done, NULL);
        e->loading = true;
        e->in_table = true;
        size_t b = bucket_of(c, id);
        e->hnext = c->buckets[b];
        c->buckets[b] = e;
        return e;
}

static void lru_unlink(LbChunkCache *c, Entry *e) {
        if (e->prev)
                e->prev->next = e->next;
        else if (c->lru_head == e)
                c->lru_head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else if (c->lru_tail == e)
                c->lru_tail = e->prev;
        e->prev = e->next = NULL;
}

static void lru_push_front(LbChunkCache *c, Entry *e) {
        e->prev = NULL;
        e->next = c->lru_head;
        if (c->lru_head)
                c->lru_head->prev = e;
        c->lru_head = e;
        if (!c->lru_tail)
                c->lru_tail = e;
}

/* Takes e out of the table (it stays alive while referenced). */
static void table_remove(LbChunkCache *c, Entry *e) {
        if (!e->in_table)
                return;
        Entry **pp = &c->buckets[bucket_of(c, &e->id)];
        while (*pp && *pp != e)
                pp = &(*pp)->hnext;
        if (*pp)
                *pp = e->hnext;
        e->hnext = NULL;
        e->in_table = false;
        if (!e->loading && !e->error) {
                lru_unlink(c, e);
                c->bytes -= e->len;
        }
}

static void entry_free(Entry *e) {
        pthread_cond_destroy(&e->done);
        free(e->data);
        free(e);
}

static void unref(LbChunkCache *c, Entry *e) {
        if (--e->refs == 0 && !e->in_table)
                entry_free(e);
}

static void evict(LbChunkCache *c) {
        Entry *e = c->lru_tail;
        while (c->bytes > c->max_bytes && e) {
                Entry *prev = e->prev;
                if (e->refs == 0) {
                        table_remove(c, e);
                        entry_free(e);
                        c->stats.evictions++;
                }
                e = prev;
        }
}

/* Called with the lock held after a read of e finished. */
static void finish(LbChunkCache *c, Entry *e, int k, LbBuf *b) {
        e->loading = false;
        if (k < 0) {
                e->error = k;
                /* Not cached: the next reader tries again. */
                Entry **pp = &c->buckets[bucket_of(c, &e->id)];
                while (*pp && *pp != e)
                        pp = &(*pp)->hnext;
                if (*pp)
                        *pp = e->hnext;
                e->in_table = false;
        } else {
                e->data = LB_TAKE_PTR(b->data);
                e->len = b->len;
                *b = (LbBuf) {};
                c->bytes += e->len;
                lru_push_front(c, e);
                c->stats.reads++;
                evict(c);
        }
        /* Wake only this blob's waiters: a shared condition woke every
         * waiting reader on each of the many small loads of a sequential
         * read, to go back to sleep again. */
        if (e->waiters > 0)
                pthread_cond_broadcast(&e->done);
}

static void *worker(void *userdata) {
        LbChunkCache *c = userdata;
        LbBuf stored = {};   /* sealed bytes, the buffer reused from blob to blob */
        pthread_mutex_lock(&c->lock);
        for (;;) {
                while (!c->stop && c->q_len == 0 && c->n_hints == 0)
                        pthread_cond_wait(&c->work, &c->lock);
                if (c->stop)
                        break;
                if (c->n_hints > 0) {
                        /* Hints first: they start reads for the queue's tail. */
                        LbId *ids = LB_TAKE_PTR(c->hints);
                        size_t n = c->n_hints;
                        c->n_hints = c->cap_hints = 0;
                        pthread_mutex_unlock(&c->lock);
                        (void) lb_repo_hint_blobs(c->r, ids, n);
                        free(ids);
                        pthread_mutex_lock(&c->lock);
                        continue;
                }
                Entry *e = c->queue[c->q_head];
                c->q_head = (c->q_head + 1) % QUEUE_MAX;
                c->q_len--;
                if (e->started) {
                        /* A reader took it (lb_chunk_cache_get). */
                        unref(c, e);
                        continue;
                }
                e->started = true;
                pthread_mutex_unlock(&c->lock);
                LbBuf b = {};
                int k = lb_repo_read_blob_buf(c->r, &e->id, &stored, &b);
                pthread_mutex_lock(&c->lock);
                finish(c, e, k, &b);
                lb_buf_free(&b);
                c->stats.prefetched++;
                unref(c, e);
        }
        pthread_mutex_unlock(&c->lock);
        lb_buf_free(&stored);
        return NULL;
}

int lb_chunk_cache_new(LbRepo *r, uint64_t max_bytes, unsigned workers, LbChunkCache **ret) {
        LbChunkCache *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->r = r;
        c->max_bytes = max_bytes;
        /* About one bucket per 8 KiB chunk the cache can hold. */
        size_t nb = 1024;
        while (nb < (1u << 20) && (uint64_t) nb * 8192 < max_bytes)
                nb <<= 1;
        c->buckets = calloc(nb, sizeof *c->buckets);
        if (!c->buckets) {
                free(c);
                return -ENOMEM;
        }
        c->mask = nb - 1;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->work, NULL);
        workers = LB_MIN(workers, WORKERS_MAX);
        while (c->n_threads < workers) {
                int k = pthread_create(&c->threads[c->n_threads], NULL, worker, c);
                if (k != 0) {
                        lb_chunk_cache_free(c);
                        return -k;
                }
                c->n_threads++;
        }
        *ret = c;
        return 0;
}

LbChunkCache *lb_chunk_cache_free(LbChunkCache *c) {
        if (!c)
                return NULL;
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_broadcast(&c->work);
        pthread_mutex_unlock(&c->lock);
        for (unsigned i = 0; i < c->n_threads; i++)
                pthread_join(c->threads[i], NULL);
        /* Queued entries hold a reference and are in the table. */
        for (size_t i = 0; i < c->q_len; i++) {
                Entry *e = c->queue[(c->q_head + i) % QUEUE_MAX];
                if (e->started) {
                        /* Read by a reader (or failed and out of the table already). */
                        unref(c, e);
                        continue;
                }
                e->loading = false;
                e->error = -ECANCELED;
                table_remove(c, e);
                unref(c, e);
        }
        for (size_t b = 0; b <= c->mask; b++) {
                Entry *e = c->buckets[b];
                while (e) {
                        Entry *n = e->hnext;
                        entry_free(e);
                        e = n;
                }
        }
        free(c->buckets);
        free(c->hints);
        pthread_cond_destroy(&c->work);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

static void hand_out(LbChunkCache *c, Entry *e, LbCachedBlob *ret) {
        /* e->refs already counts the caller. */
        if (c->lru_head != e) {
                lru_unlink(c, e);
                lru_push_front(c, e);
        }
        *ret = (LbCachedBlob) { .data = e->data, .len = e->len, .entry_ = e };
}

/* Reads blob e (which the caller has marked started and holds a
 * reference to) and hands it out. Called and returns with the lock held. */
static int load(LbChunkCache *c, Entry *e, LbCachedBlob *ret) {
        pthread_mutex_unlock(&c->lock);
        LbBuf b = {};
        int k = lb_repo_read_blob(c->r, &e->id, &b);
        pthread_mutex_lock(&c->lock);
        finish(c, e, k, &b);
        lb_buf_free(&b);
        if (k < 0) {
                unref(c, e);
                return k;
        }
        hand_out(c, e, ret);
        return 0;
}

int lb_chunk_cache_get(LbChunkCache *c, const LbId *id, LbCachedBlob *ret) {
        pthread_mutex_lock(&c->lock);
        Entry *e = find(c, id);
        if (e && e->loading && !e->started) {
                /* Queued for read-ahead, and no worker has got to it: a
                 * reader that caught up with the workers reads it itself
                 * rather than sleep until one does (a wake-up for every
                 * small blob costs more than it saves). */
                e->refs++;
                e->started = true;
                c->stats.misses++;
                int k = load(c, e, ret);
                pthread_mutex_unlock(&c->lock);
                return k;
        }
        if (e) {
                e->refs++;
                if (e->loading)
                        c->stats.misses++;
                else
                        c->stats.hits++;
                e->waiters++;
                while (e->loading)
                        pthread_cond_wait(&e->done, &c->lock);
                e->waiters--;
                int k = e->error;
                if (k < 0) {
                        unref(c, e);
                        pthread_mutex_unlock(&c->lock);
                        return k;
                }
                hand_out(c, e, ret);
                pthread_mutex_unlock(&c->lock);
                return 0;
        }
        c->stats.misses++;
        e = insert_new(c, id);
        if (!e) {
                pthread_mutex_unlock(&c->lock);
                return -ENOMEM;
        }
        e->refs = 1;
        e->started = true;
        int k = load(c, e, ret);
        pthread_mutex_unlock(&c->lock);
        return k;
}

int lb_chunk_cache_peek(LbChunkCache *c, const LbId *id, LbCachedBlob *ret) {
        pthread_mutex_lock(&c->lock);
        Entry *e = find(c, id);
        if (!e || e->loading) {
                pthread_mutex_unlock(&c->lock);
                return -EAGAIN;
        }
        e->refs++;
        c->stats.hits++;
        hand_out(c, e, ret);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

void lb_chunk_cache_release(LbChunkCache *c, LbCachedBlob *b) {
        Entry *e = b->entry_;
        if (!e)
                return;
        pthread_mutex_lock(&c->lock);
        unref(c, e);
        if (c->bytes > c->max_bytes)
                evict(c);
        pthread_mutex_unlock(&c->lock);
        *b = (LbCachedBlob) {};
}

/* Adds id to the blobs to announce (best effort: dropped when there is
 * no memory, or QUEUE_MAX are waiting already). */
static void add_hint(LbChunkCache *c, const LbId *id) {
        if (!c->r->be->hint || c->n_hints >= QUEUE_MAX)
                return;
        if (c->n_hints == c->cap_hints) {
                size_t cap = c->cap_hints ? 2 * c->cap_hints : 256;
                LbId *v = realloc(c->hints, cap * sizeof *v);
                if (!v)
                        return;
                c->hints = v;
                c->cap_hints = cap;
        }
        c->hints[c->n_hints++] = *id;
}

void lb_chunk_cache_prefetch(LbChunkCache *c, const LbId *ids, size_t n) {
        if (c->n_threads == 0 || n == 0)
                return;
        size_t n_queued = 0;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < n && c->q_len < QUEUE_MAX; i++) {
                if (find(c, &ids[i]))
                        continue;
                Entry *e = insert_new(c, &ids[i]);
                if (!e)
                        break;
                e->refs = 1;      /* the queue's */
                c->queue[(c->q_head + c->q_len) % QUEUE_MAX] = e;
                c->q_len++;
                /* The workers take the queue in order and are behind its
                 * new tail: the backend starts reading these blobs' bytes
                 * before they get there (and reads nothing else). */
                add_hint(c, &ids[i]);
                n_queued++;
        }
        if (n_queued > 0)
                pthread_cond_broadcast(&c->work);
        pthread_mutex_unlock(&c->lock);
}

void lb_chunk_cache_stats(LbChunkCache *c, LbChunkCacheStats *ret) {
        pthread_mutex_lock(&c->lock);
        *ret = c->stats;
        ret->bytes = c->bytes;
        uint64_t n = 0;
        for (Entry *e = c->lru_head; e; e = e->next)
                n++;
        ret->blobs = n;
        pthread_mutex_unlock(&c->lock);
}
