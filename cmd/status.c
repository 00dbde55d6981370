/* SPDX-License-Identifier: MIT */
/*
 * longbox status: a monitoring check (Nagios/Icinga plugin conventions)
 * over the snapshots and the events of the repository.
 */
#include <ctype.h>
#include <inttypes.h>

#include "cmd/common.h"
#include "cmd/config.h"
#include "store/event.h"
#include "store/pg/dump.h"

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
        "  database   with [database NAME] sections in the config, the same for\n"
        "             each database: CRITICAL when its newest snapshot is older\n"
        "             than --max-age or it has none; the line names the database\n"
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
        const char *name;        /* "snapshot", "last_run", "offsite", "check", "drill"; a database's label */
        int status;
        bool has_age;
        int64_t age_ns;
        int64_t limit_ns;        /* 0: none */
        char text[512];
        /* A configured database: the name its snapshots record
         * (pg.database) and its newest snapshot. */
        bool is_db;
        char *dbname;
        bool has_snapshot;
        LbId snapshot;
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

/* A perfdata label by the monitoring plugin rules: as it is when made of
 * letters, digits, '_', '.' and '-'; else in single quotes, a quote
 * doubled, and '=' (never allowed), '|' and control characters as '_'. */
static void perf_label(FILE *f, const char *prefix, const char *name) {
        bool plain = true;
        for (const char *c = name; *c; c++)
                if (!isalnum((unsigned char) *c) && *c != '_' && *c != '.' && *c != '-')
                        plain = false;
        if (plain) {
                fprintf(f, "%s%s", prefix, name);
                return;
        }
        fprintf(f, "'%s", prefix);
        for (const char *c = name; *c; c++) {
                if (*c == '\'')
                        fputs("''", f);
                else
                        fputc(*c == '=' || *c == '|' || (unsigned char) *c < 0x20 || *c == 0x7f ? '_' : *c, f);
        }
        fputc('\'', f);
}

static void perf(FILE *f, const Item *it) {
        if (!it->has_age && !it->is_db)
                return;
        fputc(' ', f);
        if (it->is_db)
                perf_label(f, "snapshot_age_", it->name);
        else
                fprintf(f, "%s_age", it->name);
        if (!it->has_age)
                fputs("=U", f); /* a configured database without a snapshot */
        else if (it->limit_ns)
                fprintf(f, "=%llds;%lld;", (long long) (it->age_ns / 1000000000),
                        (long long) (it->limit_ns / 1000000000));
        else
                fprintf(f, "=%llds", (long long) (it->age_ns / 1000000000));
}

/* The database a [database] section backs up, as its snapshots record
 * it: the conninfo's, else the section's name. */
static char *configured_dbname(const CliConfigDatabase *db) {
        char *name = NULL;
        if (lb_pg_conninfo_dbname(db->conninfo, &name) == 0)
                return name;
        return strdup(db->name ? db->name : "");
}

/* Judges one configured database by its newest snapshot. */
static void database_item(Item *it, LbSnapshot **snaps, size_t n_snaps, int64_t now, int64_t max_age) {
        char who[200], lim[32], age[32];
        if (strcmp(it->name, it->dbname) == 0)
                snprintf(who, sizeof who, "database %s", it->name);
        else
                snprintf(who, sizeof who, "database %s (%s)", it->name, it->dbname);
        it->limit_ns = max_age;
        cli_format_age(max_age, lim);
        const LbSnapshot *s = NULL;
        for (size_t i = n_snaps; i-- > 0 && !s;) { /* oldest first: from the end */
                const char *db = lb_snapshot_meta(snaps[i], "pg.database");
                if (snaps[i]->source && strcmp(snaps[i]->source, "postgresql") == 0 && db &&
                    strcmp(db, it->dbname) == 0)
                        s = snaps[i];
        }
        if (!s) {
                it->status = ST_CRITICAL;
                snprintf(it->text, sizeof it->text, "%s: no snapshot", who);
                return;
        }
        it->has_snapshot = true;
        it->snapshot = s->id;
        it->has_age = true;
        it->age_ns = now - s->time_ns > 0 ? now - s->time_ns : 0;
        cli_format_age(it->age_ns, age);
        char sid[9];
        cli_id_short(&s->id, sid);
        if (it->age_ns > max_age) {
                it->status = ST_CRITICAL;
                snprintf(it->text, sizeof it->text, "%s: newest snapshot %s is %s old (more than %s)", who, sid, age,
                         lim);
        } else
                snprintf(it->text, sizeof it->text, "%s: newest snapshot %s ago", who, age);
}

static void status_free(Item *dbs, size_t n_db, Item **all, LbSnapshot **snaps, size_t n_snaps, LbEvent **ev,
                        size_t n_ev) {
        for (size_t i = 0; dbs && i < n_db; i++)
                free(dbs[i].dbname);
        free(dbs);
        free(all);
        lb_snapshots_free(snaps, n_snaps);
        lb_events_free(ev, n_ev);
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

        /* Each configured database, then the rest, in the order printed. */
        size_t n_db = conf->n_dbs, n_all = 0;
        Item *dbs = calloc(n_db + 1, sizeof *dbs);
        Item **all = calloc(LB_ARRAY_SIZE(items) + n_db, sizeof *all);
        bool oom = !dbs || !all;
        for (size_t i = 0; !oom && i < n_db; i++) {
                dbs[i].is_db = true;
                dbs[i].dbname = configured_dbname(&conf->dbs[i]);
                dbs[i].name = conf->dbs[i].name ? conf->dbs[i].name : dbs[i].dbname;
                if (!dbs[i].dbname)
                        oom = true;
                else
                        database_item(&dbs[i], snaps, n_snaps, now, max_age);
        }
        if (oom) {
                printf("LONGBOX UNKNOWN - out of memory\n");
                status_free(dbs, n_db, all, snaps, n_snaps, ev, n_ev);
                return ST_UNKNOWN;
        }
        all[n_all++] = &items[0];
        for (size_t i = 0; i < n_db; i++)
                all[n_all++] = &dbs[i];
        for (size_t i = 1; i < LB_ARRAY_SIZE(items); i++)
                all[n_all++] = &items[i];

        int worst = ST_OK;
        for (size_t i = 0; i < n_all; i++)
                if (all[i]->status > worst)
                        worst = all[i]->status;

        static const char *const lower[] = { "ok", "warning", "critical", "unknown" };
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
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
                /* One entry per configured database (empty without any). */
                json_object *databases = json_object_new_array();
                for (size_t i = 0; i < n_db; i++) {
                        const Item *d = &dbs[i];
                        json_object *x = json_object_new_object();
                        char id[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&d->snapshot, id);
                        json_object_object_add(x, "name", json_object_new_string(d->name));
                        json_object_object_add(x, "database", json_object_new_string(d->dbname));
                        json_object_object_add(x, "status", json_object_new_string(lower[d->status]));
                        json_object_object_add(x, "message", json_object_new_string(d->text));
                        json_object_object_add(x, "snapshot_id", d->has_snapshot ? json_object_new_string(id) : NULL);
                        json_object_object_add(x, "age_seconds", d->has_age ?
                                               json_object_new_int64(d->age_ns / 1000000000) : NULL);
                        json_object_object_add(x, "limit_seconds", json_object_new_int64(d->limit_ns / 1000000000));
                        json_object_array_add(databases, x);
                }
                json_object_object_add(o, "databases", databases);
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
                /* One line: the worst items first, then the others. With
                 * databases configured, theirs replace the newest
                 * snapshot's message (never better than theirs). */
                printf("LONGBOX %s - ", st_names[worst]);
                bool first = true;
                for (int st = ST_CRITICAL; st >= ST_OK; st--)
                        for (size_t i = 0; i < n_all; i++) {
                                if (all[i]->status != st || (n_db > 0 && all[i] == &items[0]))
                                        continue;
                                /* '|' starts the perfdata: keep it out of messages. */
                                for (char *ch = all[i]->text; *ch; ch++)
                                        if (*ch == '|' || *ch == '\n')
                                                *ch = *ch == '|' ? '/' : ' ';
                                printf("%s%s", first ? "" : "; ", all[i]->text);
                                first = false;
                        }
                fputs(" |", stdout);
                for (size_t i = 0; i < n_all; i++)
                        perf(stdout, all[i]);
                printf(" snapshots=%zu\n", n_snaps);
        }
        status_free(dbs, n_db, all, snaps, n_snaps, ev, n_ev);
        return worst;
}
