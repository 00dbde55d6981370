/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <time.h>

#include "cmd/common.h"
#include "cmd/progress.h"
#include "store/http.h"
#include "store/location.h"
#include "store/sync.h"

static const char help[] =
        "Usage: longbox sync [--to LOCATION] [--delete] [OPTIONS]\n"
        "\n"
        "Copies the repository (--repo) to another location, usually off-site:\n"
        "everything the copy lacks, packs first, then index files, then snapshot\n"
        "files, so the copy is a consistent repository at every instant. The copy\n"
        "is the same repository (same id, same passphrases): any command can use it\n"
        "as --repo, and restore from it needs nothing but the passphrase. Running\n"
        "sync again after an interruption transfers only what is still missing.\n"
        "\n"
        "Options:\n"
        "  --to LOCATION      where to copy (s3:..., webdav:..., rclone:..., or a\n"
        "                     directory); default: env LONGBOX_REMOTE\n"
        "  --delete           also remove from the copy what the repository no longer\n"
        "                     has (after forget and prune): snapshot files first,\n"
        "                     packs last\n"
        "  --parallel N       transfers at once (default 4)\n"
        "\n"
        "Progress is shown on a terminal. The copy is locked while sync runs\n"
        "(exclusively with --delete).\n";

enum {
        OPT_TO = OPT_FIRST_LOCAL,
        OPT_DELETE,
        OPT_PARALLEL,
};

/* Where sync copies to when --to is absent. Hook for the config file: once
 * longbox reads one, its remote location is consulted here, after the
 * environment. */
/* LONGBOX_REMOTE, else [remote] location of the config file. */
static const char *default_remote(void) {
        const char *e = getenv("LONGBOX_REMOTE");
        return e && *e ? e : cli_config_remote();
}

/* Called from worker threads, one call at a time. */
static void on_progress(const LbSyncProgress *p, void *ud) {
        CliProgress *pr = ud;
        cli_progress_set_total(pr, p->bytes_total);
        cli_progress_set_items(pr, p->objects_done, p->objects_total, "objects");
        cli_progress_update(pr, p->bytes_done, NULL);
}

static int report_backend_error(int k, const char *to) {
        switch (k) {
        case -ENOKEY:
                return cli_error(CLI_EXIT_ERROR, "Failed to open %s: no S3 credentials; set AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY", to);
        case -EINVAL:
                return cli_error(CLI_EXIT_USAGE, "Failed to open %s: not a valid location; see 'longbox sync --help' "
                                 "and longbox(1) LOCATIONS", to);
        default:
                return cli_fail(k, "open %s", to);
        }
}

int cmd_sync(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "to", required_argument, NULL, OPT_TO },
                { "delete", no_argument, NULL, OPT_DELETE },
                { "parallel", required_argument, NULL, OPT_PARALLEL },
                {},
        };
        const char *to = NULL;
        LbSyncOptions o = {};

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_TO:
                        to = optarg;
                        break;
                case OPT_DELETE:
                        o.delete_extra = true;
                        break;
                case OPT_PARALLEL: {
                        long long v;
                        if (cli_parse_int(optarg, 1, 64, &v) < 0)
                                return cli_usage_error("--parallel needs a number from 1 to 64, got '%s'", optarg);
                        o.parallel = (unsigned) v;
                        break;
                }
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        if (optind < argc)
                return cli_usage_error("unexpected argument '%s'", argv[optind]);
        if (!to)
                to = default_remote();
        if (!to)
                return cli_usage_error("no destination: use --to LOCATION, set LONGBOX_REMOTE, or set location "
                                       "in [remote] of the config file");
        int cred = cli_config_remote_credentials();
        if (cred)
                return cred;

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;
        if (strcmp(to, cli.repo) == 0)
                return cli_usage_error("--to names the repository itself (%s)", to);

        int64_t t0 = lb_mono_ns();
        uint64_t req0 = lb_http_requests_total();
        LbBackend *be = NULL;
        int k = lb_backend_open(to, &be);
        if (k < 0)
                return report_backend_error(k, to);
        LbSyncStats st = {};
        k = lb_sync_prepare(r->be, be, &st);
        if (k < 0) {
                lb_backend_free(be);
                switch (k) {
                case -EEXIST:
                        return cli_error(CLI_EXIT_ERROR, "Failed to sync to %s: it holds another longbox repository "
                                         "(a different id); choose another location", to);
                case -ENOTEMPTY:
                        return cli_error(CLI_EXIT_ERROR, "Failed to sync to %s: it is not empty and holds no longbox "
                                         "repository; choose an empty location", to);
                case -ENXIO:
                        return cli_error(CLI_EXIT_ERROR, "Failed to sync to %s: the bucket or folder does not exist; "
                                         "create it first", to);
                case -EACCES:
                        return cli_error(CLI_EXIT_ERROR, "Failed to sync to %s: the server refused the credentials; "
                                         "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the WebDAV user and "
                                         "LONGBOX_WEBDAV_PASSWORD", to);
                default:
                        return cli_fail(k, "prepare %s for sync", to);
                }
        }
        _cleanup_repo_ LbRepo *peer = NULL;
        k = lb_sync_open_peer(r, be, &peer);
        if (k < 0)
                return cli_fail(k, "open %s", to);
        k = lb_repo_lock(peer, o.delete_extra, 0);
        if (k == -EWOULDBLOCK) {
                _cleanup_free_ char *holder = lb_repo_lock_holder(peer);
                return cli_error(CLI_EXIT_LOCKED, "Failed to lock %s: there is %s; wait for it to finish, or if the "
                                 "process is gone run 'longbox unlock --repo %s'", to, holder ? holder : "another process", to);
        }
        if (k < 0)
                return cli_fail(k, "lock %s", to);

        CliProgress *pr = cli_progress_new("sync");
        if (pr) {
                o.progress = on_progress;
                o.userdata = pr;
        }
        k = lb_sync_run(r->be, peer->be, &o, &st);
        pr = cli_progress_free(pr);
        double secs = (double) (lb_mono_ns() - t0) / 1e9;
        uint64_t requests = lb_http_requests_total() - req0;
        if (k < 0 && k != -EBADMSG)
                return cli_fail(k, "sync to %s (run it again to resume)", to);

        if (cli.json) {
                _cleanup_json_ json_object *j = json_object_new_object();
                json_object *cp = json_object_new_object(), *del = json_object_new_object();
                static const struct {
                        LbObjType t;
                        const char *name;
                } kinds[] = { { LB_OBJ_PACK, "packs" },         { LB_OBJ_INDEX, "index" }, { LB_OBJ_SNAPSHOT, "snapshots" },
                              { LB_OBJ_KEY, "keys" },           { LB_OBJ_CONFIG, "config" },
                              { LB_OBJ_EVENT, "events" } };
                for (size_t i = 0; i < LB_ARRAY_SIZE(kinds); i++) {
                        json_object_object_add(cp, kinds[i].name, json_object_new_int64((int64_t) st.copied[kinds[i].t]));
                        json_object_object_add(del, kinds[i].name, json_object_new_int64((int64_t) st.deleted[kinds[i].t]));
                }
                json_object_object_add(j, "message_type", json_object_new_string("sync"));
                json_object_object_add(j, "to", json_object_new_string(to));
                json_object_object_add(j, "created", json_object_new_boolean(st.created));
                json_object_object_add(j, "copied", cp);
                json_object_object_add(j, "deleted", del);
                json_object_object_add(j, "present", json_object_new_int64((int64_t) st.present));
                json_object_object_add(j, "bytes_copied", json_object_new_int64((int64_t) st.bytes_copied));
                json_object_object_add(j, "damaged", json_object_new_int64((int64_t) st.damaged));
                json_object_object_add(j, "requests", json_object_new_int64((int64_t) requests));
                json_object_object_add(j, "seconds", json_object_new_double(secs));
                cli_json_print(j);
        } else {
                char bytes[32];
                cli_format_bytes(st.bytes_copied, bytes);
                cli_info("synced to %s%s: %" PRIu64 " packs, %" PRIu64 " index files, %" PRIu64
                         " snapshots copied (%s), %" PRIu64 " already there",
                         to, st.created ? " (new copy)" : "", st.copied[LB_OBJ_PACK], st.copied[LB_OBJ_INDEX],
                         st.copied[LB_OBJ_SNAPSHOT], bytes, st.present);
                if (o.delete_extra)
                        cli_info("; deleted %" PRIu64 " snapshots, %" PRIu64 " index files, %" PRIu64 " packs",
                                 st.deleted[LB_OBJ_SNAPSHOT], st.deleted[LB_OBJ_INDEX], st.deleted[LB_OBJ_PACK]);
                cli_info(" in %.1f s\n", secs);
        }
        if (k == -EBADMSG)
                return cli_error(CLI_EXIT_CORRUPT, "%" PRIu64 " objects of %s do not match their names and were not "
                                 "copied; run 'longbox check --read-data'", st.damaged, cli.repo);
        return CLI_EXIT_OK;
}
