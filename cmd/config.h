/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * longbox.conf: the CLI's configuration file (INI, parsed by libinih).
 * Sections and keys: docs/longbox.1 "CONFIGURATION" and
 * scripts/longbox.conf.example. This file parses and validates only; it
 * prints nothing (cmd/config-cmd.c reports and applies).
 *
 * Precedence (applied by cmd/common.c and the commands): command-line
 * flag > environment variable > config file > built-in default.
 */

#include <stdint.h>

#include "store/policy.h"
#include "store/util.h"

#define CLI_CONFIG_DEFAULT_PATH "/etc/longbox/longbox.conf"
/* A config file larger than this is refused. */
#define CLI_CONFIG_MAX_SIZE (1u << 20)
#define CLI_CONFIG_MAX_DATABASES 64
#define CLI_CONFIG_MAX_SQL_CHECKS 64

typedef struct CliConfigDatabase {
        char *name;              /* [database NAME]; NULL for a plain [database] */
        char *conninfo;
        unsigned jobs;           /* 0: the command's default */
        int order;               /* -1 default, 0 pk, 1 physical */
        unsigned line;           /* of the section header */
} CliConfigDatabase;

typedef struct CliConfig {
        char *path;
        /* [repository] */
        char *repo_location;
        char *password_file;
        char *password;          /* inline secret (prefer password-file) */
        char *cache_dir;
        /* [remote] */
        char *remote_location;
        char *remote_credentials_file;
        int64_t remote_max_age_ns;      /* status: off-site copy older than this warns */
        /* [database] / [database NAME] */
        CliConfigDatabase *dbs;
        size_t n_dbs;
        /* [retention] */
        bool has_retention;
        LbPolicy retention;      /* keep_tags unused (NULL) */
        bool prune;              /* run: prune after forget (default yes) */
        int64_t prune_interval_ns;      /* run: prune when the last successful one is older */
        /* [notify] */
        char *notify_command;
        char *webhook;           /* inline URL (a secret: it usually holds a token) */
        char *webhook_file;      /* file holding the URL */
        bool notify_on_success;
        unsigned notify_timeout_s;
        /* [drill] */
        char *drill_conninfo;    /* the server to restore into (its dbname is replaced) */
        char *drill_prefix;
        char **sql_checks;
        size_t n_sql_checks;
        int64_t drill_interval_ns;
        unsigned drill_jobs;
        /* [check] */
        int64_t check_interval_ns;
        bool check_read_data;
        /* [status] */
        int64_t max_age_ns;
        char *metrics_file;
        /* whether the file holds a secret or names a secret file */
        bool has_secrets;
        /* The file's bytes as parsed, and where each value that holds a
         * secret inline starts (offsets into text, ascending): what
         * cli_config_redact() replaces. */
        char *text;
        size_t text_len;
        size_t *secret_values;
        size_t n_secret_values;
        /* The file's permission bits, owner and mtime (cli_config_parse_file;
         * 0600 and 0 for text parsed from memory). */
        uint32_t file_mode, file_uid, file_gid;
        int64_t file_mtime_ns;
} CliConfig;

/* Defaults of the values that have one (used without a config file too). */
#define CLI_DEFAULT_MAX_AGE_NS (26ll * 3600 * 1000000000)
#define CLI_DEFAULT_REMOTE_MAX_AGE_NS (26ll * 3600 * 1000000000)
#define CLI_DEFAULT_CHECK_INTERVAL_NS (8ll * 86400 * 1000000000)
#define CLI_DEFAULT_DRILL_INTERVAL_NS (92ll * 86400 * 1000000000)
#define CLI_DEFAULT_DRILL_PREFIX "longbox_drill_"
#define CLI_DEFAULT_NOTIFY_TIMEOUT_S 30
#define CLI_DEFAULT_PRUNE_INTERVAL_NS (7ll * 86400 * 1000000000 - 3600ll * 1000000000)

/* A list of problems, each "FILE:LINE: message" (or "FILE: message"). */
typedef struct CliDiag {
        char **msgs;
        size_t n;
} CliDiag;
void cli_diag_clear(CliDiag *d);

/* Parses and validates the file at path. Problems go into diag (every
 * one found, in line order); with check_files the file's and the named
 * secret files' permissions are checked, and the files it names must exist. Returns 0 and *ret when
 * there is no problem; -EINVAL (problems in diag) or -errno (the file
 * cannot be read; also in diag). */
int cli_config_parse_file(const char *path, bool check_files, CliConfig **ret, CliDiag *diag) _warn_unused_;
/* The same over text in memory (name used in messages); no permission checks. */
int cli_config_parse_text(const char *name, const char *text, size_t len, CliConfig **ret,
                          CliDiag *diag) _warn_unused_;
CliConfig *cli_config_free(CliConfig *c);   /* NULL ok; returns NULL */

/* What replaces a secret value in cli_config_redact(). */
#define CLI_CONFIG_REDACTED "<redacted>"
/* The config file's text with every value that holds a secret inline
 * replaced by CLI_CONFIG_REDACTED, from the value's first byte to the end
 * of its line (an inline comment after a secret goes too): the password,
 * the webhook URL, any key named like a secret (password, passphrase,
 * secret, token, credential, key, auth; not the "-file" keys, whose
 * values are paths), and a value that is not a path but holds a password
 * (a conninfo with password=, a URL with user:password@). The parser
 * itself marks them, line by line; everything else (comments, blank
 * lines, layout, line endings, the paths of secret files) is kept byte
 * for byte. out is replaced. */
int cli_config_redact(const CliConfig *c, LbBuf *out) _warn_unused_;
void cli_config_defaults(CliConfig *c);

/* "26h", "90d", "1d12h", "30m" (minutes), "45s", "2w": units s, m, h, d,
 * w, each at most once; a plain number is seconds. -EINVAL/-ERANGE. */
int cli_parse_age(const char *s, int64_t *ret_ns) _warn_unused_;
/* "2d 3h" style for messages. */
void cli_format_age(int64_t ns, char out[32]);
