/* SPDX-License-Identifier: MIT */
/*
 * longbox run: the configured nightly job as one command with one exit
 * code. Steps: backup of each [database], then sync when a [remote] is
 * configured, then forget by [retention] and prune when it is due. Each
 * step records its own event and metrics (cmd/report.c); the run records
 * one more and sends one notification.
 */
#include <inttypes.h>

#include "cmd/common.h"
#include "cmd/config.h"
#include "store/event.h"

static const char help[] =
        "Usage: longbox run\n"
        "\n"
        "The nightly job, from the config file: backs up each [database] section's\n"
        "database (as 'longbox backup --db CONNINFO'), then copies the repository\n"
        "to the [remote] ('longbox sync') when one is configured, then removes the\n"
        "snapshots [retention] does not keep ('longbox forget') and, when the last\n"
        "successful prune is older than prune-interval (default 7 days, minus an\n"
        "hour), reclaims their space ('longbox prune'). A failed backup does not\n"
        "stop the others, but sync and forget run only when every backup succeeded.\n"
        "Each step records its result in the repository; the run records one more\n"
        "and sends one notification ([notify]).\n"
        "\n"
        "Exit code: 0 when every step succeeded; else the exit code of the first\n"
        "step that failed; 3 when the only problem was a backup with unreadable\n"
        "inputs.\n";

typedef struct Run {
        int code;                /* first failure's exit code */
        bool partial;
        char failed[512];        /* names of the failed steps */
} Run;

static void step_done(Run *run, const char *name, int code) {
        if (code == CLI_EXIT_OK)
                return;
        if (code == CLI_EXIT_PARTIAL) {
                run->partial = true;
                return;
        }
        if (!run->code)
                run->code = code;
        size_t n = strlen(run->failed);
        snprintf(run->failed + n, sizeof run->failed - n, "%s%s", n ? "," : "", name);
}

static int step(Run *run, const char *kind, const char *name, int (*fn)(int, char **), char **argv) {
        int argc = 0;
        while (argv[argc])
                argc++;
        cli_report_begin(kind);
        if (!cli.quiet)
                printf("== %s\n", name);
        fflush(stdout);
        const char *saved = cli.command;
        cli.command = kind;
        int code = fn(argc, argv);
        cli.command = saved;
        fflush(stdout);
        code = cli_report_end(code, false);
        step_done(run, name, code);
        return code;
}

/* Whether prune is due: no successful prune in the interval. */
static bool prune_due(const CliConfig *conf) {
        _cleanup_repo_ LbRepo *r = NULL;
        if (cli_open_repo(0, &r) != 0)
                return true;
        LbEvent **ev = NULL;
        size_t n = 0;
        if (lb_event_list(r->be, &r->keys, &ev, &n, NULL) < 0)
                return true;
        const LbEvent *last = lb_event_newest(ev, n, "prune", true);
        bool due = !last || lb_now_ns() - last->time_ns >= conf->prune_interval_ns;
        lb_events_free(ev, n);
        return due;
}

static void add_count(char **argv, int *n, char bufs[][16], const char *opt, unsigned v) {
        if (!v)
                return;
        argv[(*n)++] = (char *) opt;
        if (v == LB_POLICY_UNLIMITED)
                snprintf(bufs[*n], 16, "unlimited");
        else
                snprintf(bufs[*n], 16, "%u", v);
        argv[*n] = bufs[*n];
        (*n)++;
}

int cmd_run(int argc, char **argv) {
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
        const CliConfig *conf = NULL;
        int code = cli_config_get(&conf);
        if (code)
                return code;
        if (!conf)
                return cli_error(CLI_EXIT_USAGE, "run needs a config file (--config, LONGBOX_CONFIG or %s); see "
                                 "scripts/longbox.conf.example", CLI_CONFIG_DEFAULT_PATH);
        if (conf->n_dbs == 0)
                return cli_error(CLI_EXIT_USAGE, "the config file %s has no [database] section: nothing to back up",
                                 conf->path);
        if (!cli_repo_location())
                return CLI_EXIT_USAGE;
        /* Open once first: a wrong passphrase or a missing repository fails
         * the run before any step, with one message. */
        {
                _cleanup_repo_ LbRepo *r = NULL;
                code = cli_open_repo(0, &r);
                if (code)
                        return code;
        }

        Run run = {};
        for (size_t i = 0; i < conf->n_dbs; i++) {
                const CliConfigDatabase *db = &conf->dbs[i];
                char jobs[16], name[96];
                char *args[10];
                int n = 0;
                args[n++] = (char *) "backup";
                args[n++] = (char *) "--db";
                args[n++] = db->conninfo;
                if (db->jobs) {
                        snprintf(jobs, sizeof jobs, "%u", db->jobs);
                        args[n++] = (char *) "--jobs";
                        args[n++] = jobs;
                }
                if (db->order >= 0) {
                        args[n++] = (char *) "--order";
                        args[n++] = (char *) (db->order ? "physical" : "pk");
                }
                args[n] = NULL;
                snprintf(name, sizeof name, "backup %s", db->name ? db->name : "database");
                (void) step(&run, "backup", name, cmd_backup, args);
        }
        bool backups_ok = run.code == 0;
        if (!backups_ok)
                cli_error(run.code, "a backup failed: sync, forget and prune are skipped");
        if (backups_ok && conf->remote_location) {
                char *args[] = { (char *) "sync", NULL };
                (void) step(&run, "sync", "sync", cmd_sync, args);
        }
        if (backups_ok && conf->has_retention) {
                char *args[24];
                char bufs[24][16];
                char within[LB_DURATION_STRING_MAX];
                int n = 0;
                args[n++] = (char *) "forget";
                add_count(args, &n, bufs, "--keep-last", conf->retention.last);
                add_count(args, &n, bufs, "--keep-hourly", conf->retention.hourly);
                add_count(args, &n, bufs, "--keep-daily", conf->retention.daily);
                add_count(args, &n, bufs, "--keep-weekly", conf->retention.weekly);
                add_count(args, &n, bufs, "--keep-monthly", conf->retention.monthly);
                add_count(args, &n, bufs, "--keep-yearly", conf->retention.yearly);
                if (!lb_duration_is_zero(&conf->retention.within)) {
                        lb_duration_format(&conf->retention.within, within);
                        args[n++] = (char *) "--keep-within";
                        args[n++] = within;
                }
                args[n] = NULL;
                int k = step(&run, "forget", "forget", cmd_forget, args);
                if (k == CLI_EXIT_OK && conf->prune && prune_due(conf)) {
                        char *pargs[] = { (char *) "prune", NULL };
                        (void) step(&run, "prune", "prune", cmd_prune, pargs);
                }
        }
        if (run.failed[0])
                cli_report_meta("steps", "%s", run.failed);
        if (run.code) {
                /* The run's own message names the failed steps (the first
                 * step error was already recorded as its message). */
                return cli_error(run.code, "run failed: %s (see above)", run.failed);
        }
        if (run.partial)
                return cli_error(CLI_EXIT_PARTIAL, "run finished, but a backup could not read some inputs (see above)");
        cli_info("run: all steps succeeded\n");
        return CLI_EXIT_OK;
}
