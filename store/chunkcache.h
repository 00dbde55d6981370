/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A bounded, thread-safe cache of verified blob plaintexts (data chunks
 * and chunk lists), with background read-ahead. Used by random-access
 * readers (store/fileread.h), e.g. a FUSE mount with several readers at
 * once.
 *
 * Every byte in the cache came out of lb_repo_read_blob, which verified
 * it against its id: the cache never holds, and so never hands out,
 * unverified bytes. Failed reads are not cached: the next reader tries
 * again (and gets the same error from a damaged pack).
 *
 * When several threads ask for a blob that is being read, one reads it
 * and the others wait for that read (a read-ahead worker's too), so a
 * blob is decrypted and decompressed once. A blob queued for read-ahead
 * that no worker has started yet is read by the thread that asks for it.
 */

#include "store/repo.h"

typedef struct LbChunkCache LbChunkCache;

/* A reference to a cached blob: data is valid until lb_chunk_cache_release. */
typedef struct LbCachedBlob {
        const uint8_t *data;
        size_t len;
        void *entry_;            /* private */
} LbCachedBlob;

/* max_bytes bounds the plaintext held by blobs nobody uses (blobs in use
 * are kept until released); workers read ahead (0: none, reads only
 * happen in the callers' threads). r must outlive the cache. */
int lb_chunk_cache_new(LbRepo *r, uint64_t max_bytes, unsigned workers, LbChunkCache **ret) _warn_unused_;
LbChunkCache *lb_chunk_cache_free(LbChunkCache *c);   /* waits for the workers; NULL ok */

/* Returns the verified plaintext of blob id, reading it through the
 * repository unless cached. Errors as lb_repo_read_blob (-ENOENT not
 * indexed, -EBADMSG damaged). Thread-safe. */
int lb_chunk_cache_get(LbChunkCache *c, const LbId *id, LbCachedBlob *ret) _warn_unused_;
/* Same, but only if the blob is cached already: -EAGAIN otherwise
 * (without reading or waiting). */
int lb_chunk_cache_peek(LbChunkCache *c, const LbId *id, LbCachedBlob *ret) _warn_unused_;
void lb_chunk_cache_release(LbChunkCache *c, LbCachedBlob *b);

/* Queues blobs for the read-ahead workers (those not cached or being read
 * already). Never blocks: when the queue is full the rest are dropped. A
 * worker also announces the queued blobs to the backend first
 * (lb_repo_hint_blobs), so a local disk reads them in parallel. */
void lb_chunk_cache_prefetch(LbChunkCache *c, const LbId *ids, size_t n);

typedef struct LbChunkCacheStats {
        uint64_t hits, misses, reads, prefetched, evictions, bytes, blobs;
} LbChunkCacheStats;
void lb_chunk_cache_stats(LbChunkCache *c, LbChunkCacheStats *ret);
