/* SPDX-License-Identifier: MIT */
#include "cmd/common.h"

static const char help[] =
        "Usage: longbox unlock [--remove-all]\n"
        "\n"
        "Removes stale locks: those of processes on this host that no longer run.\n"
        "\n"
        "Options:\n"
        "  --remove-all   remove every lock, also those of running processes or other\n"
        "                 hosts: only when you know no other longbox uses the repository\n";

enum {
        OPT_REMOVE_ALL = OPT_FIRST_LOCAL,
};

int cmd_unlock(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "remove-all", no_argument, NULL, OPT_REMOVE_ALL },
                {},
        };
        bool all = false;
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_REMOVE_ALL:
                        all = true;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        if (optind < argc)
                return cli_usage_error("unexpected argument '%s'", argv[optind]);

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(0, &r);
        if (code)
                return code;
        unsigned removed = 0;
        int k = lb_repo_remove_locks(r, all, &removed);
        if (k < 0)
                return cli_fail(k, "remove the locks of %s", cli.repo);
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "removed", json_object_new_uint64(removed));
                cli_json_print(o);
        } else
                cli_info("removed %u lock%s\n", removed, removed == 1 ? "" : "s");
        return CLI_EXIT_OK;
}
