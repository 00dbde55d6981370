/* SPDX-License-Identifier: MIT */
#include "store/backend.h"

const char *lb_obj_type_dir(LbObjType t) {
        switch (t) {
        case LB_OBJ_CONFIG:
                return "";
        case LB_OBJ_KEY:
                return "keys";
        case LB_OBJ_PACK:
                return "packs";
        case LB_OBJ_INDEX:
                return "index";
        case LB_OBJ_SNAPSHOT:
                return "snapshots";
        case LB_OBJ_LOCK:
                return "locks";
        case LB_OBJ_EVENT:
                return "events";
        default:
                return NULL;
        }
}

int lb_backend_open(const char *location, LbBackend **ret) {
        if (!location || !*location)
                return -EINVAL;
        if (strncmp(location, "dir:", 4) == 0)
                return lb_backend_dir_open(location + 4, ret);
        /* Anything that looks like "scheme:..." with a known remote scheme
         * belongs to a later backend; refuse rather than make a directory. */
        static const char *const remote[] = { "s3:", "webdav:", "rclone:", "sftp:" };
        for (size_t i = 0; i < LB_ARRAY_SIZE(remote); i++)
                if (strncmp(location, remote[i], strlen(remote[i])) == 0)
                        return -EPROTONOSUPPORT;
        return lb_backend_dir_open(location, ret);
}

LbBackend *lb_backend_free(LbBackend *b) {
        if (b)
                b->free(b);
        return NULL;
}
