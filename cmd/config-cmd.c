/* SPDX-License-Identifier: MIT */
/*
 * The config file as the commands see it (loaded once, on first use), and
 * `longbox config check`.
 */
#include <sys/stat.h>

#include "cmd/common.h"
#include "cmd/config.h"

static const char help[] =
        "Usage: longbox config check [FILE]\n"
        "\n"
        "Reads the config file (FILE, else --config, LONGBOX_CONFIG or\n"
        "/etc/longbox/longbox.conf) and reports every problem, one per line, as\n"
        "FILE:LINE: what is wrong: unknown sections and keys, invalid values, a\n"
        "config holding secrets (or naming a secret file) that group or others may\n"
        "read, a secret file others may read, files it names that do not exist.\n"
        "Prints \"FILE: OK\" and the sections found when there is nothing to fix.\n"
        "\n"
        "Exit code 0 when the file is valid, 1 when it has problems.\n";

static CliConfig *loaded;
static bool load_done;
static int load_code;

static const char *config_path(bool *ret_explicit) {
        *ret_explicit = true;
        if (cli.config)
                return cli.config;
        const char *e = getenv("LONGBOX_CONFIG");
        if (e && *e)
                return e;
        *ret_explicit = false;
        return CLI_CONFIG_DEFAULT_PATH;
}

static void report_diag(const CliDiag *d) {
        for (size_t i = 0; i < d->n; i++)
                fprintf(stderr, "longbox: %s\n", d->msgs[i]);
}

int cli_config_get(const CliConfig **ret) {
        if (load_done) {
                *ret = loaded;
                return load_code;
        }
        load_done = true;
        bool explicit_path;
        const char *path = config_path(&explicit_path);
        if (!explicit_path && access(path, F_OK) < 0 && errno == ENOENT) {
                *ret = NULL;
                return 0;
        }
        CliDiag d = {};
        int k = cli_config_parse_file(path, true, &loaded, &d);
        if (k < 0) {
                report_diag(&d);
                cli_diag_clear(&d);
                load_code = cli_error(CLI_EXIT_USAGE, "the config file %s has %s; 'longbox config check' lists "
                                      "them", path, k == -EINVAL ? "problems (see above)" : "an error (see above)");
                *ret = NULL;
                return load_code;
        }
        cli_diag_clear(&d);
        *ret = loaded;
        return 0;
}

int cli_config_retention(LbPolicy *ret, bool *ret_prune) {
        const CliConfig *c = NULL;
        int code = cli_config_get(&c);
        if (code)
                return code;
        if (!c || !c->has_retention)
                return -ENOENT;
        *ret = c->retention;
        ret->keep_tags = NULL;
        ret->n_keep_tags = 0;
        if (ret_prune)
                *ret_prune = c->prune;
        return 0;
}

/* Names a credentials file may set: the remote backends read them from
 * the environment. */
static const char *const credential_names[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
        "AWS_DEFAULT_REGION", "LONGBOX_WEBDAV_PASSWORD",
};

int cli_config_remote_credentials(void) {
        const CliConfig *c = NULL;
        int code = cli_config_get(&c);
        if (code)
                return code;
        if (!c || !c->remote_credentials_file)
                return 0;
        _cleanup_buf_ LbBuf b = {};
        int k = lb_read_file(c->remote_credentials_file, 64 << 10, &b);
        if (k < 0)
                return cli_fail(k, "read the remote's credentials file %s", c->remote_credentials_file);
        if (memchr(b.data, 0, b.len))
                return cli_error(CLI_EXIT_ERROR, "Failed to read %s: it holds a NUL byte; write NAME=VALUE lines",
                                 c->remote_credentials_file);
        _cleanup_free_ char *text = strndup((const char *) b.data, b.len);
        if (!text)
                return cli_fail(-ENOMEM, "read the remote's credentials");
        unsigned line = 0;
        for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                line++;
                l[strcspn(l, "\r")] = 0;
                while (*l == ' ' || *l == '\t')
                        l++;
                if (!*l || *l == '#')
                        continue;
                char *eq = strchr(l, '=');
                bool known = false;
                if (eq) {
                        *eq = 0;
                        for (size_t i = 0; i < LB_ARRAY_SIZE(credential_names); i++)
                                known |= strcmp(l, credential_names[i]) == 0;
                }
                if (!known)
                        return cli_error(CLI_EXIT_USAGE, "%s: a line is not NAME=VALUE with NAME one of "
                                         "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, "
                                         "AWS_DEFAULT_REGION, LONGBOX_WEBDAV_PASSWORD", c->remote_credentials_file);
                /* The environment wins, as for every other setting. */
                if (setenv(l, eq + 1, 0) < 0)
                        return cli_fail(-errno, "set %s", l);
        }
        return 0;
}

const char *cli_config_remote(void) {
        const CliConfig *c = NULL;
        if (cli_config_get(&c) != 0 || !c)
                return NULL;
        return c->remote_location;
}

static int config_check(const char *file) {
        bool explicit_path;
        const char *path = file ? file : config_path(&explicit_path);
        CliDiag d = {};
        CliConfig *c = NULL;
        int k = cli_config_parse_file(path, true, &c, &d);
        if (k < 0) {
                for (size_t i = 0; i < d.n; i++)
                        printf("%s\n", d.msgs[i]);
                size_t n = d.n;
                cli_diag_clear(&d);
                return cli_error(CLI_EXIT_ERROR, "%zu problem%s in %s", n, n == 1 ? "" : "s", path);
        }
        cli_diag_clear(&d);
        printf("%s: OK\n", path);
        if (!cli.quiet) {
                printf("  repository: %s\n", c->repo_location ? c->repo_location : "(not set)");
                printf("  remote:     %s\n", c->remote_location ? c->remote_location : "(not set)");
                for (size_t i = 0; i < c->n_dbs; i++)
                        printf("  database:   %s\n", c->dbs[i].name ? c->dbs[i].name : "(unnamed)");
                if (c->has_retention)
                        printf("  retention:  last %u, hourly %u, daily %u, weekly %u, monthly %u, yearly %u%s\n",
                               c->retention.last, c->retention.hourly, c->retention.daily, c->retention.weekly,
                               c->retention.monthly, c->retention.yearly, c->prune ? ", then prune" : "");
                printf("  notify:     %s%s%s\n", c->notify_command ? "command " : "",
                       c->webhook || c->webhook_file ? "webhook " : "",
                       !c->notify_command && !c->webhook && !c->webhook_file ? "(none)" : "");
        }
        cli_config_free(c);
        return CLI_EXIT_OK;
}

int cmd_config(int argc, char **argv) {
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
        int nargs = argc - optind;
        if (nargs < 1)
                return cli_usage_error("missing the action: check");
        if (strcmp(argv[optind], "check") != 0)
                return cli_usage_error("unknown action '%s': the action is check", argv[optind]);
        if (nargs > 2)
                return cli_usage_error("too many arguments: give at most one FILE");
        return config_check(nargs == 2 ? argv[optind + 1] : NULL);
}
