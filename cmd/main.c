/* SPDX-License-Identifier: MIT */
#include <locale.h>

#include "cmd/common.h"
#include "store/crypto.h"

typedef struct Command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
} Command;

static const Command commands[] = {
        { "init", cmd_init, "create a repository" },
        { "key", cmd_key, "list, add, remove or change key slots (passphrases)" },
        { "backup", cmd_backup, "back up files, directories or a stream into a new snapshot" },
        { "snapshots", cmd_snapshots, "list snapshots" },
        { "ls", cmd_ls, "list the files in a snapshot" },
        { "dump", cmd_dump, "write one file of a snapshot to stdout" },
        { "restore", cmd_restore, "restore a snapshot into a directory" },
        { "diff", cmd_diff, "show what changed between two snapshots" },
        { "mount", cmd_mount, "browse every snapshot as a read-only file system (FUSE)" },
        { "forget", cmd_forget, "remove snapshots by a retention policy, or by name" },
        { "prune", cmd_prune, "remove the data no snapshot uses" },
        { "stats", cmd_stats, "show repository size and deduplication" },
        { "check", cmd_check, "verify the repository's structure (and data with --read-data)" },
        { "index", cmd_index, "rebuild the local index" },
        { "unlock", cmd_unlock, "remove stale locks" },
        { "sync", cmd_sync, "copy the repository to another location (S3, WebDAV, rclone, directory)" },
        { "config", cmd_config, "check the config file" },
        { "status", cmd_status, "monitoring check: age of the newest snapshot, off-site copy, check, drill" },
        { "drill", cmd_drill, "restore a snapshot into a scratch database and verify it" },
        { "run", cmd_run, "the nightly job: back up the configured databases, sync, forget/prune" },
};

static void print_main_help(FILE *f) {
        fprintf(f,
                "Usage: longbox [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
                "       longbox --version\n"
                "\n"
                "longbox is a deduplicating, encrypted backup store.\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < LB_ARRAY_SIZE(commands); i++)
                fprintf(f, "  %-10s  %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\n'longbox COMMAND --help' describes a command. See also longbox(1).\n");
}

static const Command *find_command(const char *name) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static int run_help(int argc, char **argv) {
        /* "longbox help CMD" is "longbox CMD --help". */
        if (argc < 2) {
                print_main_help(stdout);
                fputs(cli_help_globals, stdout);
                fputs(cli_help_exit_codes, stdout);
                return CLI_EXIT_OK;
        }
        const Command *c = find_command(argv[1]);
        if (!c)
                return cli_usage_error("unknown command '%s'", argv[1]);
        char help[] = "--help";
        char *args[] = { argv[1], help, NULL };
        cli.command = c->name;
        return c->run(2, args);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };

        setlocale(LC_CTYPE, "");
        /* Seconds and ratios: enough digits, without binary noise. */
        json_c_set_serialization_double_format("%.9g", JSON_C_OPTION_GLOBAL);
        if (lb_crypto_init() < 0)
                return cli_error(CLI_EXIT_ERROR, "Failed to start libsodium: the crypto library could not initialise");

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, "+:" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_VERSION:
                        printf("%s\n", LB_VERSION_STRING);
                        return CLI_EXIT_OK;
                case OPT_HELP:
                        print_main_help(stdout);
                        fputs(cli_help_globals, stdout);
                        fputs(cli_help_exit_codes, stdout);
                        return CLI_EXIT_OK;
                default: {
                        int k = cli_global_option(c, argv, "");
                        if (k >= 0)
                                return k;
                }
                }
        }

        if (optind >= argc) {
                print_main_help(stderr);
                return CLI_EXIT_USAGE;
        }
        const char *name = argv[optind];
        if (strcmp(name, "help") == 0)
                return run_help(argc - optind, argv + optind);
        if (strcmp(name, "version") == 0) {
                printf("%s\n", LB_VERSION_STRING);
                return CLI_EXIT_OK;
        }
        const Command *cmd = find_command(name);
        if (!cmd)
                return cli_usage_error("unknown command '%s'", name);
        cli.command = cmd->name;
        /* Unattended commands record their result (event, metrics, notify). */
        bool report = cli_report_wanted(cmd->name, argc - optind, argv + optind);
        if (report)
                cli_report_begin(cmd->name);
        int r = cmd->run(argc - optind, argv + optind);
        if (fflush(stdout) != 0 && r == CLI_EXIT_OK)
                r = cli_fail(-errno, "write to standard output");
        if (report)
                r = cli_report_end(r, true);
        cli_report_cleanup();
        return r;
}
