/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Parsers of the XML documents remote servers send: S3 ListObjectsV2 pages
 * and error documents, WebDAV PROPFIND multistatus replies. Input is
 * untrusted: documents over LB_XML_MAX bytes, with a DTD, with more than
 * LB_XML_MAX_ENTRIES entries or with names over LB_XML_NAME_MAX bytes are
 * refused with -EBADMSG. libxml2 is used without network access and
 * without entity expansion.
 */

#include "store/util.h"

#define LB_XML_MAX (16u << 20)
#define LB_XML_MAX_ENTRIES 100000
#define LB_XML_NAME_MAX 1024

typedef struct LbRemoteEntry {
        char *name;        /* S3: the key; WebDAV: the last path segment, %-decoded */
        char *path;        /* WebDAV: the whole path, %-decoded, without a trailing '/'; S3: NULL */
        uint64_t size;
        bool is_dir;       /* WebDAV collections */
} LbRemoteEntry;

typedef struct LbRemoteList {
        LbRemoteEntry *v;
        size_t n;
        bool truncated;    /* S3: IsTruncated */
        char *next_token;  /* S3: NextContinuationToken (NULL if none) */
} LbRemoteList;

void lb_remote_list_clear(LbRemoteList *l);

/* A ListObjectsV2 result page. */
int lb_s3_parse_list(const void *p, size_t n, LbRemoteList *ret) _warn_unused_;
/* The <Code> of an S3 <Error> document into code (NUL-terminated, truncated
 * to size); -EBADMSG if it is not one. */
int lb_s3_parse_error(const void *p, size_t n, char *code, size_t size) _warn_unused_;
/* A WebDAV 207 multistatus reply (entries with a 2xx propstat). */
int lb_webdav_parse_multistatus(const void *p, size_t n, LbRemoteList *ret) _warn_unused_;
