/* SPDX-License-Identifier: MIT */
/*
 * Events (docs/design.md "Events"): encoding, decoding and storage of the
 * sealed result records of unattended commands.
 */
#include <stdio.h>

#include "store/event.h"
#include "store/tlv.h"

void lb_event_free(LbEvent *e) {
        if (!e)
                return;
        free(e->kind);
        free(e->hostname);
        free(e->message);
        free(e->program);
        lb_meta_free(e->meta, e->n_meta);
        free(e);
}

static void event_freep(LbEvent **e) {
        lb_event_free(*e);
}

const char *lb_event_meta(const LbEvent *e, const char *key) {
        return lb_meta_get(e->meta, e->n_meta, key);
}

int lb_event_meta_add(LbEvent *e, const char *key, const char *value) {
        if (!key || !*key || !value || e->n_meta >= LB_EVENT_META_MAX)
                return -EINVAL;
        LbMeta *m = reallocarray(e->meta, e->n_meta + 1, sizeof *m);
        if (!m)
                return -ENOMEM;
        e->meta = m;
        char *k = strdup(key), *v = strdup(value);
        if (!k || !v) {
                free(k);
                free(v);
                return -ENOMEM;
        }
        e->meta[e->n_meta++] = (LbMeta) { .key = k, .value = v };
        return 0;
}

bool lb_event_kind_ok(const char *kind) {
        size_t n = kind ? strlen(kind) : 0;
        if (n == 0 || n > LB_EVENT_KIND_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((kind[i] >= 'a' && kind[i] <= 'z') || kind[i] == '-'))
                        return false;
        return true;
}

const char *lb_event_status_name(LbEventStatus s) {
        switch (s) {
        case LB_EVENT_SUCCESS:
                return "success";
        case LB_EVENT_WARNING:
                return "warning";
        default:
                return "failure";
        }
}

static bool string_ok(const char *s) {
        return !s || strlen(s) <= LB_EVENT_STRING_MAX;
}

static int event_check(const LbEvent *e) {
        if (!lb_event_kind_ok(e->kind) || (unsigned) e->status > LB_EVENT_FAILURE)
                return -EINVAL;
        if (!string_ok(e->hostname) || !string_ok(e->message) || !string_ok(e->program))
                return -EINVAL;
        if (e->n_meta > LB_EVENT_META_MAX || (e->n_meta && !e->meta))
                return -EINVAL;
        for (size_t i = 0; i < e->n_meta; i++)
                if (!e->meta[i].key || !e->meta[i].value || !e->meta[i].key[0] || !string_ok(e->meta[i].key) ||
                    !string_ok(e->meta[i].value))
                        return -EINVAL;
        return 0;
}

int lb_event_encode(const LbEvent *e, LbBuf *out) {
        int r = event_check(e);
        if (r < 0)
                return r;
        lb_buf_clear(out);
        _cleanup_buf_ LbBuf scratch = {};
#define PUT(expr)                       \
        do {                            \
                r = (expr);             \
                if (r < 0)              \
                        return r;       \
        } while (0)
        PUT(lb_buf_append(out, LB_EVENT_MAGIC, 4));
        PUT(lb_tlv_put_u64(out, LB_EVENT_TAG_TIME, (uint64_t) e->time_ns));
        PUT(lb_tlv_put_str(out, LB_EVENT_TAG_KIND, e->kind));
        PUT(lb_tlv_put_u8(out, LB_EVENT_TAG_STATUS, (uint8_t) e->status));
        PUT(lb_tlv_put_u32(out, LB_EVENT_TAG_EXIT, e->exit_code));
        PUT(lb_tlv_put_u64(out, LB_EVENT_TAG_DURATION, e->duration_ns));
        if (e->hostname)
                PUT(lb_tlv_put_str(out, LB_EVENT_TAG_HOST, e->hostname));
        if (e->message)
                PUT(lb_tlv_put_str(out, LB_EVENT_TAG_MESSAGE, e->message));
        if (e->has_snapshot)
                PUT(lb_tlv_put(out, LB_EVENT_TAG_SNAPSHOT, e->snapshot.b, LB_ID_SIZE));
        if (e->program)
                PUT(lb_tlv_put_str(out, LB_EVENT_TAG_PROGRAM, e->program));
        for (size_t i = 0; i < e->n_meta; i++)
                PUT(lb_tlv_put_meta(out, &scratch, LB_EVENT_TAG_META, &e->meta[i]));
#undef PUT
        if (out->len > LB_EVENT_MAX_SIZE)
                return -E2BIG;
        return 0;
}

static bool tag_known(uint16_t tag) {
        switch (tag) {
        case LB_EVENT_TAG_TIME:
        case LB_EVENT_TAG_KIND:
        case LB_EVENT_TAG_STATUS:
        case LB_EVENT_TAG_EXIT:
        case LB_EVENT_TAG_DURATION:
        case LB_EVENT_TAG_HOST:
        case LB_EVENT_TAG_MESSAGE:
        case LB_EVENT_TAG_SNAPSHOT:
        case LB_EVENT_TAG_PROGRAM:
        case LB_EVENT_TAG_META:
                return true;
        default:
                return false;
        }
}

int lb_event_decode(const uint8_t *p, size_t n, LbEvent **ret) {
        if (n > LB_EVENT_MAX_SIZE || n < 4 || memcmp(p, LB_EVENT_MAGIC, 4) != 0)
                return -EBADMSG;
        _cleanup_(event_freep) LbEvent *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        LbReader rd = lb_reader(p + 4, n - 4);
        uint32_t seen = 0;
        for (;;) {
                uint16_t tag;
                const uint8_t *v;
                uint32_t len;
                int r = lb_tlv_next(&rd, &tag, &v, &len);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = lb_tlv_check(tag, tag_known(tag), tag == LB_EVENT_TAG_META, &seen);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                switch (tag) {
                case LB_EVENT_TAG_TIME: {
                        uint64_t t;
                        r = lb_tlv_u64(v, len, &t);
                        e->time_ns = (int64_t) t;
                        break;
                }
                case LB_EVENT_TAG_KIND:
                        r = lb_tlv_str(v, len, LB_EVENT_KIND_MAX, &e->kind);
                        if (r >= 0 && !lb_event_kind_ok(e->kind))
                                r = -EBADMSG;
                        break;
                case LB_EVENT_TAG_STATUS: {
                        uint8_t s;
                        r = lb_tlv_u8(v, len, &s);
                        if (r >= 0 && s > LB_EVENT_FAILURE)
                                r = -EBADMSG;
                        e->status = (LbEventStatus) s;
                        break;
                }
                case LB_EVENT_TAG_EXIT:
                        r = lb_tlv_u32(v, len, &e->exit_code);
                        break;
                case LB_EVENT_TAG_DURATION:
                        r = lb_tlv_u64(v, len, &e->duration_ns);
                        break;
                case LB_EVENT_TAG_HOST:
                        r = lb_tlv_str(v, len, LB_EVENT_STRING_MAX, &e->hostname);
                        break;
                case LB_EVENT_TAG_MESSAGE:
                        r = lb_tlv_str(v, len, LB_EVENT_STRING_MAX, &e->message);
                        break;
                case LB_EVENT_TAG_SNAPSHOT:
                        if (len != LB_ID_SIZE)
                                return -EBADMSG;
                        memcpy(e->snapshot.b, v, LB_ID_SIZE);
                        e->has_snapshot = true;
                        break;
                case LB_EVENT_TAG_PROGRAM:
                        r = lb_tlv_str(v, len, LB_EVENT_STRING_MAX, &e->program);
                        break;
                case LB_EVENT_TAG_META:
                        r = lb_tlv_meta_append(v, len, LB_EVENT_STRING_MAX, LB_EVENT_META_MAX, &e->meta, &e->n_meta);
                        break;
                default:
                        return -EBADMSG;
                }
                if (r < 0)
                        return r == -ENOMEM ? r : -EBADMSG;
        }
        if (!(seen & (1u << (LB_EVENT_TAG_TIME & 0x1f))) || !(seen & (1u << (LB_EVENT_TAG_KIND & 0x1f))) ||
            !(seen & (1u << (LB_EVENT_TAG_STATUS & 0x1f))))
                return -EBADMSG;
        *ret = LB_TAKE_PTR(e);
        return 0;
}

/* ---- storage ---- */

int lb_event_save(LbBackend *be, const LbKeys *k, const LbEvent *e, LbId *ret_id) {
        _cleanup_buf_ LbBuf plain = {}, sealed = {};
        int r = lb_event_encode(e, &plain);
        if (r < 0)
                return r;
        r = lb_seal_buf(k->meta_key, LB_EVENT_AD, plain.data, plain.len, &sealed);
        if (r < 0)
                return r;
        LbId id;
        lb_object_id(sealed.data, sealed.len, &id);
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&id, hex);
        r = be->put(be, LB_OBJ_EVENT, hex, sealed.data, sealed.len);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = id;
        return 0;
}

void lb_events_free(LbEvent **e, size_t n) {
        for (size_t i = 0; e && i < n; i++)
                lb_event_free(e[i]);
        free(e);
}

typedef struct ListCtx {
        LbBackend *be;
        const LbKeys *k;
        LbEvent **v;
        size_t n;
        size_t bad;
} ListCtx;

static int list_one(const char *name, uint64_t size, void *userdata) {
        ListCtx *c = userdata;
        LbId id;
        if (strlen(name) != 2 * LB_ID_SIZE || lb_id_from_hex(name, &id) < 0)
                return 0;   /* not ours (a temp file) */
        if (c->n + c->bad >= LB_EVENT_LIST_MAX)
                return 0;
        if (size > LB_EVENT_MAX_SIZE + 64) {
                c->bad++;
                return 0;
        }
        _cleanup_buf_ LbBuf sealed = {}, plain = {};
        int r = c->be->get(c->be, LB_OBJ_EVENT, name, 0, SIZE_MAX, &sealed);
        if (r == -ENOENT)
                return 0;  /* trimmed meanwhile */
        if (r < 0)
                return r;
        LbEvent *e = NULL;
        if (sealed.len > LB_EVENT_MAX_SIZE + 64 ||
            lb_unseal_buf(c->k->meta_key, LB_EVENT_AD, sealed.data, sealed.len, &plain) < 0 ||
            lb_event_decode(plain.data, plain.len, &e) < 0) {
                c->bad++;
                return 0;
        }
        e->id = id;
        LbEvent **v = reallocarray(c->v, c->n + 1, sizeof *v);
        if (!v) {
                lb_event_free(e);
                return -ENOMEM;
        }
        c->v = v;
        c->v[c->n++] = e;
        return 0;
}

static int event_cmp(const void *a, const void *b) {
        const LbEvent *x = *(LbEvent *const *) a, *y = *(LbEvent *const *) b;
        if (x->time_ns != y->time_ns)
                return x->time_ns < y->time_ns ? -1 : 1;
        return memcmp(x->id.b, y->id.b, LB_ID_SIZE);
}

int lb_event_list(LbBackend *be, const LbKeys *k, LbEvent ***ret, size_t *ret_n, size_t *ret_bad) {
        ListCtx c = { .be = be, .k = k };
        int r = be->list(be, LB_OBJ_EVENT, list_one, &c);
        if (r < 0) {
                lb_events_free(c.v, c.n);
                return r;
        }
        lb_qsort(c.v, c.n, sizeof *c.v, event_cmp);
        *ret = c.v;
        *ret_n = c.n;
        if (ret_bad)
                *ret_bad = c.bad;
        return 0;
}

int lb_event_trim(LbBackend *be, const LbKeys *k, unsigned keep, unsigned *ret_removed) {
        LbEvent **v = NULL;
        size_t n = 0;
        int r = lb_event_list(be, k, &v, &n, NULL);
        if (r < 0)
                return r;
        unsigned removed = 0;
        /* Newest first: count per kind, remove beyond keep. */
        for (size_t i = n; i-- > 0 && r == 0;) {
                unsigned newer = 0;
                for (size_t j = i + 1; j < n; j++)
                        if (strcmp(v[j]->kind, v[i]->kind) == 0)
                                newer++;
                if (newer < keep)
                        continue;
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&v[i]->id, hex);
                int k2 = be->remove(be, LB_OBJ_EVENT, hex);
                if (k2 < 0 && k2 != -ENOENT)
                        r = k2;
                else
                        removed++;
        }
        lb_events_free(v, n);
        if (r == 0 && ret_removed)
                *ret_removed = removed;
        return r;
}

const LbEvent *lb_event_newest(LbEvent *const *e, size_t n, const char *kind, bool success_only) {
        for (size_t i = n; i-- > 0;)
                if (strcmp(e[i]->kind, kind) == 0 && (!success_only || e[i]->status == LB_EVENT_SUCCESS))
                        return e[i];
        return NULL;
}
