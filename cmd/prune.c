/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <malloc.h>

#include "cmd/common.h"
#include "cmd/progress.h"
#include "store/prune.h"

static const char help[] =
        "Usage: longbox prune [--max-unused PERCENT] [--dry-run]\n"
        "\n"
        "Removes the data no snapshot uses any more (after forget). Packs with no\n"
        "blob in use are deleted; packs in which unused blobs take more than\n"
        "PERCENT of the space are repacked: their live blobs are copied into new\n"
        "packs, then they are deleted. Also removes leftovers of interrupted\n"
        "backups and prunes. Memory stays bounded: the set of live blobs is kept\n"
        "in a file in the cache, not in memory.\n"
        "\n"
        "Backups may run while prune marks and copies; for its last step (new\n"
        "index files, then deletions) prune takes the exclusive lock, waiting for\n"
        "running backups to end (up to --lock-wait), and backups that start then\n"
        "wait for it. A crash or kill at any point leaves every snapshot intact;\n"
        "running prune again finishes the job.\n"
        "\n"
        "Options:\n"
        "  --max-unused PERCENT   repack packs with more unused space than this\n"
        "                         (0-100, default 10; 100 repacks only packs\n"
        "                         holding an unused delta chunk)\n"
        "  --dry-run              print what would be removed; change nothing\n"
        "  --json                 print the summary as one JSON object\n";

enum {
        OPT_MAX_UNUSED = OPT_FIRST_LOCAL,
        OPT_DRY_RUN,
};

static void prune_info(void *userdata, const char *message) {
        if (!cli.quiet && !cli.json) {
                cli_progress_interrupt();
                fprintf(stderr, "prune: %s\n", message);
        }
}

static void prune_progress(void *userdata, uint64_t bytes_done, uint64_t bytes_total, uint64_t packs_done,
                           uint64_t packs_total, const char *pack) {
        cli_progress_set_total(userdata, bytes_total);
        cli_progress_set_items(userdata, packs_done, packs_total, "packs");
        cli_progress_update(userdata, bytes_done, pack);
}

static void print_result(const LbPruneResult *res, bool dry_run) {
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
#define U(name) json_object_object_add(o, #name, json_object_new_uint64(res->name))
                json_object_object_add(o, "message_type", json_object_new_string("summary"));
                json_object_object_add(o, "dry_run", json_object_new_boolean(dry_run));
                U(snapshots);
                U(blobs);
                U(blobs_live);
                U(packs);
                U(bytes);
                U(packs_deleted);
                U(packs_repacked);
                U(packs_written);
                U(packs_busy);
                U(packs_damaged);
                U(packs_unindexed);
                U(bytes_deleted);
                U(bytes_written);
                U(index_files_removed);
                U(index_files_written);
                U(temporaries_removed);
#undef U
                json_object_object_add(o, "seconds", json_object_new_double((double) res->total_ns / 1e9));
                json_object_object_add(o, "exclusive_seconds", json_object_new_double((double) res->exclusive_ns / 1e9));
                cli_json_print(o);
                return;
        }
        char total[32], del[32], wr[32], t[32], tx[32];
        cli_format_bytes(res->bytes, total);
        cli_format_bytes(res->bytes_deleted, del);
        cli_format_bytes(res->bytes_written, wr);
        cli_format_duration((double) res->total_ns / 1e9, t);
        cli_format_duration((double) res->exclusive_ns / 1e9, tx);
        cli_info("%" PRIu64 " snapshot%s use %" PRIu64 " of %" PRIu64 " blobs in %" PRIu64 " pack%s (%s)\n",
                 res->snapshots, res->snapshots == 1 ? "" : "s", res->blobs_live, res->blobs, res->packs,
                 res->packs == 1 ? "" : "s", total);
        if (dry_run) {
                cli_info("dry run: would delete %" PRIu64 " pack%s with nothing in use and repack %" PRIu64
                         " (up to %s freed); nothing was changed\n",
                         res->packs_deleted, res->packs_deleted == 1 ? "" : "s", res->packs_repacked, del);
                return;
        }
        cli_info("deleted %" PRIu64 " pack%s with nothing in use, repacked %" PRIu64 " into %" PRIu64
                 " new (%s), removed %" PRIu64 " leftover%s\n",
                 res->packs_deleted, res->packs_deleted == 1 ? "" : "s", res->packs_repacked, res->packs_written, wr,
                 res->packs_unindexed, res->packs_unindexed == 1 ? "" : "s");
        if (res->packs_busy)
                cli_info("kept %" PRIu64 " pack%s that snapshots written during prune (or the deltas that stay) "
                         "use\n", res->packs_busy,
                         res->packs_busy == 1 ? "" : "s");
        if (res->packs_damaged)
                cli_info("kept %" PRIu64 " pack%s that could not be read whole: run 'longbox check --read-data'\n",
                         res->packs_damaged, res->packs_damaged == 1 ? "" : "s");
        cli_info("freed %s in %s (%s with the exclusive lock)\n", del, t, tx);
}

int cli_prune(LbRepo *r, unsigned max_unused, bool dry_run, const LbId *ignore, size_t n_ignore) {
        if (!r->lock_name[0]) {
                int code = cli_lock(r, false);
                if (code)
                        return code;
        }
        int k = lb_repo_index_update(r);
        if (k < 0)
                return cli_fail(k, "update the local index of %s (try 'longbox index rebuild')", cli.repo);
        LbPruneOptions o = {
                .max_unused_percent = max_unused,
                .dry_run = dry_run,
                .lock_wait_ns = cli_lock_wait_ns(),
                .info = prune_info,
                .ignore_snapshots = ignore,
                .n_ignore_snapshots = n_ignore,
        };
        LbPruneResult res;
        _cleanup_free_ char *error = NULL;
        /* Prune's memory must stay bounded: buffers of a MiB or more (packs,
         * index files) come straight from mmap and go back to the system
         * when freed. By default glibc raises that threshold to the largest
         * buffer freed so far, then keeps freed buffers in its heaps (one
         * per thread) that the next ones do not always fit. */
        (void) mallopt(M_MMAP_THRESHOLD, 1 << 20);
        CliProgress *pr = cli_progress_new("prune");
        if (pr) {
                o.progress = prune_progress;
                o.userdata = pr;
        }
        k = lb_prune_run(r, &o, &res, &error);
        pr = cli_progress_free(pr);
        if (k == -EWOULDBLOCK)
                return cli_lock_failed(r, k);
        if (k == -EBADMSG)
                return cli_error(CLI_EXIT_CORRUPT, "Failed to prune %s: %s", cli.repo,
                                 error ? error : "the repository is damaged; run 'longbox check'");
        if (k < 0) {
                if (error)
                        return cli_error(cli_exit_code(k), "Failed to prune %s: %s", cli.repo, error);
                return cli_fail(k, "prune %s", cli.repo);
        }
        print_result(&res, dry_run);
        return CLI_EXIT_OK;
}

int cli_parse_max_unused(const char *s, unsigned *ret) {
        long long v;
        if (cli_parse_int(s, 0, 100, &v) < 0)
                return cli_usage_error("--max-unused needs a percentage from 0 to 100, got '%s'", s);
        *ret = (unsigned) v;
        return 0;
}

int cmd_prune(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
                { "dry-run", no_argument, NULL, OPT_DRY_RUN },
                {},
        };
        unsigned max_unused = LB_PRUNE_MAX_UNUSED_DEFAULT;
        bool dry_run = false;
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_MAX_UNUSED: {
                        int code = cli_parse_max_unused(optarg, &max_unused);
                        if (code)
                                return code;
                        break;
                }
                case OPT_DRY_RUN:
                        dry_run = true;
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
        int code = cli_open_repo(CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;
        return cli_prune(r, max_unused, dry_run, NULL, 0);
}
