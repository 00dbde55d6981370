/* SPDX-License-Identifier: MIT */
/* Parsing of repository location strings (store/location.h). */
#include <stdio.h>

#include "store/location.h"

bool lb_location_is_remote(const char *s) {
        return s && (strncmp(s, "s3:", 3) == 0 || strncmp(s, "webdav:", 7) == 0 || strncmp(s, "rclone:", 7) == 0);
}

void lb_location_clear(LbLocation *l) {
        if (!l)
                return;
        free(l->path);
        free(l->host);
        free(l->bucket);
        free(l->prefix);
        if (l->password)
                explicit_bzero(l->password, strlen(l->password));
        free(l->user);
        free(l->password);
        free(l->region);
        *l = (LbLocation) {};
}

static bool has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static char *strndup_checked(const char *p, size_t n) {
        char *s = malloc(n + 1);
        if (!s)
                return NULL;
        memcpy(s, p, n);
        s[n] = 0;
        return s;
}

/* %-decodes p[0..n) into a new string; -EINVAL on bad escapes or a NUL. */
static int pct_decode(const char *p, size_t n, char **ret) {
        char *s = malloc(n + 1), *o = s;
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (p[i] != '%') {
                        *o++ = p[i];
                        continue;
                }
                int h = i + 2 < n ? lb_hex_digit(p[i + 1]) : -1, l = i + 2 < n ? lb_hex_digit(p[i + 2]) : -1;
                if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                        free(s);
                        return -EINVAL;
                }
                *o++ = (char) (h << 4 | l);
                i += 2;
        }
        *o = 0;
        *ret = s;
        return 0;
}

static bool host_ok(const char *p, size_t n) {
        if (n == 0 || n > 253)
                return false;
        if (p[0] == '[') {
                if (n < 3 || p[n - 1] != ']')
                        return false;
                for (size_t i = 1; i + 1 < n; i++)
                        if (!(lb_hex_digit(p[i]) >= 0 || p[i] == ':' || p[i] == '.'))
                                return false;
                return true;
        }
        for (size_t i = 0; i < n; i++) {
                char c = p[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return false;
        }
        return p[0] != '-' && p[0] != '.';
}

/* Characters a URL path may hold as is (RFC 3986 pchar and '/', '%' for escapes). */
static bool path_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=:@/%", c);
}

/* An S3 key prefix: safe characters only, no empty, "." or ".." segments. */
static bool prefix_ok(const char *p, size_t n) {
        if (n > 512)
                return false;
        size_t seg = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i == n || p[i] == '/') {
                        if (seg == 0 && n > 0)
                                return false;
                        if ((seg == 1 && p[i - 1] == '.') || (seg == 2 && p[i - 1] == '.' && p[i - 2] == '.'))
                                return false;
                        seg = 0;
                        continue;
                }
                char c = p[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_' || c == '.'))
                        return false;
                seg++;
        }
        return true;
}

static bool bucket_ok(const char *p, size_t n) {
        if (n < 3 || n > 63)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = p[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return false;
        }
        return p[0] != '-' && p[0] != '.' && p[n - 1] != '-' && p[n - 1] != '.';
}

static bool region_ok(const char *p) {
        size_t n = strlen(p);
        if (n == 0 || n > 64)
                return false;
        for (; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

/* Parses "http[s]://[userinfo@]host[:port][/path][?query]" into l (https, host,
 * port, user, password) and returns the path and query spans. */
static int parse_url(const char *s, LbLocation *l, const char **ret_path, size_t *ret_path_len, const char **ret_query) {
        if (strncmp(s, "https://", 8) == 0) {
                l->https = true;
                s += 8;
        } else if (strncmp(s, "http://", 7) == 0)
                s += 7;
        else
                return -EINVAL;
        size_t alen = strcspn(s, "/?#");
        if (s[alen] == '#')
                return -EINVAL;
        const char *auth = s, *at = NULL;
        for (size_t i = 0; i < alen; i++)
                if (auth[i] == '@')
                        at = auth + i;
        const char *hp = auth;
        if (at) {
                const char *colon = memchr(auth, ':', (size_t) (at - auth));
                size_t ulen = colon ? (size_t) (colon - auth) : (size_t) (at - auth);
                if (ulen == 0)
                        return -EINVAL;
                int k = pct_decode(auth, ulen, &l->user);
                if (k < 0)
                        return k;
                if (colon) {
                        k = pct_decode(colon + 1, (size_t) (at - colon - 1), &l->password);
                        if (k < 0)
                                return k;
                }
                hp = at + 1;
        }
        size_t hplen = (size_t) (auth + alen - hp);
        size_t hlen = hplen;
        if (hplen > 0 && hp[0] == '[') {
                const char *close = memchr(hp, ']', hplen);
                if (!close)
                        return -EINVAL;
                hlen = (size_t) (close - hp) + 1;
        } else {
                const char *colon = memchr(hp, ':', hplen);
                if (colon)
                        hlen = (size_t) (colon - hp);
        }
        if (!host_ok(hp, hlen))
                return -EINVAL;
        if (hlen < hplen) {
                if (hp[hlen] != ':' || hplen - hlen < 2 || hplen - hlen > 6)
                        return -EINVAL;
                unsigned port = 0;
                for (size_t i = hlen + 1; i < hplen; i++) {
                        if (hp[i] < '0' || hp[i] > '9')
                                return -EINVAL;
                        port = port * 10 + (unsigned) (hp[i] - '0');
                }
                if (port == 0 || port > 65535)
                        return -EINVAL;
                l->port = port;
        }
        l->host = strndup_checked(hp, hlen);
        if (!l->host)
                return -ENOMEM;
        const char *path = s + alen;
        size_t plen = strcspn(path, "?#");
        if (path[plen] == '#')
                return -EINVAL;
        for (size_t i = 0; i < plen; i++)
                if (!path_char_ok(path[i]))
                        return -EINVAL;
        *ret_path = path;
        *ret_path_len = plen;
        *ret_query = path[plen] == '?' ? path + plen + 1 : NULL;
        return 0;
}

static int parse_s3_query(const char *q, LbLocation *l) {
        while (q && *q) {
                size_t n = strcspn(q, "&");
                const char *eq = memchr(q, '=', n);
                if (!eq)
                        return -EINVAL;
                size_t kl = (size_t) (eq - q);
                _cleanup_free_ char *v = strndup_checked(eq + 1, n - kl - 1);
                if (!v)
                        return -ENOMEM;
                if (kl == 6 && strncmp(q, "region", 6) == 0) {
                        if (!region_ok(v) || l->region)
                                return -EINVAL;
                        l->region = LB_TAKE_PTR(v);
                } else if (kl == 5 && strncmp(q, "style", 5) == 0) {
                        if (strcmp(v, "virtual") == 0)
                                l->virtual_host = true;
                        else if (strcmp(v, "path") == 0)
                                l->virtual_host = false;
                        else
                                return -EINVAL;
                } else
                        return -EINVAL;
                q += n;
                if (*q == '&')
                        q++;
        }
        return 0;
}

static int parse_s3(const char *s, LbLocation *l) {
        const char *path, *query;
        size_t plen;
        int k = parse_url(s, l, &path, &plen, &query);
        if (k < 0)
                return k;
        if (l->user)
                return -EINVAL; /* credentials come from the environment, never the location */
        while (plen > 0 && path[plen - 1] == '/')
                plen--;
        if (plen < 2 || path[0] != '/')
                return -EINVAL;
        path++;
        plen--;
        const char *slash = memchr(path, '/', plen);
        size_t blen = slash ? (size_t) (slash - path) : plen;
        if (!bucket_ok(path, blen))
                return -EINVAL;
        const char *pre = slash ? slash + 1 : path + plen;
        size_t prelen = (size_t) (path + plen - pre);
        if (!prefix_ok(pre, prelen))
                return -EINVAL;
        l->bucket = strndup_checked(path, blen);
        l->prefix = strndup_checked(pre, prelen);
        if (!l->bucket || !l->prefix)
                return -ENOMEM;
        return parse_s3_query(query, l);
}

static int parse_webdav(const char *s, LbLocation *l) {
        const char *path, *query;
        size_t plen;
        int k = parse_url(s, l, &path, &plen, &query);
        if (k < 0)
                return k;
        if (query)
                return -EINVAL;
        while (plen > 0 && path[plen - 1] == '/')
                plen--;
        /* Every escape must decode to something other than NUL, '/' or a control. */
        for (size_t i = 0; i < plen; i++)
                if (path[i] == '%') {
                        int h = i + 2 < plen ? lb_hex_digit(path[i + 1]) : -1;
                        int lo = i + 2 < plen ? lb_hex_digit(path[i + 2]) : -1;
                        if (h < 0 || lo < 0 || (h << 4 | lo) < 0x20 || (h << 4 | lo) == '/' || (h << 4 | lo) == 0x7f)
                                return -EINVAL;
                }
        /* No "." or ".." segments. */
        for (size_t i = 0; i < plen;) {
                size_t j = i + 1;
                while (j < plen && path[j] != '/')
                        j++;
                size_t seg = j - i - 1;
                if (seg == 0 || (seg == 1 && path[i + 1] == '.') || (seg == 2 && path[i + 1] == '.' && path[i + 2] == '.'))
                        return -EINVAL;
                i = j;
        }
        l->prefix = strndup_checked(path, plen);
        return l->prefix ? 0 : -ENOMEM;
}

static int parse_rclone(const char *s, LbLocation *l) {
        /* REMOTE:PATH, or :backend,opts:PATH. Never an option for rclone. */
        if (!*s || s[0] == '-' || !strchr(s, ':'))
                return -EINVAL;
        l->path = strdup(s);
        return l->path ? 0 : -ENOMEM;
}

int lb_location_parse(const char *s, LbLocation *ret) {
        if (!s || !*s || strlen(s) > LB_LOCATION_MAX || has_control(s))
                return -EINVAL;
        LbLocation l = {};
        int k;
        if (strncmp(s, "s3:", 3) == 0) {
                l.kind = LB_LOC_S3;
                k = parse_s3(s + 3, &l);
        } else if (strncmp(s, "webdav:", 7) == 0) {
                l.kind = LB_LOC_WEBDAV;
                k = parse_webdav(s + 7, &l);
        } else if (strncmp(s, "rclone:", 7) == 0) {
                l.kind = LB_LOC_RCLONE;
                k = parse_rclone(s + 7, &l);
        } else {
                l.kind = LB_LOC_DIR;
                const char *p = strncmp(s, "dir:", 4) == 0 ? s + 4 : s;
                k = *p ? 0 : -EINVAL;
                if (k == 0) {
                        l.path = strdup(p);
                        k = l.path ? 0 : -ENOMEM;
                }
        }
        if (k < 0) {
                lb_location_clear(&l);
                return k;
        }
        *ret = l;
        return 0;
}
