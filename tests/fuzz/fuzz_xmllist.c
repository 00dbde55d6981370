/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the XML listings of remote servers (S3 ListObjectsV2 pages
 * and errors, WebDAV multistatus). Any input: no crash, no leak; accepted
 * entries respect the limits.
 */
#include "store/xmllist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const LbRemoteList *l) {
        if (l->n > LB_XML_MAX_ENTRIES)
                __builtin_trap();
        for (size_t i = 0; i < l->n; i++)
                if (!l->v[i].name || strlen(l->v[i].name) > LB_XML_NAME_MAX)
                        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        LbRemoteList l;
        if (lb_s3_parse_list(data, size, &l) == 0) {
                check(&l);
                if (l.truncated && !l.next_token)
                        __builtin_trap();
                lb_remote_list_clear(&l);
        }
        if (lb_webdav_parse_multistatus(data, size, &l) == 0) {
                check(&l);
                for (size_t i = 0; i < l.n; i++)
                        if (strchr(l.v[i].name, '/'))
                                __builtin_trap(); /* a name is one path segment */
                lb_remote_list_clear(&l);
        }
        char code[64];
        (void) !lb_s3_parse_error(data, size, code, sizeof code);
        return 0;
}
