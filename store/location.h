/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Repository location strings (docs/design.md "Locations"):
 *
 *   PATH, dir:PATH                              a local directory
 *   s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX][?region=R&style=path|virtual]
 *   webdav:http[s]://[USER[:PASSWORD]@]HOST[:PORT][/PATH]
 *   rclone:REMOTE:PATH                          any rclone remote, served as WebDAV
 *
 * The parser works on untrusted input (a config file, a command line): every
 * part is checked against a small character set and a length limit, so the
 * pieces can be pasted into URLs and signed requests without escaping
 * surprises. Parsing does no I/O.
 */

#include "store/util.h"

#define LB_LOCATION_MAX 4096

typedef enum LbLocationKind {
        LB_LOC_DIR,
        LB_LOC_S3,
        LB_LOC_WEBDAV,
        LB_LOC_RCLONE,
} LbLocationKind;

typedef struct LbLocation {
        LbLocationKind kind;
        char *path;         /* dir: the path; rclone: "REMOTE:PATH" */
        bool https;         /* s3, webdav */
        char *host;         /* s3, webdav: name, IPv4, or IPv6 in brackets */
        unsigned port;      /* s3, webdav: 0 for the scheme's default */
        char *bucket;       /* s3 */
        char *prefix;       /* s3: key prefix without leading or trailing '/', may be "";
                             * webdav: URL path, "" or "/a/b" (no trailing '/'), still %-encoded */
        char *user;         /* webdav: from the URL, %-decoded; NULL if none */
        char *password;     /* webdav: from the URL, %-decoded; NULL if none */
        char *region;       /* s3: from ?region=, NULL if not given */
        bool virtual_host;  /* s3: ?style=virtual: BUCKET.HOST instead of HOST/BUCKET */
} LbLocation;

/* Parses s. -EINVAL if malformed (nothing allocated then). */
int lb_location_parse(const char *s, LbLocation *ret) _warn_unused_;
void lb_location_clear(LbLocation *l);
/* True when s names a remote (s3:, webdav:, rclone:), without parsing it fully. */
bool lb_location_is_remote(const char *s);
