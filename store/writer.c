/* SPDX-License-Identifier: MIT */
/*
 * The blob writer: deduplicate, encode, pack, and make it durable in the
 * order that keeps a crash harmless (docs/design.md "Write order"):
 *
 *   1. a full pack is written (atomic + fsync) under its content hash;
 *   2. every LB_WRITER_PACKS_PER_INDEX packs, and at flush, an index file
 *      describing them is written;
 *   3. only then are their blobs added to the local index, where other
 *      processes' backups find them;
 *   4. the caller writes the snapshot after lb_writer_flush().
 *
 * Blobs this writer has claimed but not yet indexed are kept in a pending
 * set, so two threads never store the same new blob twice.
 */
#include <pthread.h>

#include "store/idset.h"
#include "store/index.h"
#include "store/repo.h"

#define LB_WRITER_PACKS_PER_INDEX 16
/* An index file is also written once its packs hold this many blobs, well
 * below LB_INDEX_MAX_SIZE (56 bytes an entry). */
#define LB_WRITER_ENTRIES_PER_INDEX (1u << 20)

struct LbWriter {
        LbRepo *repo;
        pthread_mutex_t lock;
        LbPackWriter *open;         /* the pack being filled */
        LbIdSet pending;            /* ids claimed by this writer, not yet indexed */
        LbIndexPack *done;          /* packs written, not yet in an index file */
        size_t n_done;
        size_t done_entries;        /* blobs in those packs */
        LbWriterStats stats;
        int error;                  /* first error; sticky */
};

int lb_writer_new(LbRepo *r, LbWriter **ret) {
        if (!r->index)
                return -EINVAL; /* lb_repo_index_update() first */
        LbWriter *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->repo = r;
        pthread_mutex_init(&w->lock, NULL);
        *ret = w;
        return 0;
}

LbWriter *lb_writer_free(LbWriter *w) {
        if (!w)
                return NULL;
        lb_pack_writer_free(w->open);
        lb_idset_free(&w->pending);
        lb_index_packs_free(w->done, w->n_done);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
}

/* Writes the index file for the finished packs and indexes them locally.
 * Called with w->lock held. */
static int flush_index_locked(LbWriter *w) {
        if (w->n_done == 0)
                return 0;
        LbId file;
        int k = lb_repo_write_index_file(w->repo, w->done, w->n_done, &file);
        if (k < 0)
                return k;
        k = lb_index_add(w->repo->index, &file, w->done, w->n_done);
        if (k < 0)
                return k;
        lb_index_packs_free(w->done, w->n_done);
        w->done = NULL;
        w->n_done = 0;
        w->done_entries = 0;
        return 0;
}

/* Finishes and stores a pack (not under the lock: packs are large), then
 * records it for the next index file. */
static int store_pack(LbWriter *w, LbPackWriter *pw) {
        _cleanup_buf_ LbBuf bytes = {};
        LbIndexPack p = {};
        int k = lb_pack_writer_finish(pw, &bytes, &p.entries, &p.n);
        lb_pack_writer_free(pw);
        if (k < 0)
                return k;
        p.pack_size = bytes.len;
        k = lb_repo_put_object(w->repo, LB_OBJ_PACK, bytes.data, bytes.len, &p.pack_id);
        if (k < 0) {
                free(p.entries);
                return k;
        }
        pthread_mutex_lock(&w->lock);
        LbIndexPack *v = realloc(w->done, (w->n_done + 1) * sizeof *v);
        if (!v) {
                pthread_mutex_unlock(&w->lock);
                free(p.entries);
                return -ENOMEM;
        }
        w->done = v;
        w->done[w->n_done++] = p;
        w->done_entries += p.n;
        w->stats.packs++;
        k = 0;
        if (w->n_done >= LB_WRITER_PACKS_PER_INDEX || w->done_entries >= LB_WRITER_ENTRIES_PER_INDEX)
                k = flush_index_locked(w);
        pthread_mutex_unlock(&w->lock);
        return k;
}

static int set_error(LbWriter *w, int k) {
        pthread_mutex_lock(&w->lock);
        if (w->error == 0)
                w->error = k;
        pthread_mutex_unlock(&w->lock);
        return k;
}

/* Whether id is indexed and readable as indexed: a delta counts only
 * while its base is indexed (a delta no snapshot uses may have outlived
 * its base, docs/design.md "Deltas"). */
static int lookup_usable(LbWriter *w, const LbId *id) {
        LbBlobLoc l;
        int k = lb_repo_lookup(w->repo, id, &l);
        if (k == 0 && l.e.codec == LB_CODEC_DELTA)
                k = lb_repo_lookup(w->repo, &l.e.base, NULL);
        return k;
}

/* Encodes a new data chunk against the base like leads to, when there is
 * one that reads back; otherwise (like NULL, gone or damaged) whole. */
static int encode_like(LbWriter *w, const LbId *id, const void *p, size_t n, const LbId *like, LbBuf *sealed,
                       LbPackEntry *e) {
        LbRepo *r = w->repo;
        LbBlobLoc l;
        _cleanup_buf_ LbBuf base = {};
        int k = like ? lb_repo_lookup(r, like, &l) : -ENOENT;
        if (k == 0 && l.e.codec == LB_CODEC_DELTA)
                k = lb_repo_read_base(r, &l.e, &base);
        else if (k == 0 && l.e.type == LB_BLOB_DATA && l.e.raw_len <= LB_DELTA_BASE_MAX)
                k = lb_repo_read_blob_at(r, &l, &base);
        else if (k == 0)
                k = -EINVAL;
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return lb_blob_encode(&r->keys, LB_BLOB_DATA, id, p, n, r->cfg.zstd_level, sealed, e);
        const LbId *base_id = l.e.codec == LB_CODEC_DELTA ? &l.e.base : like;
        return lb_blob_encode_base(&r->keys, id, p, n, base_id, base.data, base.len, r->cfg.zstd_level, sealed, e);
}

static int add(LbWriter *w, uint8_t type, const LbId *id, const void *p, size_t n, const LbId *like) {
        if (n > LB_BLOB_RAW_MAX)
                return -E2BIG;
        int k = lookup_usable(w, id);
        bool known = k == 0;
        if (k < 0 && k != -ENOENT)
                return set_error(w, k);

        pthread_mutex_lock(&w->lock);
        if (w->error) {
                k = w->error;
                pthread_mutex_unlock(&w->lock);
                return k;
        }
        w->stats.blobs++;
        w->stats.bytes_raw += n;
        if (!known) {
                k = lb_idset_add(&w->pending, id);
                if (k < 0) {
                        pthread_mutex_unlock(&w->lock);
                        return set_error(w, k);
                }
                known = k == 0;
        }
        pthread_mutex_unlock(&w->lock);
        if (known)
                return 0;

        /* New: encode outside the lock, so workers compress in parallel. */
        _cleanup_buf_ LbBuf sealed = {};
        LbPackEntry e;
        if (type == LB_BLOB_DATA && like)
                k = encode_like(w, id, p, n, like, &sealed, &e);
        else
                k = lb_blob_encode(&w->repo->keys, type, id, p, n, w->repo->cfg.zstd_level, &sealed, &e);
        if (k < 0)
                return set_error(w, k);

        LbPackWriter *full = NULL;
        pthread_mutex_lock(&w->lock);
        if (!w->open)
                k = lb_pack_writer_new(&w->repo->keys, &w->open);
        if (k == 0)
                k = lb_pack_writer_add(w->open, &e, sealed.data, sealed.len);
        if (k == 0) {
                w->stats.blobs_new++;
                w->stats.bytes_new += n;
                if (type == LB_BLOB_DATA) {
                        w->stats.data_new++;
                        w->stats.data_bytes_new += n;
                }
                if (e.codec == LB_CODEC_DELTA)
                        w->stats.deltas++;
                w->stats.bytes_stored += sealed.len;
                if (lb_pack_writer_size(w->open) >= w->repo->cfg.pack_target ||
                    lb_pack_writer_count(w->open) >= LB_PACK_MAX_ENTRIES)
                        full = LB_TAKE_PTR(w->open);
        }
        pthread_mutex_unlock(&w->lock);
        if (k < 0)
                return set_error(w, k);
        if (full) {
                k = store_pack(w, full);
                if (k < 0)
                        return set_error(w, k);
        }
        return 0;
}

int lb_writer_add_with_id(LbWriter *w, uint8_t type, const LbId *id, const void *p, size_t n) {
        return add(w, type, id, p, n, NULL);
}

int lb_writer_add_like(LbWriter *w, const LbId *id, const void *p, size_t n, const LbId *like) {
        return add(w, LB_BLOB_DATA, id, p, n, like);
}

int lb_writer_add(LbWriter *w, uint8_t type, const void *p, size_t n, LbId *ret_id) {
        LbId id;
        lb_chunk_id(&w->repo->keys, p, n, &id);
        int k = lb_writer_add_with_id(w, type, &id, p, n);
        if (k < 0)
                return k;
        *ret_id = id;
        return 0;
}

int lb_writer_flush(LbWriter *w) {
        pthread_mutex_lock(&w->lock);
        int k = w->error;
        LbPackWriter *last = k == 0 && w->open && lb_pack_writer_count(w->open) > 0 ? LB_TAKE_PTR(w->open) : NULL;
        pthread_mutex_unlock(&w->lock);
        if (k < 0)
                return k;
        if (last) {
                k = store_pack(w, last);
                if (k < 0)
                        return set_error(w, k);
        }
        pthread_mutex_lock(&w->lock);
        k = flush_index_locked(w);
        pthread_mutex_unlock(&w->lock);
        return k < 0 ? set_error(w, k) : 0;
}

void lb_writer_stats(LbWriter *w, LbWriterStats *ret) {
        pthread_mutex_lock(&w->lock);
        *ret = w->stats;
        pthread_mutex_unlock(&w->lock);
}

int lb_writer_set_content(LbWriter *w, LbNode *node, LbContentRef *refs, size_t n) {
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += refs[i].size;
        if (n <= LB_INLINE_CHUNKS_MAX) {
                node->size = total;
                node->indirect = false;
                node->content = refs;
                node->n_content = n;
                return 0;
        }
        /* Long files: chunk-list blobs, cut where lb_chunklist_is_boundary()
         * says, so an edit changes only the lists around it. */
        LbContentRef *lists = NULL;
        size_t n_lists = 0, start = 0;
        _cleanup_buf_ LbBuf enc = {};
        int k = 0;
        for (size_t i = 0; i < n && k == 0; i++) {
                size_t count = i - start + 1;
                if (i + 1 < n && !lb_chunklist_is_boundary(&refs[i].id, count))
                        continue;
                lb_buf_clear(&enc);
                k = lb_chunklist_encode(refs + start, count, &enc);
                if (k < 0)
                        break;
                LbContentRef ref = {};
                for (size_t j = start; j <= i; j++)
                        ref.size += refs[j].size;
                k = lb_writer_add(w, LB_BLOB_CHUNKLIST, enc.data, enc.len, &ref.id);
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
        free(refs);
        node->size = total;
        node->indirect = true;
        node->content = lists;
        node->n_content = n_lists;
        return 0;
}
