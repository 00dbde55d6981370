/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP layer of the remote backends: the only file that speaks libcurl.
 *
 * An LbHttp is a thread-safe client: a pool of reused curl easy handles
 * (each keeps its connections alive), one set of credentials, retries and
 * limits. Requests are synchronous; callers run several threads for
 * parallel transfers.
 *
 * Error convention (every libcurl code and HTTP status becomes -errno here):
 *   2xx                      0 (status in resp->status)
 *   401, 403                 -EACCES
 *   404, 410                 -ENOENT
 *   409                      -EBUSY   (WebDAV: parent collection missing)
 *   405                      -EEXIST  (WebDAV MKCOL: already exists)
 *   412                      -EEXIST
 *   413                      -EFBIG
 *   416                      -ERANGE
 *   507                      -ENOSPC
 *   other 4xx                -EPROTO
 *   5xx, 408, 423, 429, timeouts, resets, refused connections:
 *                            retried with exponential backoff and jitter,
 *                            then -EIO (5xx/429), -ETIMEDOUT, -ECONNRESET
 *                            or -ECONNREFUSED
 *   unresolvable host        -EHOSTUNREACH (not retried)
 *   TLS verification failed  -EPROTO (not retried)
 *   response over max        -EFBIG
 * On failure resp->status still holds the last HTTP status (0 if none) and
 * resp->body the start of the error document (at most 64 KiB).
 */

#include "store/util.h"

typedef struct LbHttpOptions {
        const char *ca_cert;        /* PEM file of trusted CAs; NULL: the system's */
        uint64_t limit_upload;      /* bytes per second over all connections; 0: none */
        unsigned connections;       /* parallel transfers expected (splits limit_upload); 0: 4 */
        unsigned retries;           /* attempts after the first; (unsigned)-1: default 6 */
        unsigned timeout_s;         /* connect timeout, and abort a transfer stalled this long; 0: 60 */
        /* Authentication (all optional; strings copied). */
        const char *user;
        const char *password;
        const char *aws_sigv4;      /* "aws:amz:REGION:s3": sign with user:password as key:secret */
} LbHttpOptions;

/* Process-wide defaults for the options above that the CLI sets once
 * (--ca-cert, --limit-upload, LONGBOX_HTTP_TIMEOUT, LONGBOX_HTTP_RETRIES).
 * Borrowed strings must live as long as the process. */
void lb_http_set_defaults(const LbHttpOptions *o);
void lb_http_get_defaults(LbHttpOptions *ret);

typedef struct LbHttp LbHttp;

int lb_http_new(const LbHttpOptions *o, LbHttp **ret) _warn_unused_;
LbHttp *lb_http_free(LbHttp *h);   /* NULL ok; returns NULL */

typedef struct LbHttpRequest {
        const char *method;           /* "GET", "PUT", "HEAD", "DELETE", "PROPFIND", ... */
        const char *url;              /* fully escaped */
        const char *const *headers;   /* NULL-terminated "Name: value" list, or NULL */
        const void *body;             /* sent when has_body */
        size_t body_len;
        bool has_body;
        bool range;                   /* send "Range: bytes=range_off-..." */
        uint64_t range_off;
        uint64_t range_len;           /* UINT64_MAX: to the end */
        size_t max_response;          /* larger bodies fail with -EFBIG; 0: 16 MiB */
        bool no_retry;                /* one attempt only (probes) */
} LbHttpRequest;

typedef struct LbHttpResponse {
        long status;
        uint64_t content_length;      /* of the response (HEAD: of the resource); UINT64_MAX if unknown */
        LbBuf body;
} LbHttpResponse;

/* Runs a request (with retries). resp is reset first; free resp->body with
 * lb_buf_free. */
int lb_http_do(LbHttp *h, const LbHttpRequest *q, LbHttpResponse *resp) _warn_unused_;

/* %-escapes s for a URL path segment or query value (RFC 3986 unreserved
 * characters stay). Caller frees; NULL on allocation failure. */
char *lb_http_escape(const char *s);

/* Requests sent by this process so far (every attempt counts). */
uint64_t lb_http_requests_total(void);
