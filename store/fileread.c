/* SPDX-License-Identifier: MIT */
#include <pthread.h>

#include "store/fileread.h"

/* Decoded chunk lists a reader keeps (one file is read at one or two
 * places at a time; more just decode again from the cached blob). */
#define LIST_SLOTS 4
/* Chunk ids queued for read-ahead per call at most. */
#define PREFETCH_BATCH 512

typedef struct List {
        unsigned refs;
        size_t index;            /* position in the node's LISTS */
        LbContentRef *refs_v;
        uint64_t *offs;          /* n + 1 prefix sums, offs[0] = 0 */
        size_t n;
} List;

struct LbFileReader {
        LbChunkCache *cache;
        LbNode node;
        uint64_t *top;           /* n_content + 1 prefix sums of the content refs */
        uint64_t readahead;
        pthread_mutex_t lock;    /* guards what follows */
        List *slots[LIST_SLOTS];
        unsigned next_slot;
        uint64_t max_end;        /* the furthest end read so far */
        uint64_t ra_to;          /* read-ahead queued up to here */
};

static void list_unref(List *l) {
        if (!l || --l->refs > 0)
                return;
        free(l->refs_v);
        free(l->offs);
        free(l);
}

int lb_file_reader_new(LbChunkCache *cache, const LbNode *file, LbFileReader **ret) {
        if (file->type != LB_NODE_FILE)
                return -EINVAL;
        LbFileReader *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->cache = cache;
        int k = lb_node_copy(file, &f->node);
        if (k < 0) {
                free(f);
                return k;
        }
        pthread_mutex_init(&f->lock, NULL);
        f->top = calloc(f->node.n_content + 1, sizeof *f->top);
        if (!f->top) {
                lb_file_reader_free(f);
                return -ENOMEM;
        }
        uint64_t sum = 0;
        for (size_t i = 0; i < f->node.n_content; i++) {
                uint64_t s = f->node.content[i].size;
                if (s == 0 || s > f->node.size - sum || (!f->node.indirect && s > LB_CHUNK_MAX_LIMIT)) {
                        lb_file_reader_free(f);
                        return -EBADMSG;
                }
                sum += s;
                f->top[i + 1] = sum;
        }
        if (sum != f->node.size) {
                lb_file_reader_free(f);
                return -EBADMSG;
        }
        *ret = f;
        return 0;
}

LbFileReader *lb_file_reader_free(LbFileReader *f) {
        if (!f)
                return NULL;
        for (size_t i = 0; i < LIST_SLOTS; i++)
                list_unref(f->slots[i]);
        lb_node_clear(&f->node);
        free(f->top);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return NULL;
}

const LbNode *lb_file_reader_node(const LbFileReader *f) {
        return &f->node;
}

void lb_file_reader_set_readahead(LbFileReader *f, uint64_t bytes) {
        f->readahead = bytes;
}

/* The index i with offs[i] <= pos < offs[i + 1]; offs has n + 1 entries and pos < offs[n]. */
static size_t find_index(const uint64_t *offs, size_t n, uint64_t pos) {
        size_t lo = 0, hi = n;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (offs[mid] <= pos)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

static void set_failure(LbContentFailure *failure, const LbId *id, bool is_list, uint64_t offset) {
        if (failure)
                *failure = (LbContentFailure) { .has_id = true, .id = *id, .is_list = is_list, .offset = offset };
}

static int list_decode(const LbContentRef *ref, size_t index, const LbCachedBlob *b, List **ret) {
        List *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->refs = 1;
        l->index = index;
        int k = lb_chunklist_decode(b->data, b->len, &l->refs_v, &l->n);
        if (k < 0) {
                free(l);
                return k;
        }
        l->offs = calloc(l->n + 1, sizeof *l->offs);
        if (!l->offs) {
                list_unref(l);
                return -ENOMEM;
        }
        /* The list must cover exactly the bytes its reference says. */
        uint64_t sum = 0;
        for (size_t i = 0; i < l->n; i++) {
                if (l->refs_v[i].size > ref->size - sum) {
                        list_unref(l);
                        return -EBADMSG;
                }
                sum += l->refs_v[i].size;
                l->offs[i + 1] = sum;
        }
        if (sum != ref->size) {
                list_unref(l);
                return -EBADMSG;
        }
        *ret = l;
        return 0;
}

/* The decoded chunk list at index; with wait false only if it is at hand
 * (-EAGAIN otherwise). The caller unrefs it. */
static int get_list(LbFileReader *f, size_t index, bool wait, List **ret, LbContentFailure *failure) {
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < LIST_SLOTS; i++) {
                List *l = f->slots[i];
                if (l && l->index == index) {
                        l->refs++;
                        pthread_mutex_unlock(&f->lock);
                        *ret = l;
                        return 0;
                }
        }
        pthread_mutex_unlock(&f->lock);

        const LbContentRef *ref = &f->node.content[index];
        LbCachedBlob b;
        int k = wait ? lb_chunk_cache_get(f->cache, &ref->id, &b) : lb_chunk_cache_peek(f->cache, &ref->id, &b);
        if (k == -EAGAIN)
                return k;
        if (k < 0) {
                set_failure(failure, &ref->id, true, f->top[index]);
                return k;
        }
        List *l = NULL;
        k = list_decode(ref, index, &b, &l);
        lb_chunk_cache_release(f->cache, &b);
        if (k < 0) {
                if (k != -ENOMEM)
                        set_failure(failure, &ref->id, true, f->top[index]);
                return k;
        }
        pthread_mutex_lock(&f->lock);
        unsigned s = f->next_slot++ % LIST_SLOTS;
        list_unref(f->slots[s]);
        f->slots[s] = l;
        l->refs++;
        pthread_mutex_unlock(&f->lock);
        *ret = l;
        return 0;
}

/* Copies the part of chunk ref (starting at file offset start) that lies
 * in [*pos, end) to out + (*pos - base), and advances *pos. */
static int copy_chunk(LbFileReader *f, const LbContentRef *ref, uint64_t start, uint64_t *pos, uint64_t end,
                      uint8_t *out, uint64_t base, LbContentFailure *failure) {
        LbCachedBlob b;
        int k = lb_chunk_cache_get(f->cache, &ref->id, &b);
        if (k < 0) {
                set_failure(failure, &ref->id, false, start);
                return k;
        }
        if (b.len != ref->size) {
                lb_chunk_cache_release(f->cache, &b);
                set_failure(failure, &ref->id, false, start);
                return -EBADMSG;
        }
        uint64_t stop = LB_MIN(start + ref->size, end);
        memcpy(out + (*pos - base), b.data + (*pos - start), (size_t) (stop - *pos));
        lb_chunk_cache_release(f->cache, &b);
        *pos = stop;
        return 0;
}

/* Queues the chunks of [from, to) for the cache's workers; returns how far
 * it got (it stops at a chunk list that is not decoded or cached yet,
 * after queueing that list's blob). */
static uint64_t prefetch_range(LbFileReader *f, uint64_t from, uint64_t to) {
        LbId ids[PREFETCH_BATCH];
        size_t n = 0;
        uint64_t pos = from;
        to = LB_MIN(to, f->node.size);
        while (pos < to && n < PREFETCH_BATCH) {
                size_t i = find_index(f->top, f->node.n_content, pos);
                if (!f->node.indirect) {
                        ids[n++] = f->node.content[i].id;
                        pos = f->top[i + 1];
                        continue;
                }
                List *l = NULL;
                int k = get_list(f, i, false, &l, NULL);
                if (k < 0) {
                        ids[n++] = f->node.content[i].id;
                        break;
                }
                for (size_t j = find_index(l->offs, l->n, pos - f->top[i]); j < l->n && pos < to && n < PREFETCH_BATCH;
                     j++) {
                        ids[n++] = l->refs_v[j].id;
                        pos = f->top[i] + l->offs[j + 1];
                }
                pthread_mutex_lock(&f->lock);
                list_unref(l);
                pthread_mutex_unlock(&f->lock);
        }
        lb_chunk_cache_prefetch(f->cache, ids, n);
        return pos;
}

static void readahead(LbFileReader *f, uint64_t off, uint64_t end) {
        uint64_t w = f->readahead;
        if (w == 0)
                return;
        uint64_t from = 0, to = 0;
        pthread_mutex_lock(&f->lock);
        /* Forward-moving reads (with some reordering by the kernel's own
         * read-ahead threads); a jump elsewhere starts no read-ahead. */
        bool forward = off <= f->max_end + w && off + w >= f->max_end;
        if (end > f->max_end)
                f->max_end = end;
        if (forward && end + w / 2 > f->ra_to) {
                from = LB_MAX(f->ra_to, end);
                to = end + w;
        }
        pthread_mutex_unlock(&f->lock);
        if (from >= to || from >= f->node.size)
                return;
        uint64_t got = prefetch_range(f, from, to);
        pthread_mutex_lock(&f->lock);
        if (got > f->ra_to)
                f->ra_to = got;
        pthread_mutex_unlock(&f->lock);
}

int lb_file_reader_read(LbFileReader *f, uint64_t off, void *buf, size_t len, size_t *ret_n,
                        LbContentFailure *failure) {
        uint64_t size = f->node.size;
        if (off >= size || len == 0) {
                *ret_n = 0;
                return 0;
        }
        uint64_t end = off + LB_MIN((uint64_t) len, size - off);
        uint64_t pos = off;
        while (pos < end) {
                size_t i = find_index(f->top, f->node.n_content, pos);
                int k;
                if (!f->node.indirect) {
                        k = copy_chunk(f, &f->node.content[i], f->top[i], &pos, end, buf, off, failure);
                        if (k < 0)
                                return k;
                        continue;
                }
                List *l = NULL;
                k = get_list(f, i, true, &l, failure);
                if (k < 0)
                        return k;
                for (size_t j = find_index(l->offs, l->n, pos - f->top[i]); k == 0 && j < l->n && pos < end; j++)
                        k = copy_chunk(f, &l->refs_v[j], f->top[i] + l->offs[j], &pos, end, buf, off, failure);
                pthread_mutex_lock(&f->lock);
                list_unref(l);
                pthread_mutex_unlock(&f->lock);
                if (k < 0)
                        return k;
        }
        readahead(f, off, end);
        *ret_n = (size_t) (end - off);
        return 0;
}
