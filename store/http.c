/* SPDX-License-Identifier: MIT */
/*
 * libcurl, translated once (store/http.h): a pool of easy handles reused
 * for keep-alive, retries with exponential backoff and jitter, limits on
 * response sizes, HTTPS verification on.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "lb-config.h"
#include "store/crypto.h"
#include "store/http.h"

#define DEFAULT_MAX_RESPONSE (16u << 20)
#define ERROR_BODY_MAX (64u << 10)
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 10000

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
static uint64_t requests_total;

static pthread_mutex_t defaults_lock = PTHREAD_MUTEX_INITIALIZER;
static LbHttpOptions defaults = { .retries = (unsigned) -1 };

static void global_init(void) {
        global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void lb_http_set_defaults(const LbHttpOptions *o) {
        pthread_mutex_lock(&defaults_lock);
        defaults = *o;
        defaults.user = defaults.password = defaults.aws_sigv4 = NULL;
        pthread_mutex_unlock(&defaults_lock);
}

void lb_http_get_defaults(LbHttpOptions *ret) {
        pthread_mutex_lock(&defaults_lock);
        *ret = defaults;
        pthread_mutex_unlock(&defaults_lock);
}

uint64_t lb_http_requests_total(void) {
        return __atomic_load_n(&requests_total, __ATOMIC_RELAXED);
}

struct LbHttp {
        pthread_mutex_t lock;
        CURL **idle;
        size_t n_idle;
        size_t cap_idle;
        char *ca_cert;
        char *user;
        char *password;
        char *sigv4;
        curl_off_t send_limit;   /* per connection */
        unsigned retries;
        long timeout_s;
};

static char *dup_or_null(const char *s, int *k) {
        if (!s)
                return NULL;
        char *d = strdup(s);
        if (!d)
                *k = -ENOMEM;
        return d;
}

int lb_http_new(const LbHttpOptions *o, LbHttp **ret) {
        pthread_once(&global_once, global_init);
        if (global_rc != CURLE_OK)
                return -ENOMEM;
        LbHttp *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        pthread_mutex_init(&h->lock, NULL);
        int k = 0;
        h->ca_cert = dup_or_null(o->ca_cert, &k);
        h->user = dup_or_null(o->user, &k);
        h->password = dup_or_null(o->password, &k);
        h->sigv4 = dup_or_null(o->aws_sigv4, &k);
        if (k < 0) {
                lb_http_free(h);
                return k;
        }
        unsigned conns = o->connections ? o->connections : 4;
        if (o->limit_upload) {
                uint64_t per = o->limit_upload / conns;
                h->send_limit = (curl_off_t) (per ? per : 1);
        }
        h->retries = o->retries == (unsigned) -1 ? 6 : o->retries;
        h->timeout_s = o->timeout_s ? (long) o->timeout_s : 60;
        *ret = h;
        return 0;
}

LbHttp *lb_http_free(LbHttp *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_idle; i++)
                curl_easy_cleanup(h->idle[i]);
        free(h->idle);
        free(h->ca_cert);
        free(h->user);
        if (h->password) {
                explicit_bzero(h->password, strlen(h->password));
                free(h->password);
        }
        free(h->sigv4);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
}

static CURL *handle_get(LbHttp *h) {
        CURL *e = NULL;
        pthread_mutex_lock(&h->lock);
        if (h->n_idle > 0)
                e = h->idle[--h->n_idle];
        pthread_mutex_unlock(&h->lock);
        return e ? e : curl_easy_init();
}

static void handle_put(LbHttp *h, CURL *e) {
        pthread_mutex_lock(&h->lock);
        if (h->n_idle == h->cap_idle) {
                size_t cap = h->cap_idle ? 2 * h->cap_idle : 8;
                CURL **v = realloc(h->idle, cap * sizeof *v);
                if (!v) {
                        pthread_mutex_unlock(&h->lock);
                        curl_easy_cleanup(e);
                        return;
                }
                h->idle = v;
                h->cap_idle = cap;
        }
        h->idle[h->n_idle++] = e;
        pthread_mutex_unlock(&h->lock);
}

char *lb_http_escape(const char *s) {
        pthread_once(&global_once, global_init);
        char *e = curl_easy_escape(NULL, s, (int) strlen(s));
        if (!e)
                return NULL;
        char *d = strdup(e);
        curl_free(e);
        return d;
}

struct xfer {
        const uint8_t *body;
        size_t body_len;
        size_t body_pos;
        LbBuf *out;
        size_t max;
        bool too_big;
        CURL *e;
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud) {
        struct xfer *x = ud;
        size_t n = LB_MIN(size * nitems, x->body_len - x->body_pos);
        if (n)
                memcpy(buf, x->body + x->body_pos, n);
        x->body_pos += n;
        return n;
}

static int on_seek(void *ud, curl_off_t off, int origin) {
        struct xfer *x = ud;
        if (origin != SEEK_SET || off < 0 || (uint64_t) off > x->body_len)
                return CURL_SEEKFUNC_FAIL;
        x->body_pos = (size_t) off;
        return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
        struct xfer *x = ud;
        size_t n = size * nmemb;
        long status = 0;
        curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 300) {
                /* Keep the start of an error document; drop the rest. */
                size_t room = x->out->len < ERROR_BODY_MAX ? ERROR_BODY_MAX - x->out->len : 0;
                if (room && lb_buf_append(x->out, p, LB_MIN(room, n)) < 0)
                        return 0;
                return n;
        }
        if (n > x->max - x->out->len || x->out->len > x->max) {
                x->too_big = true;
                return 0;
        }
        if (lb_buf_append(x->out, p, n) < 0)
                return 0;
        return n;
}

/* Maps a finished attempt to 0 or -errno; *retry says whether to try again. */
static int classify(CURLcode rc, long status, bool too_big, bool *retry) {
        *retry = false;
        switch (rc) {
        case CURLE_OK:
                break;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                *retry = true;
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                *retry = true;
                return -ETIMEDOUT;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SEND_FAIL_REWIND:
        case CURLE_WEIRD_SERVER_REPLY:
                *retry = true;
                return -ECONNRESET;
        case CURLE_WRITE_ERROR:
                return too_big ? -EFBIG : -ENOMEM;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EINVAL;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
                return -EPROTO;
        default:
                return -EIO;
        }
        if (status >= 200 && status < 300)
                return 0;
        switch (status) {
        case 401:
        case 403:
                return -EACCES;
        case 404:
        case 410:
                return -ENOENT;
        case 405:
        case 412:
                return -EEXIST;
        case 409:
                return -EBUSY;
        case 413:
                return -EFBIG;
        case 416:
                return -ERANGE;
        case 507:
                return -ENOSPC;
        case 408:
        case 423: /* Locked: WebDAV servers (rclone's) lock a resource per
                   * request, so parallel MKCOL/PUT/MOVE in one folder can
                   * collide for a moment */
        case 429:
                *retry = true;
                return -EIO;
        default:
                if (status >= 500) {
                        *retry = true;
                        return -EIO;
                }
                return -EPROTO;
        }
}

static void backoff_sleep(unsigned attempt) {
        uint64_t ms = BACKOFF_FIRST_MS;
        for (unsigned i = 0; i < attempt && ms < BACKOFF_MAX_MS; i++)
                ms *= 2;
        if (ms > BACKOFF_MAX_MS)
                ms = BACKOFF_MAX_MS;
        /* Equal jitter: half fixed, half random, so parallel clients spread out. */
        ms = ms / 2 + lb_random_uniform((uint32_t) (ms / 2 + 1));
        struct timespec ts = { .tv_sec = (time_t) (ms / 1000), .tv_nsec = (long) (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int attempt(LbHttp *h, CURL *e, const LbHttpRequest *q, LbHttpResponse *resp, bool *retry) {
        struct curl_slist *hdrs = NULL;
        char range[64];
        struct xfer x = { .body = q->body, .body_len = q->body_len, .out = &resp->body,
                          .max = q->max_response ? q->max_response : DEFAULT_MAX_RESPONSE, .e = e };
        int k = 0;

        curl_easy_reset(e);
        if (q->headers)
                for (const char *const *p = q->headers; *p && k == 0; p++) {
                        struct curl_slist *n = curl_slist_append(hdrs, *p);
                        if (!n)
                                k = -ENOMEM;
                        else
                                hdrs = n;
                }
        /* No "Expect: 100-continue" wait before bodies. Signed requests
         * cannot drop it with an empty header (SigV4 would sign it): for them
         * the wait is cut to nothing below. */
        struct curl_slist *n = NULL;
        if (k == 0 && !h->sigv4) {
                n = curl_slist_append(hdrs, "Expect:");
                if (!n)
                        k = -ENOMEM;
                else
                        hdrs = n;
        }
        if (k == 0 && q->range) {
                if (q->range_len == UINT64_MAX)
                        snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-", q->range_off);
                else
                        snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-%" PRIu64, q->range_off,
                                 q->range_off + q->range_len - 1);
                n = curl_slist_append(hdrs, range);
                if (!n)
                        k = -ENOMEM;
                else
                        hdrs = n;
        }
        if (k < 0) {
                curl_slist_free_all(hdrs);
                return k;
        }

        curl_easy_setopt(e, CURLOPT_URL, q->url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "longbox/" LB_VERSION);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (h->ca_cert)
                curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_cert);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, h->timeout_s);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, h->timeout_s);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        if (h->sigv4) {
                curl_easy_setopt(e, CURLOPT_AWS_SIGV4, h->sigv4);
                curl_easy_setopt(e, CURLOPT_USERNAME, h->user ? h->user : "");
                curl_easy_setopt(e, CURLOPT_PASSWORD, h->password ? h->password : "");
        } else if (h->user) {
                curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
                curl_easy_setopt(e, CURLOPT_USERNAME, h->user);
                curl_easy_setopt(e, CURLOPT_PASSWORD, h->password ? h->password : "");
        }
        if (strcmp(q->method, "HEAD") == 0)
                curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        else if (strcmp(q->method, "GET") != 0)
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
        if (q->has_body) {
                curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(e, CURLOPT_READDATA, &x);
                curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
                curl_easy_setopt(e, CURLOPT_SEEKDATA, &x);
                curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) q->body_len);
                curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
                if (h->send_limit)
                        curl_easy_setopt(e, CURLOPT_MAX_SEND_SPEED_LARGE, h->send_limit);
        }
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);

        __atomic_fetch_add(&requests_total, 1, __ATOMIC_RELAXED);
        CURLcode rc = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_off_t cl = -1;
        curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        curl_slist_free_all(hdrs);
        resp->status = status;
        resp->content_length = cl >= 0 ? (uint64_t) cl : UINT64_MAX;
        k = classify(rc, status, x.too_big, retry);
        if (k == 0 && q->range && status == 200) {
                /* The server ignored the range and sent it all: cut it out. */
                if (q->range_off > resp->body.len)
                        return -ERANGE;
                size_t len = resp->body.len - (size_t) q->range_off;
                if (q->range_len != UINT64_MAX && q->range_len < len)
                        len = (size_t) q->range_len;
                memmove(resp->body.data, resp->body.data + q->range_off, len);
                resp->body.len = len;
        }
        return k;
}

int lb_http_do(LbHttp *h, const LbHttpRequest *q, LbHttpResponse *resp) {
        lb_buf_free(&resp->body);
        *resp = (LbHttpResponse) { .content_length = UINT64_MAX };
        CURL *e = handle_get(h);
        if (!e)
                return -ENOMEM;
        int k;
        for (unsigned i = 0;; i++) {
                bool retry = false;
                lb_buf_clear(&resp->body);
                k = attempt(h, e, q, resp, &retry);
                if (!retry || q->no_retry || i >= h->retries)
                        break;
                if (k == -ECONNRESET || k == -ETIMEDOUT) {
                        /* Start the next attempt on a fresh connection. */
                        curl_easy_cleanup(e);
                        e = curl_easy_init();
                        if (!e)
                                return -ENOMEM;
                }
                backoff_sleep(i);
        }
        handle_put(h, e);
        return k;
}
