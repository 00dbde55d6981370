/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"

static const char help[] =
        "Usage: longbox index rebuild [--from-packs]\n"
        "\n"
        "Rebuilds the local index (chunk -> pack) from scratch, from the repository's\n"
        "index files, or with --from-packs from the tables of contents of the packs\n"
        "themselves (and then writes fresh index files). When the repository has no\n"
        "index files at all, it is rebuilt from the packs. Takes an exclusive lock.\n"
        "\n"
        "Options:\n"
        "  --from-packs   read every pack's table of contents instead of the index files\n";

enum {
        OPT_FROM_PACKS = OPT_FIRST_LOCAL,
};

static int count_pack(const LbId *pack, uint64_t size, void *userdata) {
        (*(uint64_t *) userdata)++;
        return 0;
}

static int count_file(const char *name, uint64_t size, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

int cmd_index(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "from-packs", no_argument, NULL, OPT_FROM_PACKS },
                {},
        };
        bool from_packs = false;
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_FROM_PACKS:
                        from_packs = true;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        if (optind >= argc)
                return cli_usage_error("missing the index command: rebuild");
        if (strcmp(argv[optind], "rebuild") != 0)
                return cli_usage_error("unknown index command '%s': use rebuild", argv[optind]);
        cli.command = "index rebuild";
        if (optind + 1 < argc)
                return cli_usage_error("unexpected argument '%s'", argv[optind + 1]);

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_LOCK_EXCLUSIVE, &r);
        if (code)
                return code;
        /* With no index file left there is nothing to rebuild from but the packs. */
        bool fallback = false;
        if (!from_packs) {
                unsigned files = 0;
                int k = r->be->list(r->be, LB_OBJ_INDEX, count_file, &files);
                if (k < 0)
                        return cli_fail(k, "list the index files of %s", cli.repo);
                fallback = from_packs = files == 0;
        }
        if (fallback)
                cli_info("%s has no index files: rebuilding from the packs\n", cli.repo);

        unsigned packs = 0;
        int k = lb_repo_index_rebuild(r, from_packs, &packs);
        if (k == -EBADMSG && from_packs)
                return cli_error(CLI_EXIT_CORRUPT, "Failed to rebuild the index of %s completely: some packs have a "
                                 "damaged table of contents and were left out; the old index files were kept. "
                                 "Run 'longbox check --read-data' to see which", cli.repo);
        if (k < 0)
                return cli_fail(k, "rebuild the index of %s from its %s", cli.repo, from_packs ? "packs" : "index files");
        /* Count what the index now holds (the rebuild from index files does not say). */
        uint64_t indexed = 0, blobs = 0, stored = 0;
        k = lb_repo_index_packs(r, count_pack, &indexed);
        if (k == 0)
                k = lb_repo_index_totals(r, &blobs, &stored);
        if (k < 0)
                return cli_fail(k, "read the rebuilt index of %s", cli.repo);
        packs = (unsigned) indexed;
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "packs", json_object_new_uint64(packs));
                json_object_object_add(o, "blobs", json_object_new_uint64(blobs));
                json_object_object_add(o, "from_packs", json_object_new_boolean(from_packs));
                cli_json_print(o);
        } else
                cli_info("index rebuilt from %s: %u packs, %" PRIu64 " blobs\n",
                         from_packs ? "the packs" : "the index files", packs, blobs);
        return CLI_EXIT_OK;
}
