/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"
#include "store/walk.h"

static const char help[] =
        "Usage: longbox ls [OPTIONS] SNAPSHOT [PATH]\n"
        "\n"
        "Lists the entries of a snapshot (\"latest\" or an id prefix), recursively,\n"
        "one absolute path per line; with PATH, only that path and what is below it.\n"
        "\n"
        "Options:\n"
        "  -l, --long   also show mode, size and modification time (local)\n"
        "  --json       one JSON object per line: struct_type \"node\", name, type,\n"
        "               path, size, mode, permissions, mtime, uid, gid\n";

enum {
        OPT_LONG = 'l',
};

typedef struct LsCtx {
        bool long_format;
} LsCtx;

static void print_node(const LsCtx *c, const char *path, const LbNode *n) {
        if (cli.json) {
                char t[48], perm[11];
                cli_format_rfc3339_local(n->mtime_ns, t);
                cli_format_mode(n, perm);
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(n->name));
                json_object_object_add(o, "type", json_object_new_string(cli_node_type_name(n->type)));
                json_object_object_add(o, "path", json_object_new_string(path));
                json_object_object_add(o, "uid", json_object_new_uint64(n->uid));
                json_object_object_add(o, "gid", json_object_new_uint64(n->gid));
                if (n->user)
                        json_object_object_add(o, "user", json_object_new_string(n->user));
                if (n->group)
                        json_object_object_add(o, "group", json_object_new_string(n->group));
                if (n->type == LB_NODE_FILE)
                        json_object_object_add(o, "size", json_object_new_uint64(n->size));
                if (n->type == LB_NODE_SYMLINK && n->link)
                        json_object_object_add(o, "link_target", json_object_new_string(n->link));
                if (n->type == LB_NODE_CHARDEV || n->type == LB_NODE_BLOCKDEV)
                        json_object_object_add(o, "device", json_object_new_uint64(n->rdev));
                json_object_object_add(o, "mode", json_object_new_int64(n->mode & 07777));
                json_object_object_add(o, "permissions", json_object_new_string(perm));
                json_object_object_add(o, "mtime", json_object_new_string(t));
                json_object_object_add(o, "struct_type", json_object_new_string("node"));
                cli_json_print(o);
                return;
        }
        if (!c->long_format) {
                puts(path);
                return;
        }
        char mode[11], t[32];
        cli_format_mode(n, mode);
        cli_format_local_time(n->mtime_ns, t);
        printf("%s %12" PRIu64 " %s %s%s%s\n", mode, n->type == LB_NODE_FILE ? n->size : 0, t, path,
               n->type == LB_NODE_SYMLINK ? " -> " : "", n->type == LB_NODE_SYMLINK && n->link ? n->link : "");
}

static int on_node(const char *path, const LbNode *n, void *userdata) {
        print_node(userdata, path, n);
        return 0;
}

int cmd_ls(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "long", no_argument, NULL, OPT_LONG },
                {},
        };
        LsCtx ctx = {};
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":l" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_LONG:
                        ctx.long_format = true;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        int nargs = argc - optind;
        if (nargs < 1)
                return cli_usage_error("missing the SNAPSHOT (an id prefix or \"latest\")");
        if (nargs > 2)
                return cli_usage_error("too many arguments: give SNAPSHOT and at most one PATH");
        const char *spec = argv[optind];
        _cleanup_free_ char *path = lb_snapshot_path_normalize(nargs == 2 ? argv[optind + 1] : "/");
        if (!path)
                return cli_fail(-ENOMEM, "parse the path");

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX, &r);
        if (code)
                return code;
        _cleanup_snapshot_ LbSnapshot *s = NULL;
        code = cli_find_snapshot(r, spec, &s);
        if (code)
                return code;

        LbNode node = {};
        int k = lb_snapshot_lookup_path(r, s, path, &node);
        if (k == -ENOENT || k == -ENOTDIR)
                return cli_error(CLI_EXIT_ERROR, "Failed to list %s: no %s in snapshot %s", path, path, spec);
        if (k < 0)
                return cli_fail(k, "look up %s in snapshot %s", path, spec);

        if (strcmp(path, "/") != 0)
                print_node(&ctx, path, &node);
        if (node.type == LB_NODE_DIR && node.has_subtree) {
                k = lb_walk(r, &node.subtree, path, on_node, &ctx);
                if (k < 0) {
                        lb_node_clear(&node);
                        return cli_fail(k, "list %s in snapshot %s", path, spec);
                }
        }
        lb_node_clear(&node);
        return CLI_EXIT_OK;
}
