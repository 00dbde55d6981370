/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"
#include "store/restore.h"
#include "store/walk.h"

static const char help[] =
        "Usage: longbox restore SNAPSHOT --target DIR [--include PATH]...\n"
        "\n"
        "Restores SNAPSHOT (\"latest\" or an id prefix) into DIR: each absolute path\n"
        "of the snapshot is recreated below DIR (/srv/a.txt -> DIR/srv/a.txt) with\n"
        "its mode, owner (when run as root), and modification time. A file is written\n"
        "under a temporary name and renamed only once all its content was verified,\n"
        "so a damaged chunk never leaves wrong bytes under a real name: that file is\n"
        "reported and skipped, and the restore goes on.\n"
        "\n"
        "Options:\n"
        "  --target DIR     where to restore (created if missing); required\n"
        "  --include PATH   restore only PATH and what is below it, plus its parent\n"
        "                   directories (repeatable)\n"
        "  --json           print the summary as one JSON object\n"
        "\n"
        "Exit code 13 when a file failed because of damaged or missing data, 1 when\n"
        "one failed for another reason (the others are restored in both cases).\n";

enum {
        OPT_TARGET = OPT_FIRST_LOCAL,
        OPT_INCLUDE,
};

static void on_warn(void *userdata, const char *path, int err) {
        fprintf(stderr, "longbox: Failed to restore %s: %s\n", path, cli_strerror(err));
}

int cmd_restore(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "target", required_argument, NULL, OPT_TARGET },
                { "include", required_argument, NULL, OPT_INCLUDE },
                {},
        };
        const char *target = NULL;
        _cleanup_free_ const char **includes = calloc((size_t) argc, sizeof *includes);
        size_t n_includes = 0;
        if (!includes)
                return cli_fail(-ENOMEM, "parse the arguments");

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_TARGET:
                        if (!*optarg)
                                return cli_usage_error("--target needs a directory");
                        target = optarg;
                        break;
                case OPT_INCLUDE:
                        if (!*optarg)
                                return cli_usage_error("--include needs a path");
                        includes[n_includes++] = optarg;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        int nargs = argc - optind;
        if (nargs != 1)
                return cli_usage_error("%s", nargs == 0 ? "missing the SNAPSHOT (an id prefix or \"latest\")"
                                                        : "too many arguments: give one SNAPSHOT");
        if (!target)
                return cli_usage_error("missing --target DIR");
        const char *spec = argv[optind];

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX | CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;
        _cleanup_snapshot_ LbSnapshot *s = NULL;
        code = cli_find_snapshot(r, spec, &s);
        if (code)
                return code;

        /* Every include must name something, or the user mistyped it. */
        for (size_t i = 0; i < n_includes; i++) {
                _cleanup_free_ char *p = lb_snapshot_path_normalize(includes[i]);
                if (!p)
                        return cli_fail(-ENOMEM, "parse the path");
                LbNode node = {};
                int k = lb_snapshot_lookup_path(r, s, p, &node);
                if (k == -ENOENT || k == -ENOTDIR)
                        return cli_error(CLI_EXIT_ERROR, "Failed to restore %s: no %s in snapshot %s", p, p, spec);
                if (k < 0)
                        return cli_fail(k, "look up %s in snapshot %s", p, spec);
                lb_node_clear(&node);
        }

        LbRestoreOptions o = {
                .target = target,
                .includes = includes,
                .n_includes = n_includes,
                .warn = on_warn,
        };
        LbRestoreStats st = {};
        int k = lb_restore_run(r, s, &o, &st);

        char bytes[32];
        cli_format_bytes(st.bytes, bytes);
        if (cli.json) {
                _cleanup_json_ json_object *j = json_object_new_object();
                json_object_object_add(j, "message_type", json_object_new_string("summary"));
                json_object_object_add(j, "files_restored", json_object_new_uint64(st.files));
                json_object_object_add(j, "dirs_restored", json_object_new_uint64(st.dirs));
                json_object_object_add(j, "symlinks_restored", json_object_new_uint64(st.symlinks));
                json_object_object_add(j, "specials_restored", json_object_new_uint64(st.specials));
                json_object_object_add(j, "bytes_restored", json_object_new_uint64(st.bytes));
                json_object_object_add(j, "errors", json_object_new_uint64(st.errors));
                json_object_object_add(j, "errors_damaged", json_object_new_uint64(st.errors_damaged));
                cli_json_print(j);
        } else
                cli_info("restored %" PRIu64 " files (%s), %" PRIu64 " dirs, %" PRIu64 " symlinks, %" PRIu64
                         " other entries to %s\n",
                         st.files, bytes, st.dirs, st.symlinks, st.specials, target);

        if (k == 0 && st.errors == 0)
                return CLI_EXIT_OK;
        if (st.errors_damaged > 0)
                return cli_error(CLI_EXIT_CORRUPT, "%" PRIu64 " entr%s could not be restored (see above), %" PRIu64
                                 " because the repository's data is damaged or missing; run 'longbox check --read-data'",
                                 st.errors, st.errors == 1 ? "y" : "ies", st.errors_damaged);
        return cli_error(CLI_EXIT_ERROR, "%" PRIu64 " entr%s could not be restored (see above)", st.errors,
                         st.errors == 1 ? "y" : "ies");
}
