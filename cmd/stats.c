/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"

static const char help[] =
        "Usage: longbox stats [--json]\n"
        "\n"
        "Shows the size of the repository: the logical size of all snapshots\n"
        "(total_size, the bytes their backups read), the bytes stored after\n"
        "deduplication, compression and encryption (total_stored_size), their ratio\n"
        "(dedup_ratio), and the number of chunks, packs and snapshots.\n";

static int count_pack(const LbId *pack, uint64_t size, void *userdata) {
        uint64_t *n = userdata;
        (*n)++;
        return 0;
}

int cmd_stats(int argc, char **argv) {
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
        if (optind < argc)
                return cli_usage_error("unexpected argument '%s'", argv[optind]);

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX, &r);
        if (code)
                return code;

        uint64_t blobs = 0, stored = 0, packs = 0, total = 0;
        int k = lb_repo_index_totals(r, &blobs, &stored);
        if (k < 0)
                return cli_fail(k, "read the index of %s", cli.repo);
        k = lb_repo_index_packs(r, count_pack, &packs);
        if (k < 0)
                return cli_fail(k, "read the index of %s", cli.repo);
        LbSnapshot **snaps = NULL;
        size_t n = 0;
        k = lb_repo_snapshot_list(r, &snaps, &n);
        if (k < 0)
                return cli_fail(k, "list the snapshots of %s", cli.repo);
        for (size_t i = 0; i < n; i++)
                total += snaps[i]->stats.bytes_read;
        lb_snapshots_free(snaps, n);
        double ratio = stored ? (double) total / (double) stored : 0.0;

        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "total_size", json_object_new_uint64(total));
                json_object_object_add(o, "total_stored_size", json_object_new_uint64(stored));
                json_object_object_add(o, "dedup_ratio", json_object_new_double(ratio));
                json_object_object_add(o, "chunk_count", json_object_new_uint64(blobs));
                json_object_object_add(o, "pack_count", json_object_new_uint64(packs));
                json_object_object_add(o, "snapshots_count", json_object_new_uint64(n));
                cli_json_print(o);
                return CLI_EXIT_OK;
        }
        char t[32], s[32];
        cli_format_bytes(total, t);
        cli_format_bytes(stored, s);
        printf("snapshots:         %zu\n"
               "total size:        %s (%" PRIu64 " bytes, all snapshots)\n"
               "stored size:       %s (%" PRIu64 " bytes, after dedup and compression)\n"
               "dedup ratio:       %.2f\n"
               "chunks:            %" PRIu64 "\n"
               "packs:             %" PRIu64 "\n",
               n, t, total, s, stored, ratio, blobs, packs);
        return CLI_EXIT_OK;
}
