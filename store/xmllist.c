/* SPDX-License-Identifier: MIT */
/* S3 and WebDAV listing parsers over libxml2 (store/xmllist.h). */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdio.h>

#include "store/xmllist.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void) {
        xmlInitParser();
}

void lb_remote_list_clear(LbRemoteList *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].name);
                free(l->v[i].path);
        }
        free(l->v);
        free(l->next_token);
        *l = (LbRemoteList) {};
}

static int parse_doc(const void *p, size_t n, xmlDocPtr *ret) {
        if (n == 0 || n > LB_XML_MAX)
                return -EBADMSG;
        pthread_once(&xml_once, xml_init);
        xmlDocPtr doc = xmlReadMemory(p, (int) n, NULL, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        if (!doc)
                return -EBADMSG;
        if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
                xmlFreeDoc(doc);
                return -EBADMSG;
        }
        *ret = doc;
        return 0;
}

static bool is(const xmlNode *x, const char *name) {
        return x->type == XML_ELEMENT_NODE && strcmp((const char *) x->name, name) == 0;
}

static bool is_dav(const xmlNode *x, const char *name) {
        return is(x, name) && x->ns && x->ns->href && strcmp((const char *) x->ns->href, "DAV:") == 0;
}

/* The text of an element made of text nodes only; -EBADMSG otherwise or if
 * longer than max. Caller frees. */
static int text_of(const xmlNode *x, size_t max, char **ret) {
        size_t len = 0;
        for (const xmlNode *c = x->children; c; c = c->next) {
                if (c->type != XML_TEXT_NODE)
                        return -EBADMSG;
                len += c->content ? strlen((const char *) c->content) : 0;
                if (len > max)
                        return -EBADMSG;
        }
        char *s = malloc(len + 1);
        if (!s)
                return -ENOMEM;
        size_t o = 0;
        for (const xmlNode *c = x->children; c; c = c->next)
                if (c->content) {
                        size_t l = strlen((const char *) c->content);
                        memcpy(s + o, c->content, l);
                        o += l;
                }
        s[o] = 0;
        *ret = s;
        return 0;
}

static int parse_u64(const xmlNode *x, uint64_t *ret) {
        _cleanup_free_ char *s = NULL;
        int k = text_of(x, 20, &s);
        if (k < 0)
                return k;
        char *p = s;
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
                p++;
        if (!*p)
                return -EBADMSG;
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX >> 1) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
                p++;
        if (*p)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int list_push(LbRemoteList *l, LbRemoteEntry e) {
        if (l->n >= LB_XML_MAX_ENTRIES)
                return -EBADMSG;
        LbRemoteEntry *v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        l->v = v;
        l->v[l->n++] = e;
        return 0;
}

int lb_s3_parse_list(const void *p, size_t n, LbRemoteList *ret) {
        xmlDocPtr doc;
        int k = parse_doc(p, n, &doc);
        if (k < 0)
                return k;
        LbRemoteList l = {};
        xmlNode *root = xmlDocGetRootElement(doc);
        bool truncated_seen = false;
        if (!is(root, "ListBucketResult")) {
                k = -EBADMSG;
                goto done;
        }
        for (xmlNode *c = root->children; c && k == 0; c = c->next) {
                if (is(c, "Contents")) {
                        LbRemoteEntry e = {};
                        bool have_size = false;
                        for (xmlNode *f = c->children; f && k == 0; f = f->next) {
                                if (is(f, "Key")) {
                                        if (e.name)
                                                k = -EBADMSG;
                                        else
                                                k = text_of(f, LB_XML_NAME_MAX, &e.name);
                                } else if (is(f, "Size")) {
                                        k = have_size ? -EBADMSG : parse_u64(f, &e.size);
                                        have_size = true;
                                }
                        }
                        if (k == 0 && (!e.name || !*e.name || !have_size))
                                k = -EBADMSG;
                        if (k == 0)
                                k = list_push(&l, e);
                        if (k < 0)
                                free(e.name);
                } else if (is(c, "IsTruncated")) {
                        _cleanup_free_ char *s = NULL;
                        k = text_of(c, 8, &s);
                        if (k == 0) {
                                if (strcmp(s, "true") == 0)
                                        l.truncated = true;
                                else if (strcmp(s, "false") != 0)
                                        k = -EBADMSG;
                                truncated_seen = true;
                        }
                } else if (is(c, "NextContinuationToken")) {
                        free(l.next_token);
                        l.next_token = NULL;
                        k = text_of(c, LB_XML_NAME_MAX, &l.next_token);
                }
        }
        /* A truncated page must say where to go on. */
        if (k == 0 && (!truncated_seen || (l.truncated && (!l.next_token || !*l.next_token))))
                k = -EBADMSG;
done:
        xmlFreeDoc(doc);
        if (k < 0) {
                lb_remote_list_clear(&l);
                return k;
        }
        *ret = l;
        return 0;
}

int lb_s3_parse_error(const void *p, size_t n, char *code, size_t size) {
        xmlDocPtr doc;
        int k = parse_doc(p, n, &doc);
        if (k < 0)
                return k;
        xmlNode *root = xmlDocGetRootElement(doc);
        k = -EBADMSG;
        if (is(root, "Error"))
                for (xmlNode *c = root->children; c; c = c->next)
                        if (is(c, "Code")) {
                                char *s = NULL;
                                k = text_of(c, 256, &s);
                                if (k == 0) {
                                        if (size > 0)
                                                snprintf(code, size, "%s", s);
                                        free(s);
                                }
                                break;
                        }
        xmlFreeDoc(doc);
        return k;
}

/* The path of an href ("/a/b%20c/" or "http://host/a/b/"), %-decoded in
 * place, without trailing '/'. -EBADMSG on bad escapes or NUL/'/' escapes. */
static int href_path(char *s, char **ret_path) {
        char *p = s;
        if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0) {
                p = strchr(p + (p[4] == 's' ? 8 : 7), '/');
                if (!p)
                        p = s + strlen(s); /* the root */
        }
        char *o = s;
        for (; *p; p++) {
                if (*p != '%') {
                        *o++ = *p;
                        continue;
                }
                int h = lb_hex_digit(p[1]), l = h >= 0 ? lb_hex_digit(p[2]) : -1;
                if (h < 0 || l < 0)
                        return -EBADMSG;
                char c = (char) (h << 4 | l);
                if (c == 0 || c == '/')
                        return -EBADMSG;
                *o++ = c;
                p += 2;
        }
        *o = 0;
        size_t len = strlen(s);
        while (len > 0 && s[len - 1] == '/')
                s[--len] = 0;
        *ret_path = s;
        return 0;
}

/* One <D:response>: href, then propstats; only a 2xx propstat counts. */
static int parse_response(xmlNode *r, LbRemoteList *l) {
        _cleanup_free_ char *href = NULL;
        LbRemoteEntry e = {};
        bool ok = false;
        int k = 0;
        for (xmlNode *c = r->children; c && k == 0; c = c->next) {
                if (is_dav(c, "href")) {
                        if (href)
                                return -EBADMSG;
                        k = text_of(c, LB_XML_NAME_MAX, &href);
                } else if (is_dav(c, "propstat")) {
                        bool good = false;
                        xmlNode *prop = NULL;
                        for (xmlNode *f = c->children; f && k == 0; f = f->next) {
                                if (is_dav(f, "status")) {
                                        _cleanup_free_ char *st = NULL;
                                        k = text_of(f, 256, &st);
                                        /* "HTTP/1.1 200 OK" */
                                        const char *sp = k == 0 ? strchr(st, ' ') : NULL;
                                        good = sp && sp[1] == '2';
                                } else if (is_dav(f, "prop"))
                                        prop = f;
                        }
                        if (k < 0 || !good || !prop)
                                continue;
                        ok = true;
                        for (xmlNode *f = prop->children; f && k == 0; f = f->next) {
                                if (is_dav(f, "getcontentlength"))
                                        k = parse_u64(f, &e.size);
                                else if (is_dav(f, "resourcetype"))
                                        for (xmlNode *t = f->children; t; t = t->next)
                                                if (is_dav(t, "collection"))
                                                        e.is_dir = true;
                        }
                }
        }
        if (k < 0)
                return k;
        if (!href || !*href)
                return -EBADMSG;
        if (!ok)
                return 0;
        size_t hl = strlen(href);
        if (hl > 0 && href[hl - 1] == '/')
                e.is_dir = true;
        char *path;
        k = href_path(href, &path);
        if (k < 0)
                return k;
        const char *slash = strrchr(path, '/');
        e.name = strdup(slash ? slash + 1 : path);
        e.path = strdup(path);
        if (!e.name || !e.path)
                k = -ENOMEM;
        if (k == 0)
                k = list_push(l, e);
        if (k < 0) {
                free(e.name);
                free(e.path);
        }
        return k;
}

int lb_webdav_parse_multistatus(const void *p, size_t n, LbRemoteList *ret) {
        xmlDocPtr doc;
        int k = parse_doc(p, n, &doc);
        if (k < 0)
                return k;
        LbRemoteList l = {};
        xmlNode *root = xmlDocGetRootElement(doc);
        if (!is_dav(root, "multistatus"))
                k = -EBADMSG;
        for (xmlNode *c = root->children; c && k == 0; c = c->next)
                if (is_dav(c, "response"))
                        k = parse_response(c, &l);
        xmlFreeDoc(doc);
        if (k < 0) {
                lb_remote_list_clear(&l);
                return k;
        }
        *ret = l;
        return 0;
}
