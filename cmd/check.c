/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"
#include "cmd/progress.h"
#include "store/check.h"

static const char help[] =
        "Usage: longbox check [--read-data]\n"
        "\n"
        "Checks the repository: config and key slots, every snapshot and tree, that\n"
        "every chunk they need is indexed and its pack exists with the right size,\n"
        "and that index files agree. With --read-data every pack is also read whole\n"
        "and every chunk decrypted and verified. Problems go to stderr, naming the\n"
        "damaged pack and the snapshots that need it; exit code 13 when there is any.\n"
        "\n"
        "Options:\n"
        "  --read-data   read and verify all data (reads the whole repository)\n";

enum {
        OPT_READ_DATA = OPT_FIRST_LOCAL,
};

static void on_report(void *userdata, const char *message) {
        cli_progress_interrupt();
        fprintf(stderr, "longbox: %s\n", message);
}

static void on_progress(void *userdata, const LbCheckProgress *p) {
        cli_progress_set_total(userdata, p->bytes_total);
        cli_progress_set_items(userdata, p->packs_done, p->packs_total, "packs");
        cli_progress_update(userdata, p->bytes_done, p->pack);
}

static void on_info(void *userdata, const char *message) {
        cli_info("%s\n", message);
        fflush(stdout);
}

int cmd_check(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "read-data", no_argument, NULL, OPT_READ_DATA },
                {},
        };
        LbCheckOptions o = { .report = on_report, .info = on_info };
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_READ_DATA:
                        o.read_data = true;
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
        int code = cli_open_repo(CLI_OPEN_INDEX | CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;

        LbCheckResult res = {};
        CliProgress *pr = o.read_data ? cli_progress_new("check") : NULL;
        if (pr) {
                o.progress = on_progress;
                o.userdata = pr;
        }
        int k = lb_check_run(r, &o, &res);
        pr = cli_progress_free(pr);
        if (k < 0)
                return cli_fail(k, "check repository %s", cli.repo);

        if (cli.json) {
                _cleanup_json_ json_object *j = json_object_new_object();
                json_object_object_add(j, "message_type", json_object_new_string("summary"));
                json_object_object_add(j, "snapshots", json_object_new_uint64(res.snapshots));
                json_object_object_add(j, "trees", json_object_new_uint64(res.trees));
                json_object_object_add(j, "blobs_referenced", json_object_new_uint64(res.blobs_referenced));
                json_object_object_add(j, "packs", json_object_new_uint64(res.packs));
                json_object_object_add(j, "packs_read", json_object_new_uint64(res.packs_read));
                json_object_object_add(j, "unreferenced_packs", json_object_new_uint64(res.unreferenced_packs));
                json_object_object_add(j, "errors", json_object_new_uint64(res.errors));
                cli_json_print(j);
        } else
                cli_info("checked %" PRIu64 " snapshots, %" PRIu64 " trees, %" PRIu64 " blobs, %" PRIu64
                         " packs (%" PRIu64 " read)\n",
                         res.snapshots, res.trees, res.blobs_referenced, res.packs, res.packs_read);
        if (res.unreferenced_packs > 0 && !cli.json)
                cli_info("%" PRIu64 " pack%s no snapshot needs (harmless leftovers, e.g. of an interrupted backup)\n",
                         res.unreferenced_packs, res.unreferenced_packs == 1 ? "" : "s");
        if (res.errors > 0)
                return cli_error(CLI_EXIT_CORRUPT, "check found %" PRIu64 " error%s in %s: the repository is damaged "
                                 "(see above); the snapshots named need the damaged data",
                                 res.errors, res.errors == 1 ? "" : "s", cli.repo);
        if (!cli.json)
                cli_info("no errors were found\n");
        return CLI_EXIT_OK;
}
