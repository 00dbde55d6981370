/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"
#include "store/crypto.h"
#include "store/walk.h"

static const char help[] =
        "Usage: longbox dump SNAPSHOT PATH\n"
        "\n"
        "Writes the content of file PATH in SNAPSHOT (\"latest\" or an id prefix) to\n"
        "standard output. Every chunk is verified before it is written: on a damaged\n"
        "chunk longbox stops with exit code 13 and names the chunk; the bytes written\n"
        "before it are correct, and nothing wrong is ever written.\n";

typedef struct DumpCtx {
        int fd;
        int write_error;
} DumpCtx;

static int write_chunk(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        DumpCtx *d = userdata;
        int k = lb_write_all(d->fd, p, n);
        if (k < 0)
                d->write_error = k;
        return k;
}

int cmd_dump(int argc, char **argv) {
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
        int nargs = argc - optind;
        if (nargs != 2)
                return cli_usage_error("%s", nargs < 2 ? "give a SNAPSHOT and a PATH" : "too many arguments");
        const char *spec = argv[optind];
        _cleanup_free_ char *path = lb_snapshot_path_normalize(argv[optind + 1]);
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
                return cli_error(CLI_EXIT_ERROR, "Failed to dump %s: no %s in snapshot %s", path, path, spec);
        if (k < 0)
                return cli_fail(k, "look up %s in snapshot %s", path, spec);

        if (node.type != LB_NODE_FILE) {
                bool dir = node.type == LB_NODE_DIR;
                lb_node_clear(&node);
                if (dir)
                        return cli_error(CLI_EXIT_ERROR, "Failed to dump %s: %s is a directory; dump writes one file "
                                         "(use 'longbox restore --include %s' for a directory)", path, path, path);
                return cli_error(CLI_EXIT_ERROR, "Failed to dump %s: %s is not a regular file", path, path);
        }

        DumpCtx d = { .fd = STDOUT_FILENO };
        LbContentFailure failure = {};
        fflush(stdout);
        k = lb_content_foreach_full(r, &node, write_chunk, &d, &failure);
        lb_node_clear(&node);
        if (k == 0)
                return CLI_EXIT_OK;
        if (d.write_error)
                return cli_fail(k, "write %s to standard output", path);
        if (failure.has_id) {
                char id[2 * LB_ID_SIZE + 1];
                lb_id_hex(&failure.id, id);
                const char *what = failure.is_list ? "chunk list" : "chunk";
                if (k == -ENOENT)
                        return cli_error(CLI_EXIT_CORRUPT, "Failed to dump %s: %s %s (at offset %" PRIu64 ") is missing "
                                         "from the repository; run 'longbox check'", path, what, id, failure.offset);
                if (k == -EBADMSG)
                        return cli_error(CLI_EXIT_CORRUPT, "Failed to dump %s: %s %s (at offset %" PRIu64 ") is "
                                         "damaged; the bytes before it were written, nothing after; run 'longbox check "
                                         "--read-data'", path, what, id, failure.offset);
                return cli_fail(k, "dump %s: could not read %s %s", path, what, id);
        }
        return cli_fail(k, "dump %s from snapshot %s", path, spec);
}
