/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdarg.h>

#include "cmd/common.h"
#include "store/crypto.h"
#include "store/policy.h"
#include "store/prune.h"

static const char help[] =
        "Usage: longbox forget POLICY [--group-by LIST] [--dry-run] [--json] [--prune]\n"
        "       longbox forget [--dry-run] [--json] [--prune] SNAP...\n"
        "\n"
        "Removes the snapshots the policy does not keep, or the named snapshots.\n"
        "The policy applies to each group of snapshots on its own (by default one\n"
        "group per host and database, or per host and paths for file backups), so\n"
        "the backups of one database never push out those of another. A snapshot\n"
        "is kept when any rule keeps it. For every snapshot forget prints \"keep\"\n"
        "and the rules that keep it, or \"remove\". Only snapshot files are removed:\n"
        "the data that only they used stays in the repository until prune.\n"
        "With no policy flags and no SNAP, forget uses [retention] of the config\n"
        "file; with no policy at all it refuses (exit 2): that would remove every\n"
        "snapshot.\n"
        "\n"
        "Policy (restic's rules; calendar buckets are in each snapshot's own local\n"
        "time, weeks are ISO 8601 weeks from Monday to Sunday):\n"
        "  --keep-last N            keep the N newest snapshots\n"
        "  --keep-hourly N          keep the newest snapshot of each of the last N\n"
        "                           hours that have one\n"
        "  --keep-daily N           ... of the last N days that have one\n"
        "  --keep-weekly N          ... of the last N weeks that have one\n"
        "  --keep-monthly N         ... of the last N months that have one\n"
        "  --keep-yearly N          ... of the last N years that have one\n"
        "                           N may be 'unlimited'. A rule that runs out of\n"
        "                           snapshots before N also keeps the oldest one.\n"
        "  --keep-within DURATION   keep every snapshot newer than the newest one\n"
        "                           minus DURATION: 90d, 2w, 36h, 1y2m (y m w d h)\n"
        "  --keep-tag LIST          keep the snapshots that have every tag of LIST\n"
        "                           (a,b); '' keeps the untagged ones (repeatable)\n"
        "The suggested default keeps at least 3 months:\n"
        "  --keep-daily 7 --keep-weekly 5 --keep-monthly 4\n"
        "\n"
        "Options:\n"
        "  --group-by LIST          group by any of host,paths,tags,database\n"
        "                           (default host,database; the database of a file\n"
        "                           backup is its paths; '' puts all in one group)\n"
        "  --dry-run                print what would be removed; change nothing\n"
        "  --prune                  then remove the data no snapshot uses (see\n"
        "                           longbox prune --help)\n"
        "  --max-unused PERCENT     with --prune: repack packs with more unused\n"
        "                           space than this (default 10)\n"
        "  --json                   print an array of groups, each with group, keep,\n"
        "                           remove and reasons ({snapshot, matches})\n";

enum {
        OPT_KEEP_LAST = OPT_FIRST_LOCAL,
        OPT_KEEP_HOURLY,
        OPT_KEEP_DAILY,
        OPT_KEEP_WEEKLY,
        OPT_KEEP_MONTHLY,
        OPT_KEEP_YEARLY,
        OPT_KEEP_WITHIN,
        OPT_KEEP_TAG,
        OPT_GROUP_BY,
        OPT_DRY_RUN,
        OPT_PRUNE,
        OPT_MAX_UNUSED,
};

#define COUNT_MAX 1000000

typedef struct ForgetOpts {
        LbPolicy policy;
        const char *keep_tags[LB_POLICY_KEEP_TAGS_MAX];
        unsigned group_by;
        bool group_by_set;
        bool dry_run;
        bool prune;
        unsigned max_unused;
        bool max_unused_set;
} ForgetOpts;

static int parse_count(const char *opt, const char *s, unsigned *ret) {
        long long v;
        if (strcmp(s, "unlimited") == 0) {
                *ret = LB_POLICY_UNLIMITED;
                return 0;
        }
        if (cli_parse_int(s, 0, COUNT_MAX, &v) < 0)
                return cli_usage_error("%s needs a number from 0 to %d or 'unlimited', got '%s'", opt, COUNT_MAX, s);
        *ret = (unsigned) v;
        return 0;
}

/* ---- output ---- */

static json_object *string_array(char **v, size_t n) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(v[i] ? v[i] : ""));
        return a;
}

static json_object *snapshot_json(const LbSnapshot *s) {
        char id[2 * LB_ID_SIZE + 1], short_id[9], t[48];
        lb_id_hex(&s->id, id);
        cli_id_short(&s->id, short_id);
        cli_format_rfc3339(s->time_ns, s->tz_offset, t);
        const char *db = lb_snapshot_meta(s, "pg.database");

        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "short_id", json_object_new_string(short_id));
        json_object_object_add(o, "time", json_object_new_string(t));
        json_object_object_add(o, "hostname", s->hostname ? json_object_new_string(s->hostname) : NULL);
        json_object_object_add(o, "tags", string_array(s->tags, s->n_tags));
        json_object_object_add(o, "paths", string_array(s->paths, s->n_paths));
        json_object_object_add(o, "source", s->source ? json_object_new_string(s->source) : NULL);
        if (db)
                json_object_object_add(o, "database", json_object_new_string(db));
        return o;
}

/* The group's fields, as restic's forget --json has them (host, paths, tags). */
static void group_fields_json(json_object *g, const LbSnapshot *s, unsigned flags) {
        const char *db = lb_snapshot_meta(s, "pg.database");
        bool paths = flags & LB_POLICY_GROUP_PATHS;
        if (flags & LB_POLICY_GROUP_HOST)
                json_object_object_add(g, "host", s->hostname ? json_object_new_string(s->hostname) : NULL);
        if (flags & LB_POLICY_GROUP_DATABASE) {
                if (db)
                        json_object_object_add(g, "database", json_object_new_string(db));
                else
                        paths = true;
        }
        if (paths)
                json_object_object_add(g, "paths", string_array(s->paths, s->n_paths));
        if (flags & LB_POLICY_GROUP_TAGS)
                json_object_object_add(g, "tags", string_array(s->tags, s->n_tags));
}

/* Text output: on stdout unless --quiet or --json (which prints one document). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
        if (cli.quiet || cli.json)
                return;
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
}

static void print_line(const char *verdict, const LbSnapshot *s, char **reasons, size_t n_reasons) {
        char id[9], t[48];
        cli_id_short(&s->id, id);
        cli_format_rfc3339(s->time_ns, s->tz_offset, t);
        /* Times with an offset are 25 characters, UTC ones ("Z") 20: pad
         * only when reasons follow, so lines have no trailing blanks. */
        say("  %-6s  %s  %-*s", verdict, id, n_reasons ? 25 : 0, t);
        for (size_t i = 0; i < n_reasons; i++)
                say("%s%s", i ? ", " : "  ", reasons[i]);
        say("\n");
}

/* ---- snapshot names ---- */

/* "latest" or a unique id prefix, in the list (oldest first); the index in *ret. */
static int resolve(LbSnapshot **snaps, size_t n, const char *spec, size_t *ret) {
        if (strcmp(spec, "latest") == 0) {
                if (n == 0)
                        return cli_error(CLI_EXIT_ERROR, "Failed to find snapshot latest: %s has no snapshots; nothing "
                                         "was removed", cli.repo);
                *ret = n - 1;
                return 0;
        }
        size_t len = strlen(spec), found = 0, matches = 0;
        if (len == 0 || len > 2 * LB_ID_SIZE || !lb_is_hex(spec, len))
                return cli_error(CLI_EXIT_USAGE, "Failed to find snapshot '%s': a snapshot is named by 'latest' or a "
                                 "prefix of its hex id; nothing was removed", spec);
        for (size_t i = 0; i < n; i++) {
                char hex[2 * LB_ID_SIZE + 1];
                lb_id_hex(&snaps[i]->id, hex);
                if (strncasecmp(hex, spec, len) == 0) {
                        found = i;
                        matches++;
                }
        }
        if (matches == 0)
                return cli_error(CLI_EXIT_ERROR, "Failed to find snapshot %s: no snapshot %s in %s; 'longbox snapshots' "
                                 "lists them; nothing was removed", spec, spec, cli.repo);
        if (matches > 1)
                return cli_error(CLI_EXIT_ERROR, "Failed to find snapshot %s: snapshot prefix %s is ambiguous; give more "
                                 "characters of the id; nothing was removed", spec, spec);
        *ret = found;
        return 0;
}

/* ---- the plan ---- */

typedef struct Plan {
        LbSnapshot **snaps;      /* oldest first */
        size_t n;
        bool *remove;            /* per snapshot */
        size_t n_remove;
        json_object *json;       /* the --json array */
} Plan;

static int plan_named(Plan *p, char **specs, size_t n_specs) {
        for (size_t i = 0; i < n_specs; i++) {
                size_t idx = 0;
                int code = resolve(p->snaps, p->n, specs[i], &idx);
                if (code)
                        return code;
                if (!p->remove[idx]) {
                        p->remove[idx] = true;
                        p->n_remove++;
                }
        }

        json_object *g = json_object_new_object();
        json_object *keep = json_object_new_array(), *rm = json_object_new_array();
        json_object_object_add(g, "group", NULL);
        say("named snapshots:\n");
        for (size_t i = 0; i < p->n; i++) {
                if (!p->remove[i])
                        continue;
                print_line("remove", p->snaps[i], NULL, 0);
                json_object_array_add(rm, snapshot_json(p->snaps[i]));
        }
        json_object_object_add(g, "keep", keep);
        json_object_object_add(g, "remove", rm);
        json_object_object_add(g, "reasons", json_object_new_array());
        json_object_array_add(p->json, g);
        return 0;
}

static int plan_group(Plan *p, const ForgetOpts *o, const LbPolicyGroup *grp, int64_t now_ns) {
        _cleanup_free_ LbSnapshot **members = calloc(grp->n_members, sizeof *members);
        _cleanup_free_ LbPolicyDecision *d = calloc(grp->n_members, sizeof *d);
        if (!members || !d)
                return cli_fail(-ENOMEM, "apply the policy");
        for (size_t i = 0; i < grp->n_members; i++)
                members[i] = p->snaps[grp->members[i]];
        int k = lb_policy_apply(&o->policy, members, grp->n_members, now_ns, d);
        if (k < 0)
                return cli_fail(k, "apply the policy to the snapshots of %s", *grp->key ? grp->key : "the repository");

        /* Only a policy of tags alone can keep nothing (every count rule keeps
         * the newest snapshot, keep-within the newest not in the future);
         * restic refuses that too. */
        size_t kept = 0;
        for (size_t i = 0; i < grp->n_members; i++)
                kept += d[i].keep;
        if (kept == 0)
                return cli_error(CLI_EXIT_ERROR, "Failed to apply the policy to group %s: none of its %zu snapshots has "
                                 "the tags of --keep-tag, so all would be removed; nothing was removed. Add a --keep-* "
                                 "rule, or name the snapshots to remove them on purpose",
                                 *grp->key ? grp->key : "(all snapshots)", grp->n_members);

        /* The arrays belong to g from here on; the pointers stay valid. */
        json_object *g = json_object_new_object();
        json_object *keep = json_object_new_array(), *rm = json_object_new_array(), *why = json_object_new_array();
        json_object_object_add(g, "group", json_object_new_string(grp->key));
        group_fields_json(g, members[0], o->group_by);
        json_object_object_add(g, "keep", keep);
        json_object_object_add(g, "remove", rm);
        json_object_object_add(g, "reasons", why);
        json_object_array_add(p->json, g);

        say("%s: keep %zu, remove %zu\n", *grp->key ? grp->key : "all snapshots", kept, grp->n_members - kept);
        for (size_t i = 0; i < grp->n_members; i++) {
                const LbSnapshot *s = members[i];
                if (!d[i].keep) {
                        p->remove[grp->members[i]] = true;
                        p->n_remove++;
                        print_line("remove", s, NULL, 0);
                        json_object_array_add(rm, snapshot_json(s));
                        continue;
                }
                char **reasons = NULL;
                size_t n_reasons = 0;
                k = lb_policy_reasons(&o->policy, &d[i], &reasons, &n_reasons);
                if (k < 0)
                        return cli_fail(k, "describe why the policy keeps the snapshots of %s", grp->key);
                print_line("keep", s, reasons, n_reasons);
                json_object_array_add(keep, snapshot_json(s));
                json_object *r = json_object_new_object();
                json_object_object_add(r, "snapshot", snapshot_json(s));
                json_object_object_add(r, "matches", string_array(reasons, n_reasons));
                json_object_array_add(why, r);
                lb_policy_reasons_free(reasons, n_reasons);
        }
        return 0;
}

static int plan_policy(Plan *p, const ForgetOpts *o) {
        LbPolicyGroup *groups = NULL;
        size_t n_groups = 0;
        int k = lb_policy_group(p->snaps, p->n, o->group_by, &groups, &n_groups);
        if (k < 0)
                return cli_fail(k, "group the snapshots");
        int64_t now = lb_now_ns();
        int code = 0;
        for (size_t i = 0; i < n_groups && !code; i++)
                code = plan_group(p, o, &groups[i], now);
        lb_policy_groups_free(groups, n_groups);
        return code;
}

static int remove_planned(LbRepo *r, const Plan *p) {
        size_t done = 0;
        for (size_t i = 0; i < p->n; i++) {
                if (!p->remove[i])
                        continue;
                /* Durable all at once below, before prune may run. */
                int k = lb_repo_remove_nosync(r, LB_OBJ_SNAPSHOT, &p->snaps[i]->id);
                if (k < 0 && k != -ENOENT) { /* ENOENT: another forget removed it meanwhile */
                        char id[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&p->snaps[i]->id, id);
                        int k2 = lb_repo_sync_removals(r, LB_OBJ_SNAPSHOT);
                        (void) k2; /* the removal already failed: report that */
                        return cli_fail(k, "remove snapshot %s (%zu of the %zu snapshots to remove were removed before "
                                        "it; run forget again)", id, done, p->n_remove);
                }
                done++;
        }
        int k = lb_repo_sync_removals(r, LB_OBJ_SNAPSHOT);
        if (k < 0)
                return cli_fail(k, "make the removal of %zu snapshots durable (run forget again)", done);
        return 0;
}

/* forget --prune: prune what the removed snapshots alone used. A dry run
 * removed nothing, so it tells prune which snapshots to count as gone. */
static int prune_after(LbRepo *r, const Plan *p, const ForgetOpts *o) {
        _cleanup_free_ LbId *gone = NULL;
        size_t n = 0;
        if (o->dry_run) {
                gone = calloc(p->n_remove + 1, sizeof *gone);
                if (!gone)
                        return cli_fail(-ENOMEM, "plan the prune");
                for (size_t i = 0; i < p->n; i++)
                        if (p->remove[i])
                                gone[n++] = p->snaps[i]->id;
        }
        return cli_prune(r, o->max_unused, o->dry_run, gone, n);
}

int cmd_forget(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "keep-last", required_argument, NULL, OPT_KEEP_LAST },
                { "keep-hourly", required_argument, NULL, OPT_KEEP_HOURLY },
                { "keep-daily", required_argument, NULL, OPT_KEEP_DAILY },
                { "keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY },
                { "keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY },
                { "keep-yearly", required_argument, NULL, OPT_KEEP_YEARLY },
                { "keep-within", required_argument, NULL, OPT_KEEP_WITHIN },
                { "keep-tag", required_argument, NULL, OPT_KEEP_TAG },
                { "group-by", required_argument, NULL, OPT_GROUP_BY },
                { "dry-run", no_argument, NULL, OPT_DRY_RUN },
                { "prune", no_argument, NULL, OPT_PRUNE },
                { "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
                {},
        };
        ForgetOpts o = { .group_by = LB_POLICY_GROUP_DEFAULT, .max_unused = LB_PRUNE_MAX_UNUSED_DEFAULT };
        int code, k;

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_KEEP_LAST:
                        code = parse_count("--keep-last", optarg, &o.policy.last);
                        break;
                case OPT_KEEP_HOURLY:
                        code = parse_count("--keep-hourly", optarg, &o.policy.hourly);
                        break;
                case OPT_KEEP_DAILY:
                        code = parse_count("--keep-daily", optarg, &o.policy.daily);
                        break;
                case OPT_KEEP_WEEKLY:
                        code = parse_count("--keep-weekly", optarg, &o.policy.weekly);
                        break;
                case OPT_KEEP_MONTHLY:
                        code = parse_count("--keep-monthly", optarg, &o.policy.monthly);
                        break;
                case OPT_KEEP_YEARLY:
                        code = parse_count("--keep-yearly", optarg, &o.policy.yearly);
                        break;
                case OPT_KEEP_WITHIN:
                        k = lb_duration_parse(optarg, &o.policy.within);
                        code = 0;
                        if (k == -ERANGE)
                                code = cli_usage_error("--keep-within: each number of '%s' must be at most %u",
                                                       optarg, LB_DURATION_FIELD_MAX);
                        else if (k < 0)
                                code = cli_usage_error("--keep-within needs a duration such as 90d, 2w, 36h or 1y2m "
                                                       "(units y, m, w, d, h, each once), got '%s'", optarg);
                        break;
                case OPT_KEEP_TAG: {
                        code = 0;
                        size_t len = strlen(optarg);
                        if (o.policy.n_keep_tags >= LB_POLICY_KEEP_TAGS_MAX)
                                code = cli_usage_error("at most %d --keep-tag options", LB_POLICY_KEEP_TAGS_MAX);
                        else if (len > 0 && (optarg[0] == ',' || optarg[len - 1] == ',' || strstr(optarg, ",,")))
                                code = cli_usage_error("--keep-tag needs a comma-separated list of tags without empty "
                                                       "ones (or '' for untagged snapshots), got '%s'", optarg);
                        else
                                o.keep_tags[o.policy.n_keep_tags++] = optarg;
                        break;
                }
                case OPT_GROUP_BY:
                        code = 0;
                        if (lb_policy_group_parse(optarg, &o.group_by) < 0)
                                code = cli_usage_error("--group-by needs a comma-separated list of host, paths, tags "
                                                       "and database (or ''), got '%s'", optarg);
                        o.group_by_set = true;
                        break;
                case OPT_DRY_RUN:
                        o.dry_run = true;
                        code = 0;
                        break;
                case OPT_PRUNE:
                        o.prune = true;
                        code = 0;
                        break;
                case OPT_MAX_UNUSED:
                        code = cli_parse_max_unused(optarg, &o.max_unused);
                        o.max_unused_set = true;
                        break;
                default:
                        k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                        code = 0;
                }
                if (code)
                        return code;
        }
        o.policy.keep_tags = (char **) o.keep_tags;
        if (o.max_unused_set && !o.prune)
                return cli_usage_error("--max-unused applies to --prune");

        char **specs = argv + optind;
        size_t n_specs = (size_t) (argc - optind);
        bool empty = lb_policy_is_empty(&o.policy);
        if (n_specs > 0 && !empty)
                return cli_usage_error("give either a policy (--keep-*) or the snapshots to remove, not both");
        if (n_specs > 0 && o.group_by_set)
                return cli_usage_error("--group-by applies to a policy, not to named snapshots");
        if (n_specs == 0 && empty) {
                /* The config's [retention], when there is one. */
                LbPolicy conf;
                int k2 = cli_config_retention(&conf, NULL);
                if (k2 > 0)
                        return k2;
                if (k2 == 0) {
                        o.policy = conf;
                        o.policy.keep_tags = (char **) o.keep_tags;
                        empty = lb_policy_is_empty(&o.policy);
                }
        }
        if (n_specs == 0 && empty)
                return cli_usage_error("no policy given, and forgetting with no policy would remove every snapshot. "
                                       "Give the rules to keep by, e.g. the suggested default --keep-daily 7 "
                                       "--keep-weekly 5 --keep-monthly 4, or name the snapshots to remove");

        /* Removing snapshot files is safe beside running backups (a new
         * snapshot never refers to another one), so a shared lock is enough;
         * it keeps out an exclusive holder such as a future prune. A dry run
         * only reads. */
        _cleanup_repo_ LbRepo *r = NULL;
        code = cli_open_repo(o.dry_run ? 0 : CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;

        Plan p = {};
        k = lb_repo_snapshot_list(r, &p.snaps, &p.n);
        if (k < 0)
                return cli_fail(k, "list the snapshots of %s", cli.repo);
        p.remove = calloc(p.n ? p.n : 1, sizeof *p.remove);
        p.json = json_object_new_array();
        if (!p.remove || !p.json)
                code = cli_fail(-ENOMEM, "plan what to forget");
        else if (n_specs > 0)
                code = plan_named(&p, specs, n_specs);
        else
                code = plan_policy(&p, &o);

        if (!code) {
                if (cli.json)
                        cli_json_print(p.json);
                if (!o.dry_run)
                        code = remove_planned(r, &p);
        }
        if (!code) {
                size_t kept = p.n - p.n_remove;
                if (o.dry_run)
                        say("dry run: would remove %zu snapshot%s and keep %zu; nothing was changed\n", p.n_remove,
                                 p.n_remove == 1 ? "" : "s", kept);
                else
                        say("removed %zu snapshot%s, kept %zu\n", p.n_remove, p.n_remove == 1 ? "" : "s", kept);
                if (o.prune)
                        code = prune_after(r, &p, &o);
        }

        if (p.json)
                json_object_put(p.json);
        free(p.remove);
        lb_snapshots_free(p.snaps, p.n);
        return code;
}
