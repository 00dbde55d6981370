/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Shared by the subcommands: global options, exit codes, error reporting
 * (each failure once, on stderr, "longbox: Failed to <do what> <object>:
 * <reason>"), passphrases, opening the repository, output helpers.
 */

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>

#include "lb-config.h"
#include "store/policy.h"
#include "store/repo.h"

#define LB_VERSION_STRING "longbox " LB_VERSION

/* Exit codes (also in --help and docs/longbox.1). */
typedef enum CliExit {
        CLI_EXIT_OK = 0,
        CLI_EXIT_ERROR = 1,        /* any other failure */
        CLI_EXIT_USAGE = 2,        /* bad option, missing argument */
        CLI_EXIT_PARTIAL = 3,      /* backup recorded, but some inputs were unreadable */
        CLI_EXIT_NO_REPO = 10,     /* no repository at the location */
        CLI_EXIT_LOCKED = 11,      /* the repository is locked by another process */
        CLI_EXIT_BAD_PASSWORD = 12,/* no key slot opens with the passphrase */
        CLI_EXIT_CORRUPT = 13,     /* damaged or missing data found */
} CliExit;

/* Global options, valid before or after the subcommand. */
typedef struct CliGlobals {
        const char *repo;
        const char *password_file;
        const char *cache_dir;
        bool json;
        bool quiet;
        int64_t lock_wait_ns;      /* --lock-wait; < 0: not given (default CLI_LOCK_WAIT_DEFAULT_NS) */
        const char *config;        /* --config FILE */
        const char *metrics_file;  /* --metrics-file FILE */
        bool help_shown;           /* --help ran: nothing to record */
        const char *command;       /* "backup", "key add", ...: for messages */
        const char *ca_cert;       /* remote locations: trusted CAs (PEM) */
        const char *limit_upload;  /* remote locations: KiB/s, as given */
} CliGlobals;
extern CliGlobals cli;

enum {
        OPT_REPO = 0x100,
        OPT_PASSWORD_FILE,
        OPT_CACHE_DIR,
        OPT_JSON,
        OPT_LOCK_WAIT,
        OPT_CA_CERT,
        OPT_LIMIT_UPLOAD,
        OPT_CONFIG,
        OPT_METRICS_FILE,
        OPT_QUIET = 'q',
        OPT_HELP = 'h',
        OPT_VERSION = 0x180,
        /* subcommands number their own options from here */
        OPT_FIRST_LOCAL = 0x200,
};

#define CLI_GLOBAL_OPTIONS                                                   \
        { "repo", required_argument, NULL, OPT_REPO },                       \
        { "password-file", required_argument, NULL, OPT_PASSWORD_FILE },     \
        { "cache-dir", required_argument, NULL, OPT_CACHE_DIR },             \
        { "json", no_argument, NULL, OPT_JSON },                             \
        { "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },             \
        { "ca-cert", required_argument, NULL, OPT_CA_CERT },                 \
        { "limit-upload", required_argument, NULL, OPT_LIMIT_UPLOAD },       \
        { "config", required_argument, NULL, OPT_CONFIG },                   \
        { "metrics-file", required_argument, NULL, OPT_METRICS_FILE },       \
        { "quiet", no_argument, NULL, OPT_QUIET },                           \
        { "help", no_argument, NULL, OPT_HELP }

/* Short options every getopt string ends with (after a leading ":"). */
#define CLI_GLOBAL_SHORT "hq"

/* The help text block shared by every --help. */
extern const char cli_help_globals[];
extern const char cli_help_exit_codes[];

/* Handles a getopt_long result that is not a subcommand option: a global
 * option (returns -1: go on), -h (prints help, returns 0), '?' or ':'
 * (reports, returns CLI_EXIT_USAGE). */
int cli_global_option(int c, char **argv, const char *help);
/* Reports a usage error ("longbox CMD: MESSAGE; see longbox CMD --help"), returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Resets getopt for a new argument vector. */
void cli_getopt_reset(void);

/* A reason for err that a sysadmin can act on (strerror, with longbox's own meanings). */
const char *cli_strerror(int err);
/* The exit code for an error that has no more specific meaning in its context. */
int cli_exit_code(int err);
/* "longbox: Failed to <what>: <reason>"; returns cli_exit_code(err). */
int cli_fail(int err, const char *what_fmt, ...) __attribute__((format(printf, 2, 3)));
/* "longbox: <message>" for messages that are whole sentences of their own; returns code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Informational output on stdout, suppressed by --quiet. */
void cli_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- passphrases ---- */
/* The passphrase: --password-file, LONGBOX_PASSWORD_FILE, LONGBOX_PASSWORD,
 * else a prompt on the terminal (twice when confirm). Returns 0 or an exit code
 * after reporting. Free with cli_passphrase_free. */
int cli_get_passphrase(bool confirm, char **ret);
/* The new passphrase for key add/passwd: file, else LONGBOX_NEW_PASSWORD, else prompt twice. */
int cli_get_new_passphrase(const char *file, char **ret);
void cli_passphrase_free(char *p);

/* ---- the repository ---- */
enum {
        CLI_OPEN_INDEX = 1 << 0,          /* lb_repo_index_update */
        CLI_OPEN_LOCK_SHARED = 1 << 1,
        CLI_OPEN_LOCK_EXCLUSIVE = 1 << 2,
};
/* The location (--repo or LONGBOX_REPO); reports and returns NULL if none. */
const char *cli_repo_location(void);
/* The cache directory (--cache-dir, LONGBOX_CACHE_DIR, XDG). Caller frees; NULL if none. */
char *cli_cache_dir(void);
/* Opens the repository with the user's passphrase, then does what flags ask.
 * Returns 0 or an exit code after reporting. */
int cli_open_repo(unsigned flags, LbRepo **ret);
/* Maps a lock failure to its message and exit code. */
int cli_lock_failed(LbRepo *r, int err);
/* How long to wait for a lock held by another process. */
#define CLI_LOCK_WAIT_DEFAULT_NS (10 * 60 * INT64_C(1000000000))
int64_t cli_lock_wait_ns(void);
/* Takes the lock, waiting up to --lock-wait (saying so on stderr once
 * when it has to wait). Returns 0 or an exit code after reporting. */
int cli_lock(LbRepo *r, bool exclusive);
/* Parses "90", "30s", "10m", "2h" (seconds by default) into ns. */
int cli_parse_duration(const char *s, int64_t *ret_ns);
/* Finds a snapshot by "latest" or id prefix; returns 0 or an exit code after reporting. */
int cli_find_snapshot(LbRepo *r, const char *spec, LbSnapshot **ret);

static inline void cli_repo_freep(LbRepo **r) {
        lb_repo_free(*r);
}
#define _cleanup_repo_ _cleanup_(cli_repo_freep)
static inline void cli_snapshot_freep(LbSnapshot **s) {
        lb_snapshot_free(*s);
}
#define _cleanup_snapshot_ _cleanup_(cli_snapshot_freep)
static inline void cli_json_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(cli_json_putp)

/* ---- output ---- */
/* Prints a JSON value on one line to stdout. */
void cli_json_print(json_object *o);
/* "YYYY-MM-DD HH:MM:SS" in the local zone of this machine. */
void cli_format_local_time(int64_t time_ns, char out[32]);
/* RFC 3339 with nanoseconds and the given offset east of UTC. */
void cli_format_rfc3339(int64_t time_ns, int32_t tz_offset, char out[48]);
/* RFC 3339 in the local zone of this machine. */
void cli_format_rfc3339_local(int64_t time_ns, char out[48]);
/* "1.5 MiB" */
void cli_format_bytes(uint64_t n, char out[32]);
/* "drwxr-xr-x" for a node. */
void cli_format_mode(const LbNode *n, char out[11]);
const char *cli_node_type_name(int type);
/* Parses "123", "64K", "1M" (binary units) into bytes; -EINVAL/-ERANGE. */
int cli_parse_size(const char *s, uint64_t *ret);
/* Parses a decimal integer in [min, max]. */
int cli_parse_int(const char *s, long long min, long long max, long long *ret);
void cli_id_short(const LbId *id, char out[9]);


/* ---- subcommands ---- */
int cmd_init(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_forget(int argc, char **argv);

/* Prune as `prune` and `forget --prune` run it (cmd/prune.c): takes a
 * shared lock if r has none, updates the index, prunes, prints the
 * summary. ignore: snapshots a dry run of forget would remove. Returns
 * an exit code. */
int cli_prune(LbRepo *r, unsigned max_unused, bool dry_run, const LbId *ignore, size_t n_ignore);
/* Parses --max-unused; 0 or an exit code after reporting. */
int cli_parse_max_unused(const char *s, unsigned *ret);
int cmd_sync(int argc, char **argv);
/* Applies --ca-cert, --limit-upload and the LONGBOX_HTTP_* variables to the
 * HTTP layer of remote backends; returns 0 or an exit code after reporting.
 * cli_repo_location() calls it. */
int cli_http_setup(void);
int cmd_config(int argc, char **argv);   /* cmd/config-cmd.c */
int cmd_status(int argc, char **argv);   /* cmd/status.c */
int cmd_drill(int argc, char **argv);    /* cmd/drill.c */
int cmd_run(int argc, char **argv);      /* cmd/run.c */

/* ---- the config file (cmd/config-cmd.c; format in cmd/config.h) ---- */
typedef struct CliConfig CliConfig;
/* The config: --config, LONGBOX_CONFIG, else /etc/longbox/longbox.conf when
 * it exists. Loaded and checked (permissions too) on first use. Returns 0
 * with *ret set, or NULL when there is no config file; or an exit code
 * after reporting every problem. */
int cli_config_get(const CliConfig **ret);
/* The [retention] policy of the config: 0 and *ret (keep_tags empty),
 * -ENOENT when the config has none (or there is no config), or an exit
 * code (> 0) after reporting a broken config. *ret_prune: prune after
 * forget. */
int cli_config_retention(LbPolicy *ret, bool *ret_prune);
/* The [remote] location, or NULL (no config, or none there). */
const char *cli_config_remote(void);
/* Exports the NAME=VALUE lines of [remote] credentials-file (AWS_* and
 * LONGBOX_WEBDAV_PASSWORD) to the environment, without overriding what is
 * set there. 0 or an exit code after reporting. */
int cli_config_remote_credentials(void);

/* ---- results of unattended commands (cmd/report.c) ----
 * backup, sync, forget, prune, check, drill and run record an event in
 * the repository (docs/design.md "Events"), update the --metrics-file and
 * fire the [notify] hooks. main() wraps the command; run wraps each step
 * too. Nested reports (run -> backup) are allowed, two levels deep. */
/* Whether the command records its result (not for --dry-run). */
bool cli_report_wanted(const char *command, int argc, char **argv);
void cli_report_begin(const char *kind);
/* The repository the command opened (called by cli_open_repo): its
 * location and keys are kept so the event can be written at the end. */
void cli_report_repo(LbRepo *r);
void cli_report_snapshot(const LbId *id);
void cli_report_meta(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first error message of the current report(s) (called by cli_error/cli_fail). */
void cli_report_message(const char *msg);
/* Records the result of the innermost report: event, metrics and, when
 * notify, the notification. Returns exit_code. */
int cli_report_end(int exit_code, bool notify);
/* The backup statistics of the current report (event meta and metrics). */
void cli_report_backup(const LbId *snapshot, const LbSnapshotStats *s, const char *database);
/* Wipes the kept keys. */
void cli_report_cleanup(void);
int cmd_mount(int argc, char **argv);   /* cmd/mount/mount.c */
