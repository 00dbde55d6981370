/* SPDX-License-Identifier: MIT */
/* Ranged GETs and the whole-pack cache of the HTTP backends (store/remote.h). */
#include <stdio.h>

#include "store/remote.h"

int lb_remote_fetch(LbHttp *h, const char *url, const char *const *headers, uint64_t off, size_t len, LbBuf *out) {
        bool whole = off == 0 && len == SIZE_MAX;
        LbHttpRequest q = {
                .method = "GET",
                .url = url,
                .headers = headers,
                .range = !whole,
                .range_off = off,
                .range_len = len == SIZE_MAX ? UINT64_MAX : len,
                .max_response = len == SIZE_MAX ? LB_REMOTE_OBJECT_MAX : len,
        };
        if (len == 0) {
                /* Nothing to read; a zero-length range is not valid HTTP. */
                q = (LbHttpRequest) { .method = "HEAD", .url = url, .headers = headers };
        }
        LbHttpResponse resp = {};
        int k = lb_http_do(h, &q, &resp);
        if (k == 0 && len == 0 && resp.content_length != UINT64_MAX && off > resp.content_length)
                k = -EBADMSG;
        if (k == -ERANGE)
                k = -EBADMSG; /* range beyond the end */
        if (k == 0 && len != SIZE_MAX && len != 0 && resp.body.len != len)
                k = -EBADMSG;
        if (k < 0) {
                lb_buf_free(&resp.body);
                return k;
        }
        lb_buf_free(out);
        *out = resp.body;
        return 0;
}

void lb_remote_cache_init(LbRemoteCache *c) {
        *c = (LbRemoteCache) {};
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
}

void lb_remote_cache_done(LbRemoteCache *c) {
        for (size_t i = 0; i < LB_REMOTE_CACHE_SLOTS; i++)
                lb_buf_free(&c->slots[i].data);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
}

static size_t seen_slot(const char *name) {
        /* FNV-1a over the name; collisions only cost a few extra range reads. */
        uint64_t h = 1469598103934665603ull;
        for (const char *p = name; *p; p++)
                h = (h ^ (uint8_t) *p) * 1099511628211ull;
        return (size_t) (h % LB_REMOTE_CACHE_SEEN);
}

void lb_remote_cache_forget(LbRemoteCache *c, LbObjType t, const char *name) {
        if (t != LB_OBJ_PACK)
                return;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < LB_REMOTE_CACHE_SLOTS; i++)
                if (!c->slots[i].loading && strcmp(c->slots[i].name, name) == 0) {
                        lb_buf_free(&c->slots[i].data);
                        c->slots[i].name[0] = 0;
                }
        size_t s = seen_slot(name);
        if (strcmp(c->seen[s].name, name) == 0)
                c->seen[s].reads = 0;
        pthread_mutex_unlock(&c->lock);
}

/* Copies a range out of a cached pack; called with the lock held. */
static int copy_range(const LbBuf *data, uint64_t off, size_t len, LbBuf *out) {
        if (off > data->len || (len != SIZE_MAX && len > data->len - off))
                return -EBADMSG;
        if (len == SIZE_MAX)
                len = (size_t) (data->len - off);
        uint8_t *p;
        lb_buf_clear(out);
        int k = lb_buf_grow(out, len, &p);
        if (k < 0)
                return k;
        if (len)
                memcpy(p, data->data + off, len);
        return 0;
}

int lb_remote_cache_get(LbRemoteCache *c, LbBackend *b, LbRemoteFetchFn fetch, LbObjType t, const char *name,
                        uint64_t off, size_t len, LbBuf *out) {
        if (t != LB_OBJ_PACK || (off == 0 && len == SIZE_MAX) || strlen(name) >= sizeof c->slots[0].name)
                return fetch(b, t, name, off, len, out);
        pthread_mutex_lock(&c->lock);
        for (;;) {
                LbRemoteCacheSlot *hit = NULL;
                for (size_t i = 0; i < LB_REMOTE_CACHE_SLOTS; i++)
                        if (c->slots[i].name[0] && strcmp(c->slots[i].name, name) == 0)
                                hit = &c->slots[i];
                if (hit && hit->loading) {
                        pthread_cond_wait(&c->cond, &c->lock);
                        continue;
                }
                if (hit) {
                        hit->used = ++c->clock;
                        int k = copy_range(&hit->data, off, len, out);
                        pthread_mutex_unlock(&c->lock);
                        return k;
                }
                break;
        }
        size_t s = seen_slot(name);
        if (strcmp(c->seen[s].name, name) != 0) {
                snprintf(c->seen[s].name, sizeof c->seen[s].name, "%s", name);
                c->seen[s].reads = 0;
        }
        bool load = ++c->seen[s].reads >= LB_REMOTE_CACHE_AFTER;
        LbRemoteCacheSlot *victim = NULL;
        if (load)
                for (size_t i = 0; i < LB_REMOTE_CACHE_SLOTS; i++) {
                        LbRemoteCacheSlot *v = &c->slots[i];
                        if (v->loading)
                                continue;
                        if (!victim || !v->name[0] || (victim->name[0] && v->used < victim->used))
                                victim = v;
                        if (!v->name[0])
                                break;
                }
        if (!victim) {
                pthread_mutex_unlock(&c->lock);
                return fetch(b, t, name, off, len, out);
        }
        lb_buf_free(&victim->data);
        snprintf(victim->name, sizeof victim->name, "%s", name);
        victim->loading = true;
        victim->used = ++c->clock;
        pthread_mutex_unlock(&c->lock);

        LbBuf whole = {};
        int k = fetch(b, t, name, 0, SIZE_MAX, &whole);
        if (k == 0 && whole.len > LB_REMOTE_CACHE_PACK_MAX)
                k = -EFBIG;

        pthread_mutex_lock(&c->lock);
        victim->loading = false;
        if (k == 0) {
                victim->data = whole;
                k = copy_range(&victim->data, off, len, out);
        } else {
                lb_buf_free(&whole);
                victim->name[0] = 0;
        }
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        if (k == -EFBIG || k == -ENOMEM)
                return fetch(b, t, name, off, len, out); /* too big to cache: read the range */
        return k;
}
