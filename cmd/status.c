/* SPDX-License-Identifier: MIT */
/*
 * longbox status: a monitoring check (Nagios/Icinga plugin conventions)
 * over the snapshots and the events of the repository.
 */
#include <inttypes.h>

#include "cmd/common.h"
#include "cmd/config.h"
#include "store/event.h"

static const char help[] =
        "Usage: longbox status [--max-age AGE] [--json]\n"
        "\n"
        "A monitoring check with the conventions of Nagios/Icinga plugins: one\n"
        "status line with performance data after '|', and the exit code 0 OK,\n"
        "1 WARNING, 2 CRITICAL, 3 UNKNOWN. It reads the snapshots and the events\n"
        "(results of backup, sync, check, drill, run) recorded in the repository:\n"
        "\n"
        "  snapshot   CRITICAL when the newest snapshot is older than --max-age\n"
        "             (default 26h, config [status] max-age) or there is none\n"
        "  last run   CRITICAL when the last run (or backup) failed, WARNING when\n"
        "             it finished with unreadable inputs\n"
        "  off-site   WARNING when the last successful sync is older than [remote]\n"
        "             max-age (default 26h), or none was recorded while a remote\n"
        "             is configured; not checked without a remote\n"
        "  check      WARNING when the last successful check is older than [check]\n"
        "             interval (default 8d) or none was recorded; CRITICAL when\n"
        "             the last check failed\n"
        "  drill      the same with [drill] interval (default 92d)\n"
        "\n"
        "UNKNOWN when the repository cannot be opened.\n"
        "\n"
        "Options:\n"
        "  --max-age AGE   maximum age of the newest snapshot: 26h, 2d, 1d12h, 90m\n"
        "  --json          print one JSON object instead of the status line\n";

enum {
        OPT_MAX_AGE = OPT_FIRST_LOCAL,
};

enum {
        ST_OK = 0,
        ST_WARNING = 1,
        ST_CRITICAL = 2,
        ST_UNKNOWN = 3,
};

static const char *const st_names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };

typedef struct Item {
        const char *name;        /* "snapshot", "last_run", "offsite", "check", "drill" */
        int status;
        bool has_age;
        int64_t age_ns;
        int64_t limit_ns;        /* 0: none */
        char text[512];
} Item;

static void age_item(Item *it, const char *what, int64_t now, const LbEvent *ok_ev, const LbEvent *last_ev,
                     int64_t limit, bool required) {
        char lim[32], age[32];
        cli_format_age(limit, lim);
        it->limit_ns = limit;
        if (last_ev && last_ev->status == LB_EVENT_FAILURE && (!ok_ev || last_ev->time_ns > ok_ev->time_ns)) {
                it->status = ST_CRITICAL;
                snprintf(it->text, sizeof it->text, "last %s failed: %s", what,
                         last_ev->message ? last_ev->message : "(no message)");
        }
        if (!ok_ev) {
                if (it->status == ST_OK) {
                        it->status = required ? ST_WARNING : ST_OK;
                        snprintf(it->text, sizeof it->text, "no successful %s recorded", what);
                }
                return;
        }
        it->has_age = true;
        it->age_ns = now - ok_ev->time_ns;
        if (it->age_ns < 0)
                it->age_ns = 0;
        cli_format_age(it->age_ns, age);
        if (it->status != ST_OK)
                return;
        if (it->age_ns > limit) {
                it->status = ST_WARNING;
                snprintf(it->text, sizeof it->text, "last successful %s %s ago (more than %s)", what, age, lim);
        } else
                snprintf(it->text, sizeof it->text, "%s %s ago", what, age);
}

static void perf(FILE *f, const Item *it) {
        if (!it->has_age)
                return;
        if (it->limit_ns)
                fprintf(f, " %s_age=%llds;%lld;", it->name, (long long) (it->age_ns / 1000000000),
                        (long long) (it->limit_ns / 1000000000));
        else
                fprintf(f, " %s_age=%llds", it->name, (long long) (it->age_ns / 1000000000));
}

int cmd_status(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "max-age", required_argument, NULL, OPT_MAX_AGE },
                {},
        };
        int64_t max_age = 0;
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_MAX_AGE:
                        if (cli_parse_age(optarg, &max_age) < 0 || max_age <= 0)
                                return cli_usage_error("--max-age needs a duration such as 26h, 2d or 1d12h, got '%s'",
                                                       optarg);
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

        const CliConfig *conf = NULL;
        int code = cli_config_get(&conf);
        CliConfig defaults = {};
        cli_config_defaults(&defaults);
        if (code == 0 && !conf)
                conf = &defaults;
        _cleanup_repo_ LbRepo *r = NULL;
        if (code == 0)
                code = cli_open_repo(0, &r);
        if (code) {
                if (cli.json) {
                        _cleanup_json_ json_object *o = json_object_new_object();
                        json_object_object_add(o, "status", json_object_new_string("unknown"));
                        json_object_object_add(o, "exit_code", json_object_new_int(ST_UNKNOWN));
                        cli_json_print(o);
                } else
                        printf("LONGBOX UNKNOWN - cannot read repository %s (exit code %d, see above)\n",
                               cli.repo ? cli.repo : "(none)", code);
                return ST_UNKNOWN;
        }
        if (!max_age)
                max_age = conf->max_age_ns;

        LbSnapshot **snaps = NULL;
        size_t n_snaps = 0;
        int k = lb_repo_snapshot_list(r, &snaps, &n_snaps);
        if (k < 0) {
                printf("LONGBOX UNKNOWN - cannot list the snapshots of %s: %s\n", cli.repo, cli_strerror(k));
                return ST_UNKNOWN;
        }
        LbEvent **ev = NULL;
        size_t n_ev = 0, bad = 0;
        k = lb_event_list(r->be, &r->keys, &ev, &n_ev, &bad);
        if (k < 0) {
                lb_snapshots_free(snaps, n_snaps);
                printf("LONGBOX UNKNOWN - cannot read the events of %s: %s\n", cli.repo, cli_strerror(k));
                return ST_UNKNOWN;
        }
        int64_t now = lb_now_ns();
        Item items[5] = {
                { .name = "snapshot" }, { .name = "last_run" }, { .name = "offsite" }, { .name = "check" },
                { .name = "drill" },
        };

        /* The newest snapshot. */
        Item *it = &items[0];
        it->limit_ns = max_age;
        char lim[32], age[32];
        cli_format_age(max_age, lim);
        if (n_snaps == 0) {
                it->status = ST_CRITICAL;
                snprintf(it->text, sizeof it->text, "no snapshot in the repository");
        } else {
                const LbSnapshot *s = snaps[n_snaps - 1];
                it->has_age = true;
                it->age_ns = now - s->time_ns > 0 ? now - s->time_ns : 0;
                cli_format_age(it->age_ns, age);
                char sid[9];
                cli_id_short(&s->id, sid);
                if (it->age_ns > max_age) {
                        it->status = ST_CRITICAL;
                        snprintf(it->text, sizeof it->text, "newest snapshot %s is %s old (more than %s)", sid, age,
                                 lim);
                } else
                        snprintf(it->text, sizeof it->text, "newest snapshot %s ago", age);
        }

        /* The last run: `run` if there is one, else the last backup. */
        it = &items[1];
        const LbEvent *last = lb_event_newest(ev, n_ev, "run", false);
        if (!last)
                last = lb_event_newest(ev, n_ev, "backup", false);
        if (last) {
                it->has_age = true;
                it->age_ns = now - last->time_ns > 0 ? now - last->time_ns : 0;
                cli_format_age(it->age_ns, age);
                if (last->status == LB_EVENT_FAILURE)
                        it->status = ST_CRITICAL;
                else if (last->status == LB_EVENT_WARNING)
                        it->status = ST_WARNING;
                snprintf(it->text, sizeof it->text, "last %s %s ago: %s%s%s", last->kind, age,
                         lb_event_status_name(last->status), last->message ? ": " : "",
                         last->message ? last->message : "");
        } else
                snprintf(it->text, sizeof it->text, "no run recorded");

        bool remote = conf->remote_location != NULL;
        const LbEvent *sync_ok = lb_event_newest(ev, n_ev, "sync", true);
        if (remote || sync_ok)
                age_item(&items[2], "off-site sync", now, sync_ok, lb_event_newest(ev, n_ev, "sync", false),
                         conf->remote_max_age_ns, true);
        else
                snprintf(items[2].text, sizeof items[2].text, "off-site: not configured");
        age_item(&items[3], "check", now, lb_event_newest(ev, n_ev, "check", true),
                 lb_event_newest(ev, n_ev, "check", false), conf->check_interval_ns, true);
        age_item(&items[4], "drill", now, lb_event_newest(ev, n_ev, "drill", true),
                 lb_event_newest(ev, n_ev, "drill", false), conf->drill_interval_ns, true);

        int worst = ST_OK;
        for (size_t i = 0; i < LB_ARRAY_SIZE(items); i++)
                if (items[i].status > worst)
                        worst = items[i].status;

        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                static const char *const lower[] = { "ok", "warning", "critical", "unknown" };
                json_object_object_add(o, "status", json_object_new_string(lower[worst]));
                json_object_object_add(o, "exit_code", json_object_new_int(worst));
                json_object_object_add(o, "repository", json_object_new_string(cli.repo));
                json_object_object_add(o, "snapshots", json_object_new_uint64(n_snaps));
                json_object_object_add(o, "events", json_object_new_uint64(n_ev));
                json_object_object_add(o, "events_unreadable", json_object_new_uint64(bad));
                json_object *checks = json_object_new_object();
                for (size_t i = 0; i < LB_ARRAY_SIZE(items); i++) {
                        json_object *x = json_object_new_object();
                        json_object_object_add(x, "status", json_object_new_string(lower[items[i].status]));
                        json_object_object_add(x, "message", json_object_new_string(items[i].text));
                        json_object_object_add(x, "age_seconds", items[i].has_age ?
                                               json_object_new_int64(items[i].age_ns / 1000000000) : NULL);
                        json_object_object_add(x, "limit_seconds", items[i].limit_ns ?
                                               json_object_new_int64(items[i].limit_ns / 1000000000) : NULL);
                        json_object_object_add(checks, items[i].name, x);
                }
                json_object_object_add(o, "checks", checks);
                if (last) {
                        json_object *x = json_object_new_object();
                        json_object_object_add(x, "kind", json_object_new_string(last->kind));
                        json_object_object_add(x, "status", json_object_new_string(lb_event_status_name(last->status)));
                        json_object_object_add(x, "exit_code", json_object_new_int((int) last->exit_code));
                        char when[48];
                        cli_format_rfc3339_local(last->time_ns, when);
                        json_object_object_add(x, "time", json_object_new_string(when));
                        json_object_object_add(x, "message", last->message ? json_object_new_string(last->message) : NULL);
                        json_object_object_add(o, "last_run", x);
                }
                cli_json_print(o);
        } else {
                /* One line: the worst items first, then the others. */
                printf("LONGBOX %s - ", st_names[worst]);
                bool first = true;
                for (int st = ST_CRITICAL; st >= ST_OK; st--)
                        for (size_t i = 0; i < LB_ARRAY_SIZE(items); i++) {
                                if (items[i].status != st)
                                        continue;
                                /* '|' starts the perfdata: keep it out of messages. */
                                for (char *ch = items[i].text; *ch; ch++)
                                        if (*ch == '|' || *ch == '\n')
                                                *ch = *ch == '|' ? '/' : ' ';
                                printf("%s%s", first ? "" : "; ", items[i].text);
                                first = false;
                        }
                fputs(" |", stdout);
                for (size_t i = 0; i < LB_ARRAY_SIZE(items); i++)
                        perf(stdout, &items[i]);
                printf(" snapshots=%zu\n", n_snaps);
        }
        lb_snapshots_free(snaps, n_snaps);
        lb_events_free(ev, n_ev);
        return worst;
}
