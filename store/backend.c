/* SPDX-License-Identifier: MIT */
#include "store/backend.h"
#include "store/location.h"

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

bool lb_obj_name_ok(const char *name) {
        /* Object names are ours (hex ids); refuse anything that could escape. */
        if (!*name || strlen(name) > 128)
                return false;
        for (const char *c = name; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || *c == '-' || *c == '_'))
                        return false;
        return true;
}

char *lb_obj_path(LbObjType t, const char *name) {
        if (t == LB_OBJ_CONFIG)
                return strdup("config");
        if (t == LB_OBJ_PACK)
                return lb_strdup_printf("packs/%.2s/%s", name, name);
        return lb_strdup_printf("%s/%s", lb_obj_type_dir(t), name);
}

bool lb_obj_path_parse(LbObjType t, const char *rel, const char **ret_name) {
        const char *dir = lb_obj_type_dir(t);
        if (!dir || t == LB_OBJ_CONFIG)
                return false;
        size_t dl = strlen(dir);
        if (strncmp(rel, dir, dl) != 0 || rel[dl] != '/')
                return false;
        const char *name = rel + dl + 1;
        if (t == LB_OBJ_PACK) {
                /* packs/<first two characters>/<name> */
                if (strlen(name) < 3 || name[2] != '/' || strncmp(name, name + 3, 2) != 0)
                        return false;
                name += 3;
        }
        if (!lb_obj_name_ok(name))
                return false;
        *ret_name = name;
        return true;
}

static int range_cmp(const void *a, const void *b) {
        const LbRange *x = a, *y = b;
        if (x->off != y->off)
                return x->off < y->off ? -1 : 1;
        return x->len < y->len ? -1 : x->len > y->len;
}

size_t lb_ranges_coalesce(LbRange *v, size_t n, uint64_t gap) {
        lb_qsort(v, n, sizeof *v, range_cmp);
        size_t m = 0;
        uint64_t end = 0;   /* of v[m - 1] */
        for (size_t i = 0; i < n; i++) {
                if (v[i].len == 0)
                        continue;
                /* Ends are clamped, so a huge length cannot wrap around. */
                uint64_t e = v[i].len > UINT64_MAX - v[i].off ? UINT64_MAX : v[i].off + v[i].len;
                if (m > 0 && (v[i].off <= end || v[i].off - end <= gap)) {
                        if (e > end) {
                                end = e;
                                v[m - 1].len = end - v[m - 1].off;
                        }
                        continue;
                }
                v[m] = (LbRange) { .off = v[i].off, .len = e - v[i].off };
                end = e;
                m++;
        }
        return m;
}

int lb_backend_open(const char *location, LbBackend **ret) {
        if (!location || !*location)
                return -EINVAL;
        if (strncmp(location, "sftp:", 5) == 0)
                return -EPROTONOSUPPORT;
        LbLocation loc;
        int k = lb_location_parse(location, &loc);
        if (k < 0)
                return k;
        switch (loc.kind) {
        case LB_LOC_S3:
                k = lb_backend_s3_open(&loc, location, ret);
                break;
        case LB_LOC_WEBDAV:
                k = lb_backend_webdav_open(&loc, location, ret);
                break;
        case LB_LOC_RCLONE:
                k = lb_backend_rclone_open(&loc, location, ret);
                break;
        default:
                k = lb_backend_dir_open(loc.path, ret);
                break;
        }
        lb_location_clear(&loc);
        return k;
}

LbBackend *lb_backend_free(LbBackend *b) {
        if (b)
                b->free(b);
        return NULL;
}
