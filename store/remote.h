/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Helpers shared by the HTTP backends (S3, WebDAV): ranged GETs with the
 * backend's length rules, and a small in-memory cache of whole packs.
 *
 * Restores and checks read a pack blob by blob; over HTTP one request per
 * blob would make them slow. Packs are named by their content and never
 * change, so after LB_REMOTE_CACHE_AFTER range reads of the same pack the
 * cache downloads the whole pack once and serves later reads from memory
 * (at most LB_REMOTE_CACHE_SLOTS packs of at most LB_REMOTE_CACHE_PACK_MAX
 * bytes). Reading a pack's tail (footer and TOC, two reads) stays ranged.
 */

#include <pthread.h>

#include "store/backend.h"
#include "store/http.h"

#define LB_REMOTE_OBJECT_MAX ((size_t) 1 << 31)
#define LB_REMOTE_CACHE_SLOTS 8
#define LB_REMOTE_CACHE_PACK_MAX (64u << 20)
#define LB_REMOTE_CACHE_AFTER 3
#define LB_REMOTE_CACHE_SEEN 256

typedef struct LbRemoteCacheSlot {
        char name[129];
        LbBuf data;
        bool loading;
        uint64_t used;
} LbRemoteCacheSlot;

typedef struct LbRemoteCache {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        LbRemoteCacheSlot slots[LB_REMOTE_CACHE_SLOTS];
        struct {
                char name[129];
                unsigned reads;
        } seen[LB_REMOTE_CACHE_SEEN];
        uint64_t clock;
} LbRemoteCache;

void lb_remote_cache_init(LbRemoteCache *c);
void lb_remote_cache_done(LbRemoteCache *c);
/* Drops a removed object from the cache. */
void lb_remote_cache_forget(LbRemoteCache *c, LbObjType t, const char *name);

typedef int (*LbRemoteFetchFn)(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out);
/* The backend get() of store/backend.h, through the pack cache. */
int lb_remote_cache_get(LbRemoteCache *c, LbBackend *b, LbRemoteFetchFn fetch, LbObjType t, const char *name,
                        uint64_t off, size_t len, LbBuf *out) _warn_unused_;

/* GET url (bytes off..off+len, len SIZE_MAX: to the end) into out, with the
 * rules of backend get(): -EBADMSG when the object is shorter. */
int lb_remote_fetch(LbHttp *h, const char *url, const char *const *headers, uint64_t off, size_t len,
                    LbBuf *out) _warn_unused_;
