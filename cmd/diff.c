/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"
#include "store/crypto.h"
#include "store/walk.h"

static const char help[] =
        "Usage: longbox diff SNAPSHOT1 SNAPSHOT2\n"
        "\n"
        "Shows what changed from SNAPSHOT1 to SNAPSHOT2 (\"latest\" or id prefixes),\n"
        "one path per line:\n"
        "  +    /path   added\n"
        "  -    /path   removed\n"
        "  M    /path   content or metadata (type, size, mode, owner, mtime, link\n"
        "               target) changed\n"
        "then a summary line. Unchanged directories are skipped without reading them.\n"
        "With --json, one object per line: {\"message_type\":\"change\",\"path\",\"modifier\"},\n"
        "then {\"message_type\":\"statistics\",\"added\",\"removed\",\"changed\"}.\n";

typedef struct DiffCtx {
        LbRepo *r;
        uint64_t added, removed, changed;
} DiffCtx;

static void print_change(DiffCtx *d, char mod, const char *path) {
        switch (mod) {
        case '+':
                d->added++;
                break;
        case '-':
                d->removed++;
                break;
        default:
                d->changed++;
                break;
        }
        if (cli.json) {
                char m[2] = { mod, 0 };
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "message_type", json_object_new_string("change"));
                json_object_object_add(o, "path", json_object_new_string(path));
                json_object_object_add(o, "modifier", json_object_new_string(m));
                cli_json_print(o);
        } else
                printf("%c    %s\n", mod, path);
}

typedef struct SideCtx {
        DiffCtx *d;
        char mod;
} SideCtx;

static int on_side(const char *path, const LbNode *n, void *userdata) {
        SideCtx *s = userdata;
        print_change(s->d, s->mod, path);
        return 0;
}

/* Everything below a directory that exists on one side only. */
static int one_side(DiffCtx *d, const LbNode *n, const char *path, char mod) {
        if (n->type != LB_NODE_DIR || !n->has_subtree)
                return 0;
        SideCtx s = { .d = d, .mod = mod };
        return lb_walk(d->r, &n->subtree, path, on_side, &s);
}

static int diff_trees(DiffCtx *d, const LbId *ta, const LbId *tb, const char *prefix, unsigned depth);

static int diff_nodes(DiffCtx *d, const LbNode *a, const LbNode *b, const char *path, unsigned depth) {
        if (lb_node_changed(a, b))
                print_change(d, 'M', path);
        bool adir = a->type == LB_NODE_DIR && a->has_subtree, bdir = b->type == LB_NODE_DIR && b->has_subtree;
        if (adir && bdir) {
                if (lb_id_cmp(&a->subtree, &b->subtree) == 0)
                        return 0; /* identical subtrees: nothing below changed */
                return diff_trees(d, &a->subtree, &b->subtree, path, depth + 1);
        }
        int k = adir ? one_side(d, a, path, '-') : 0;
        if (k == 0 && bdir)
                k = one_side(d, b, path, '+');
        return k;
}

static int diff_trees(DiffCtx *d, const LbId *ta, const LbId *tb, const char *prefix, unsigned depth) {
        if (depth >= LB_WALK_DEPTH_MAX)
                return -ELOOP;
        _cleanup_tree_ LbTree *a = NULL;
        _cleanup_tree_ LbTree *b = NULL;
        int k = lb_repo_load_tree(d->r, ta, &a);
        if (k == 0)
                k = lb_repo_load_tree(d->r, tb, &b);
        if (k < 0)
                return k;

        size_t i = 0, j = 0;
        while (i < a->n || j < b->n) {
                const LbNode *na = i < a->n ? &a->nodes[i] : NULL;
                const LbNode *nb = j < b->n ? &b->nodes[j] : NULL;
                int cmp = !na ? 1 : !nb ? -1 : strcmp(na->name, nb->name);
                const LbNode *n = cmp <= 0 ? na : nb;
                _cleanup_free_ char *path = lb_strdup_printf("%s/%s", prefix, n->name);
                if (!path)
                        return -ENOMEM;
                if (cmp < 0) {
                        print_change(d, '-', path);
                        k = one_side(d, na, path, '-');
                        i++;
                } else if (cmp > 0) {
                        print_change(d, '+', path);
                        k = one_side(d, nb, path, '+');
                        j++;
                } else {
                        k = diff_nodes(d, na, nb, path, depth);
                        i++;
                        j++;
                }
                if (k < 0)
                        return k;
        }
        return 0;
}

int cmd_diff(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                {},
        };
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                int k = cli_global_option(c, argv, help);
                if (k >= 0)
                        return k;
        }
        if (argc - optind != 2)
                return cli_usage_error("give two snapshots (id prefixes or \"latest\")");

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX, &r);
        if (code)
                return code;
        _cleanup_snapshot_ LbSnapshot *a = NULL;
        _cleanup_snapshot_ LbSnapshot *b = NULL;
        code = cli_find_snapshot(r, argv[optind], &a);
        if (code == 0)
                code = cli_find_snapshot(r, argv[optind + 1], &b);
        if (code)
                return code;

        DiffCtx d = { .r = r };
        int k = 0;
        if (lb_id_cmp(&a->tree, &b->tree) != 0)
                k = diff_trees(&d, &a->tree, &b->tree, "", 0);
        if (k < 0)
                return cli_fail(k, "compare snapshots %s and %s", argv[optind], argv[optind + 1]);

        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "message_type", json_object_new_string("statistics"));
                json_object_object_add(o, "added", json_object_new_uint64(d.added));
                json_object_object_add(o, "removed", json_object_new_uint64(d.removed));
                json_object_object_add(o, "changed", json_object_new_uint64(d.changed));
                cli_json_print(o);
        } else
                cli_info("\n%" PRIu64 " added, %" PRIu64 " removed, %" PRIu64 " changed\n", d.added, d.removed, d.changed);
        return CLI_EXIT_OK;
}
