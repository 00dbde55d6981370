/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: location strings. An accepted S3 location has a valid
 * bucket and a prefix without empty or dot segments; nothing crashes.
 */
#include "store/location.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        LbLocation l;
        if (lb_location_parse(s, &l) == 0) {
                if (l.kind == LB_LOC_S3 && (!l.bucket || strlen(l.bucket) < 3 || strstr(l.prefix, "//") ||
                                            strstr(l.prefix, "..") == l.prefix))
                        __builtin_trap();
                if ((l.kind == LB_LOC_S3 || l.kind == LB_LOC_WEBDAV) && (!l.host || !*l.host))
                        __builtin_trap();
                lb_location_clear(&l);
        }
        free(s);
        return 0;
}
