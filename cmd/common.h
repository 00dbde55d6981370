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
        const char *command;       /* "backup", "key add", ...: for messages */
} CliGlobals;
extern CliGlobals cli;

enum {
        OPT_REPO = 0x100,
        OPT_PASSWORD_FILE,
        OPT_CACHE_DIR,
        OPT_JSON,
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
int cmd_mount(int argc, char **argv);   /* cmd/mount/mount.c */
