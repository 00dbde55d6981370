/* SPDX-License-Identifier: MIT */
/*
 * The S3 backend (docs/design.md "Remote repositories"). Objects are keys
 * PREFIX/<layout path> in one bucket; requests are signed by libcurl's
 * SigV4 with the payload's SHA-256 in x-amz-content-sha256, which S3
 * checks against the body (integrity on upload). A PUT is atomic on S3:
 * an object is absent or whole.
 */
#include <sodium.h>
#include <stdio.h>

#include "store/backend.h"
#include "store/http.h"
#include "store/location.h"
#include "store/remote.h"
#include "store/xmllist.h"

typedef struct S3Backend {
        LbBackend base;    /* must be first */
        LbRemoteCache cache;
        LbHttp *http;
        char *bucket_url;  /* "http://host:port/bucket" or "http://bucket.host:port" */
        char *prefix;      /* "" or "a/b/" */
        char *token_hdr;   /* "x-amz-security-token: ..." or NULL */
} S3Backend;

static char *obj_url(S3Backend *s, LbObjType t, const char *name) {
        if (t != LB_OBJ_CONFIG && !lb_obj_name_ok(name))
                return NULL;
        _cleanup_free_ char *rel = lb_obj_path(t, name);
        return rel ? lb_strdup_printf("%s/%s%s", s->bucket_url, s->prefix, rel) : NULL;
}

/* Headers of a request: the token (if any), extra ones, NULL-terminated. */
static void headers(S3Backend *s, const char *extra[], const char **out) {
        size_t n = 0;
        if (s->token_hdr)
                out[n++] = s->token_hdr;
        for (; extra && *extra; extra++)
                out[n++] = *extra;
        out[n] = NULL;
}

/* A 404 on a bucket-level request: is the bucket itself missing? */
static int map_missing(const LbHttpResponse *resp, int k) {
        char code[64] = "";
        if (k == -ENOENT && lb_s3_parse_error(resp->body.data, resp->body.len, code, sizeof code) == 0 &&
            strcmp(code, "NoSuchBucket") == 0)
                return -ENXIO;
        return k;
}

static int s3_put(LbBackend *b, LbObjType t, const char *name, const void *p, size_t n) {
        S3Backend *s = (S3Backend *) b;
        _cleanup_free_ char *url = obj_url(s, t, name);
        if (!url)
                return t != LB_OBJ_CONFIG && !lb_obj_name_ok(name) ? -EINVAL : -ENOMEM;
        uint8_t sum[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(sum, p, n);
        char sha[128] = "x-amz-content-sha256: ";
        lb_hex_encode(sum, sizeof sum, sha + strlen(sha));
        const char *extra[] = { sha, "Content-Type: application/octet-stream", NULL };
        const char *hdrs[4];
        headers(s, extra, hdrs);
        LbHttpRequest q = { .method = "PUT", .url = url, .headers = hdrs, .body = p, .body_len = n, .has_body = true };
        LbHttpResponse resp = {};
        int k = lb_http_do(s->http, &q, &resp);
        k = map_missing(&resp, k);
        lb_buf_free(&resp.body);
        return k;
}

static int s3_fetch(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out) {
        S3Backend *s = (S3Backend *) b;
        _cleanup_free_ char *url = obj_url(s, t, name);
        if (!url)
                return t != LB_OBJ_CONFIG && !lb_obj_name_ok(name) ? -EINVAL : -ENOMEM;
        static const char *const unsigned_payload[] = { "x-amz-content-sha256: UNSIGNED-PAYLOAD", NULL };
        const char *hdrs[3];
        headers(s, (const char **) unsigned_payload, hdrs);
        return lb_remote_fetch(s->http, url, hdrs, off, len, out);
}

static int s3_get(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out) {
        S3Backend *s = (S3Backend *) b;
        return lb_remote_cache_get(&s->cache, b, s3_fetch, t, name, off, len, out);
}

static int s3_stat(LbBackend *b, LbObjType t, const char *name, uint64_t *ret_size) {
        S3Backend *s = (S3Backend *) b;
        _cleanup_free_ char *url = obj_url(s, t, name);
        if (!url)
                return t != LB_OBJ_CONFIG && !lb_obj_name_ok(name) ? -EINVAL : -ENOMEM;
        static const char *const unsigned_payload[] = { "x-amz-content-sha256: UNSIGNED-PAYLOAD", NULL };
        const char *hdrs[3];
        headers(s, (const char **) unsigned_payload, hdrs);
        LbHttpRequest q = { .method = "HEAD", .url = url, .headers = hdrs };
        LbHttpResponse resp = {};
        int k = lb_http_do(s->http, &q, &resp);
        lb_buf_free(&resp.body);
        if (k < 0)
                return k;
        if (resp.content_length == UINT64_MAX)
                return -EPROTO;
        *ret_size = resp.content_length;
        return 0;
}

/* Calls fn(key, size) for every key under key_prefix, page by page; stops
 * after max_keys when that is non-zero. */
/* Keys per ListObjectsV2 page: 1000 (the S3 maximum); LONGBOX_S3_LIST_PAGE
 * makes pages smaller, for tests of pagination. */
static unsigned page_size(void) {
        const char *e = getenv("LONGBOX_S3_LIST_PAGE");
        long v = e ? strtol(e, NULL, 10) : 0;
        return v >= 1 && v <= 1000 ? (unsigned) v : 1000;
}

static int list_keys(S3Backend *s, const char *key_prefix, unsigned max_keys,
                     int (*fn)(S3Backend *s, const char *key, uint64_t size, void *ud), void *ud) {
        _cleanup_free_ char *eprefix = lb_http_escape(key_prefix);
        _cleanup_free_ char *token = NULL;
        if (!eprefix)
                return -ENOMEM;
        static const char *const unsigned_payload[] = { "x-amz-content-sha256: UNSIGNED-PAYLOAD", NULL };
        const char *hdrs[3];
        headers(s, (const char **) unsigned_payload, hdrs);
        for (;;) {
                /* Query parameters in sorted order, values escaped: the
                 * canonical form SigV4 signs. */
                _cleanup_free_ char *etoken = token ? lb_http_escape(token) : NULL;
                if (token && !etoken)
                        return -ENOMEM;
                _cleanup_free_ char *url = lb_strdup_printf(
                        "%s/?%s%s%slist-type=2&max-keys=%u&prefix=%s", s->bucket_url, etoken ? "continuation-token=" : "",
                        etoken ? etoken : "", etoken ? "&" : "", max_keys ? max_keys : page_size(), eprefix);
                if (!url)
                        return -ENOMEM;
                LbHttpRequest q = { .method = "GET", .url = url, .headers = hdrs, .max_response = LB_XML_MAX };
                LbHttpResponse resp = {};
                int k = lb_http_do(s->http, &q, &resp);
                k = map_missing(&resp, k);
                if (k == -ENOENT)
                        k = -ENXIO; /* listing a bucket: a 404 means no bucket */
                LbRemoteList page = {};
                if (k == 0)
                        k = lb_s3_parse_list(resp.body.data, resp.body.len, &page);
                lb_buf_free(&resp.body);
                for (size_t i = 0; k == 0 && i < page.n; i++)
                        k = fn(s, page.v[i].name, page.v[i].size, ud);
                bool more = k == 0 && page.truncated && !max_keys;
                free(token);
                token = LB_TAKE_PTR(page.next_token);
                lb_remote_list_clear(&page);
                if (k < 0 || !more)
                        return k;
        }
}

struct list_ctx {
        LbObjType t;
        LbListFn fn;
        void *userdata;
        size_t skip;       /* strlen(prefix) */
};

static int list_one(S3Backend *s, const char *key, uint64_t size, void *ud) {
        struct list_ctx *c = ud;
        const char *name;
        if (strlen(key) < c->skip || !lb_obj_path_parse(c->t, key + c->skip, &name))
                return 0; /* strangers */
        return c->fn(name, size, c->userdata);
}

static int s3_list(LbBackend *b, LbObjType t, LbListFn fn, void *userdata) {
        S3Backend *s = (S3Backend *) b;
        if (t == LB_OBJ_CONFIG || !lb_obj_type_dir(t))
                return -EINVAL;
        _cleanup_free_ char *kp = lb_strdup_printf("%s%s/", s->prefix, lb_obj_type_dir(t));
        if (!kp)
                return -ENOMEM;
        struct list_ctx c = { .t = t, .fn = fn, .userdata = userdata, .skip = strlen(s->prefix) };
        return list_keys(s, kp, 0, list_one, &c);
}

static int s3_remove(LbBackend *b, LbObjType t, const char *name) {
        S3Backend *s = (S3Backend *) b;
        _cleanup_free_ char *url = obj_url(s, t, name);
        if (!url)
                return t != LB_OBJ_CONFIG && !lb_obj_name_ok(name) ? -EINVAL : -ENOMEM;
        lb_remote_cache_forget(&s->cache, t, name);
        static const char *const unsigned_payload[] = { "x-amz-content-sha256: UNSIGNED-PAYLOAD", NULL };
        const char *hdrs[3];
        headers(s, (const char **) unsigned_payload, hdrs);
        LbHttpRequest q = { .method = "DELETE", .url = url, .headers = hdrs };
        LbHttpResponse resp = {};
        int k = lb_http_do(s->http, &q, &resp);
        k = map_missing(&resp, k);
        lb_buf_free(&resp.body);
        return k;
}

static int found_any(S3Backend *s, const char *key, uint64_t size, void *ud) {
        *(bool *) ud = true;
        return 0;
}

static int s3_create(LbBackend *b) {
        S3Backend *s = (S3Backend *) b;
        /* S3 has no directories: the bucket must exist and the prefix be empty. */
        bool any = false;
        int k = list_keys(s, s->prefix, 1, found_any, &any);
        if (k < 0)
                return k;
        return any ? -ENOTEMPTY : 0;
}

static int s3_exists(LbBackend *b) {
        uint64_t size;
        int k = s3_stat(b, LB_OBJ_CONFIG, "config", &size);
        if (k != -ENOENT)
                return k;
        /* Tell a missing bucket from a missing repository. */
        bool any = false;
        k = list_keys((S3Backend *) b, ((S3Backend *) b)->prefix, 1, found_any, &any);
        return k < 0 ? k : -ENOENT;
}

static const char *s3_local_dir(LbBackend *b) {
        return NULL;
}

static void s3_free(LbBackend *b) {
        S3Backend *s = (S3Backend *) b;
        lb_remote_cache_done(&s->cache);
        lb_http_free(s->http);
        free(s->bucket_url);
        free(s->prefix);
        if (s->token_hdr) {
                explicit_bzero(s->token_hdr, strlen(s->token_hdr));
                free(s->token_hdr);
        }
        free(s->base.location);
        free(s);
}

static const char *env_nonempty(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

int lb_backend_s3_open(const LbLocation *loc, const char *text, LbBackend **ret) {
        const char *key = env_nonempty("AWS_ACCESS_KEY_ID"), *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
        const char *token = env_nonempty("AWS_SESSION_TOKEN");
        if (!key || !secret)
                return -ENOKEY;
        const char *region = loc->region;
        if (!region)
                region = env_nonempty("AWS_REGION");
        if (!region)
                region = env_nonempty("AWS_DEFAULT_REGION");
        if (!region)
                region = "us-east-1";
        if (strlen(region) > 64 || strchr(region, ':'))
                return -EINVAL;

        S3Backend *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->base = (LbBackend) {
                .version = LB_BACKEND_VERSION,
                .kind = "s3",
                .create = s3_create,
                .exists = s3_exists,
                .put = s3_put,
                .get = s3_get,
                .stat = s3_stat,
                .list = s3_list,
                .remove = s3_remove,
                .local_dir = s3_local_dir,
                .free = s3_free,
        };
        lb_remote_cache_init(&s->cache);
        char port[16] = "";
        if (loc->port)
                snprintf(port, sizeof port, ":%u", loc->port);
        const char *scheme = loc->https ? "https" : "http";
        if (loc->virtual_host)
                s->bucket_url = lb_strdup_printf("%s://%s.%s%s", scheme, loc->bucket, loc->host, port);
        else
                s->bucket_url = lb_strdup_printf("%s://%s%s/%s", scheme, loc->host, port, loc->bucket);
        s->prefix = *loc->prefix ? lb_strdup_printf("%s/", loc->prefix) : strdup("");
        s->base.location = strdup(text);
        if (token)
                s->token_hdr = lb_strdup_printf("x-amz-security-token: %s", token);
        _cleanup_free_ char *sigv4 = lb_strdup_printf("aws:amz:%s:s3", region);
        int k = (!s->bucket_url || !s->prefix || !s->base.location || !sigv4 || (token && !s->token_hdr)) ? -ENOMEM : 0;
        if (k == 0) {
                LbHttpOptions o;
                lb_http_get_defaults(&o);
                o.user = key;
                o.password = secret;
                o.aws_sigv4 = sigv4;
                k = lb_http_new(&o, &s->http);
        }
        if (k < 0) {
                s3_free(&s->base);
                return k;
        }
        *ret = &s->base;
        return 0;
}
