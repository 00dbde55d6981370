/* SPDX-License-Identifier: MIT */
/*
 * longbox.conf parser (see cmd/config.h). libinih splits the lines; this
 * file feeds it one line at a time (so every problem carries its line
 * number), checks the syntax inih would only count, and validates every
 * section, key and value.
 */
#include <ctype.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cmd/config.h"

void cli_diag_clear(CliDiag *d) {
        for (size_t i = 0; i < d->n; i++)
                free(d->msgs[i]);
        free(d->msgs);
        *d = (CliDiag) {};
}

static void diag_add(CliDiag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diag_add(CliDiag *d, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (!m)
                return;
        char **v = reallocarray(d->msgs, d->n + 1, sizeof *v);
        if (!v) {
                free(m);
                return;
        }
        d->msgs = v;
        d->msgs[d->n++] = m;
}

CliConfig *cli_config_free(CliConfig *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->repo_location);
        free(c->password_file);
        if (c->password) {
                explicit_bzero(c->password, strlen(c->password));
                free(c->password);
        }
        free(c->cache_dir);
        free(c->remote_location);
        free(c->remote_credentials_file);
        for (size_t i = 0; i < c->n_dbs; i++) {
                free(c->dbs[i].name);
                free(c->dbs[i].conninfo);
        }
        free(c->dbs);
        free(c->notify_command);
        free(c->webhook);
        free(c->webhook_file);
        free(c->drill_conninfo);
        free(c->drill_prefix);
        for (size_t i = 0; i < c->n_sql_checks; i++)
                free(c->sql_checks[i]);
        free(c->sql_checks);
        free(c->metrics_file);
        if (c->text) {
                explicit_bzero(c->text, c->text_len);
                free(c->text);
        }
        free(c->secret_values);
        free(c);
        return NULL;
}

static void config_freep(CliConfig **c) {
        cli_config_free(*c);
}

void cli_config_defaults(CliConfig *c) {
        c->remote_max_age_ns = CLI_DEFAULT_REMOTE_MAX_AGE_NS;
        c->prune = true;
        c->prune_interval_ns = CLI_DEFAULT_PRUNE_INTERVAL_NS;
        c->notify_timeout_s = CLI_DEFAULT_NOTIFY_TIMEOUT_S;
        c->drill_interval_ns = CLI_DEFAULT_DRILL_INTERVAL_NS;
        c->check_interval_ns = CLI_DEFAULT_CHECK_INTERVAL_NS;
        c->max_age_ns = CLI_DEFAULT_MAX_AGE_NS;
}

/* ---- values ---- */

int cli_parse_age(const char *s, int64_t *ret_ns) {
        if (!s || !*s)
                return -EINVAL;
        static const struct {
                char unit;
                int64_t sec;
        } units[] = { { 'w', 7 * 86400 }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
        const char *p = s;
        int64_t total = 0;
        unsigned seen = 0;
        while (*p) {
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                errno = 0;
                char *end;
                unsigned long long v = strtoull(p, &end, 10);
                if (errno == ERANGE || v > 100000000ull)
                        return -ERANGE;
                int64_t mult = 0;
                if (*end == 0 && p == s) {
                        mult = 1; /* a plain number: seconds */
                } else {
                        for (size_t i = 0; i < LB_ARRAY_SIZE(units); i++)
                                if (*end == units[i].unit) {
                                        if (seen & (1u << i))
                                                return -EINVAL;
                                        seen |= 1u << i;
                                        mult = units[i].sec;
                                }
                        if (!mult)
                                return -EINVAL;
                        end++;
                }
                total += (int64_t) v * mult;
                if (total > 100ll * 365 * 86400)
                        return -ERANGE;
                p = end;
        }
        *ret_ns = total * 1000000000;
        return 0;
}

void cli_format_age(int64_t ns, char out[32]) {
        int64_t s = ns / 1000000000;
        if (s < 0)
                s = 0;
        if (s < 60)
                snprintf(out, 32, "%llds", (long long) s);
        else if (s < 3600)
                snprintf(out, 32, "%lldm", (long long) (s / 60));
        else if (s < 86400)
                snprintf(out, 32, "%lldh%02lldm", (long long) (s / 3600), (long long) (s % 3600 / 60));
        else
                snprintf(out, 32, "%lldd%02lldh", (long long) (s / 86400), (long long) (s % 86400 / 3600));
}

static int parse_bool(const char *v, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < LB_ARRAY_SIZE(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(v, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

static int parse_uint(const char *v, unsigned long long max, unsigned long long *ret) {
        if (!*v || !isdigit((unsigned char) *v))
                return -EINVAL;
        errno = 0;
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end)
                return -EINVAL;
        if (errno == ERANGE || n > max)
                return -ERANGE;
        *ret = n;
        return 0;
}

/* A conninfo or URI that holds a password: password= (libpq also
 * percent-decodes a URI's parameter names: "pass%77ord"), or a URL's
 * user:password@. */
static bool conninfo_has_password(const char *in) {
        /* Decoded leniently (a bad escape stays as it is) and whole (a
         * fixed buffer let a password past its end go unseen); out of
         * memory, the value is taken to hold one. */
        _cleanup_free_ char *s = malloc(strlen(in) + 1);
        if (!s)
                return true;
        size_t j = 0;
        for (size_t i = 0; in[i]; i++) {
                int hi, lo;
                if (in[i] == '%' && (hi = lb_hex_digit(in[i + 1])) >= 0 && (lo = lb_hex_digit(in[i + 2])) >= 0) {
                        s[j++] = (char) (hi << 4 | lo);
                        i += 2;
                } else
                        s[j++] = in[i];
        }
        s[j] = 0;
        if (strcasestr(s, "password"))
                return true;
        const char *scheme = strstr(s, "://");
        if (!scheme)
                return false;
        const char *at = strchr(scheme + 3, '@');
        if (!at)
                return false;
        const char *colon = memchr(scheme + 3, ':', (size_t) (at - scheme - 3));
        return colon != NULL;
}

/* ---- the parse ---- */

typedef enum Section {
        SEC_NONE,
        SEC_UNKNOWN,
        SEC_REPOSITORY,
        SEC_REMOTE,
        SEC_DATABASE,
        SEC_RETENTION,
        SEC_NOTIFY,
        SEC_DRILL,
        SEC_CHECK,
        SEC_STATUS,
        _SEC_MAX,
} Section;

static const char *const section_names[_SEC_MAX] = {
        [SEC_REPOSITORY] = "repository", [SEC_REMOTE] = "remote", [SEC_DATABASE] = "database",
        [SEC_RETENTION] = "retention",   [SEC_NOTIFY] = "notify", [SEC_DRILL] = "drill",
        [SEC_CHECK] = "check",           [SEC_STATUS] = "status",
};

typedef struct Parse {
        CliConfig *c;
        CliDiag *d;
        const char *name;       /* for messages */
        const char *text;
        size_t len, pos;
        unsigned line;
        Section sec;
        char sec_label[128];    /* "[database shop]" */
        unsigned sec_line[_SEC_MAX];
        char *seen[64];         /* keys seen in the current section */
        size_t n_seen;
        const char *secret_key; /* first secret found: "password-file in [repository]" */
        char secret_buf[200];
        /* The physical line inih is parsing: where it starts in text, the
         * blanks skipped, and the buffer handed to inih (key and value
         * point into it), for the offsets of secret values. */
        size_t line_start, line_skip;
        const char *str;
        size_t str_size;
        bool oom;
} Parse;

static void seen_reset(Parse *p) {
        for (size_t i = 0; i < p->n_seen; i++)
                free(p->seen[i]);
        p->n_seen = 0;
}

#define BAD(p, ...) diag_add((p)->d, __VA_ARGS__)

static void note_secret(Parse *p, const char *key) {
        p->c->has_secrets = true;
        if (!p->secret_key) {
                snprintf(p->secret_buf, sizeof p->secret_buf, "%s in %s", key, p->sec_label);
                p->secret_key = p->secret_buf;
        }
}

static bool db_name_ok(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 63)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
                        return false;
        return true;
}

/* A section header line (without the brackets). */
static void start_section(Parse *p, char *name) {
        seen_reset(p);
        /* trim */
        while (*name == ' ' || *name == '\t')
                name++;
        size_t n = strlen(name);
        while (n && (name[n - 1] == ' ' || name[n - 1] == '\t'))
                name[--n] = 0;
        snprintf(p->sec_label, sizeof p->sec_label, "[%s]", name);
        p->sec = SEC_UNKNOWN;
        if (strncmp(name, "database", 8) == 0 && (name[8] == 0 || name[8] == ' ' || name[8] == '\t')) {
                char *db = name + 8;
                while (*db == ' ' || *db == '\t')
                        db++;
                if (*db && !db_name_ok(db)) {
                        BAD(p, "%s:%u: invalid database section name '%s': use letters, digits, '_', '-' and '.'",
                            p->name, p->line, db);
                        return;
                }
                for (size_t i = 0; i < p->c->n_dbs; i++) {
                        const char *o = p->c->dbs[i].name ? p->c->dbs[i].name : "";
                        if (strcmp(o, db) == 0) {
                                BAD(p, "%s:%u: section %s appears twice (first on line %u)", p->name, p->line,
                                    p->sec_label, p->c->dbs[i].line);
                                return;
                        }
                }
                if (p->c->n_dbs >= CLI_CONFIG_MAX_DATABASES) {
                        BAD(p, "%s:%u: too many database sections (at most %d)", p->name, p->line,
                            CLI_CONFIG_MAX_DATABASES);
                        return;
                }
                CliConfigDatabase *v = reallocarray(p->c->dbs, p->c->n_dbs + 1, sizeof *v);
                if (!v)
                        return;
                p->c->dbs = v;
                v[p->c->n_dbs] = (CliConfigDatabase) { .name = *db ? strdup(db) : NULL, .order = -1, .line = p->line };
                p->c->n_dbs++;
                p->sec = SEC_DATABASE;
                return;
        }
        for (int s = SEC_REPOSITORY; s < _SEC_MAX; s++)
                if (s != SEC_DATABASE && strcmp(name, section_names[s]) == 0) {
                        if (p->sec_line[s]) {
                                BAD(p, "%s:%u: section %s appears twice (first on line %u)", p->name, p->line,
                                    p->sec_label, p->sec_line[s]);
                                return;
                        }
                        p->sec_line[s] = p->line;
                        p->sec = (Section) s;
                        return;
                }
        BAD(p, "%s:%u: unknown section %s (known: [repository], [remote], [database NAME], [retention], "
            "[notify], [drill], [check], [status])", p->name, p->line, p->sec_label);
}

/* inih reader: one physical line per call, checked first. */
static char *reader(char *str, int num, void *stream) {
        Parse *p = stream;
        if (p->pos >= p->len)
                return NULL;
        p->line_start = p->pos;
        p->str = NULL;
        const char *start = p->text + p->pos;
        const char *nl = memchr(start, '\n', p->len - p->pos);
        size_t n = nl ? (size_t) (nl - start) : p->len - p->pos;
        p->pos += n + (nl ? 1 : 0);
        p->line++;
        str[0] = '\n';
        str[1] = 0;
        if (n && start[n - 1] == '\r')
                n--;
        if (memchr(start, 0, n)) {
                BAD(p, "%s:%u: contains a NUL byte", p->name, p->line);
                return str;
        }
        if (num < 4 || n > (size_t) num - 2) {
                BAD(p, "%s:%u: line longer than %d characters", p->name, p->line, num - 2);
                return str;
        }
        /* Leading blanks: no continuation lines, each line stands alone. */
        size_t skip = 0;
        while (skip < n && (start[skip] == ' ' || start[skip] == '\t'))
                skip++;
        start += skip;
        n -= skip;
        if (n == 0 || start[0] == '#' || start[0] == ';')
                return str;
        char line[1024];
        if (n >= sizeof line) {
                BAD(p, "%s:%u: line longer than %zu characters", p->name, p->line, sizeof line - 1);
                return str;
        }
        memcpy(line, start, n);
        line[n] = 0;
        if (line[0] == '[') {
                char *close = strchr(line, ']');
                if (!close) {
                        BAD(p, "%s:%u: section header without ']'", p->name, p->line);
                        p->sec = SEC_UNKNOWN;
                        return str;
                }
                const char *after = close + 1;
                while (*after == ' ' || *after == '\t')
                        after++;
                if (*after && *after != '#' && *after != ';') {
                        BAD(p, "%s:%u: unexpected text after the section header", p->name, p->line);
                        p->sec = SEC_UNKNOWN;
                        return str;
                }
                *close = 0;
                start_section(p, line + 1);
                return str; /* inih need not see it: sections are tracked here */
        }
        if (!strchr(line, '=')) {
                BAD(p, "%s:%u: expected 'key = value', a [section] or a comment", p->name, p->line);
                return str;
        }
        if (line[0] == '=') {
                BAD(p, "%s:%u: missing key before '='", p->name, p->line);
                return str;
        }
        if (p->sec == SEC_NONE) {
                BAD(p, "%s:%u: key outside of any section", p->name, p->line);
                return str;
        }
        /* Give inih "key = value" lines only. A line needs '=' to get here,
         * but inih splits at the first '=' or ':', so "webhook: URL?a=b"
         * still reads as key "webhook". */
        snprintf(str, (size_t) num, "%s\n", line);
        p->line_skip = skip;
        p->str = str;
        p->str_size = (size_t) num;
        return str;
}

/* Copies a non-empty string value into *field. */
static void set_str(Parse *p, const char *key, const char *value, char **field) {
        if (!*value) {
                BAD(p, "%s:%u: %s in %s needs a value", p->name, p->line, key, p->sec_label);
                return;
        }
        free(*field);
        *field = strdup(value);
}

static void set_path(Parse *p, const char *key, const char *value, char **field) {
        if (value[0] != '/') {
                BAD(p, "%s:%u: %s in %s needs an absolute path, got '%s'", p->name, p->line, key, p->sec_label,
                    value);
                return;
        }
        set_str(p, key, value, field);
}

static void set_age(Parse *p, const char *key, const char *value, int64_t *field) {
        if (cli_parse_age(value, field) < 0)
                BAD(p, "%s:%u: invalid value '%s' for %s in %s: needs a duration such as 26h, 7d, 90d or 1d12h",
                    p->name, p->line, value, key, p->sec_label);
}

static void set_bool(Parse *p, const char *key, const char *value, bool *field) {
        if (parse_bool(value, field) < 0)
                BAD(p, "%s:%u: invalid value '%s' for %s in %s: needs yes or no", p->name, p->line, value, key,
                    p->sec_label);
}

static void set_count(Parse *p, const char *key, const char *value, unsigned *field) {
        unsigned long long n;
        if (strcmp(value, "unlimited") == 0) {
                *field = LB_POLICY_UNLIMITED;
                return;
        }
        if (parse_uint(value, 1000000, &n) < 0) {
                BAD(p, "%s:%u: invalid value '%s' for %s in %s: needs a number from 0 to 1000000 or 'unlimited'",
                    p->name, p->line, value, key, p->sec_label);
                return;
        }
        *field = (unsigned) n;
}

static void set_jobs(Parse *p, const char *key, const char *value, unsigned *field) {
        unsigned long long n;
        if (parse_uint(value, 16, &n) < 0 || n == 0) {
                BAD(p, "%s:%u: invalid value '%s' for %s in %s: needs a number from 1 to 16", p->name, p->line,
                    value, key, p->sec_label);
                return;
        }
        *field = (unsigned) n;
}

/* Whether a value holds a secret inline: by its key (any key named like
 * a secret, but not the "-file" keys: their values are paths), or, for a
 * value that is not a path, by its content (a conninfo or URL holding a
 * password). Errs on the side of a secret. */
static bool value_is_secret(const char *key, const char *value) {
        static const char *const words[] = { "password", "passphrase", "passwd", "secret", "token",
                                             "credential", "webhook", "key", "auth" };
        size_t n = strlen(key);
        if (!(n > 5 && strcmp(key + n - 5, "-file") == 0))
                for (size_t i = 0; i < LB_ARRAY_SIZE(words); i++)
                        if (strcasestr(key, words[i]))
                                return true;
        return value[0] != '/' && conninfo_has_password(value);
}

/* Remembers where the secret value of the current line starts in the text. */
static void note_secret_value(Parse *p, const char *value) {
        size_t off = p->line_start; /* not from inih's buffer (never so): the whole line */
        if (p->str && value >= p->str && value < p->str + p->str_size)
                off = p->line_start + p->line_skip + (size_t) (value - p->str);
        size_t *v = reallocarray(p->c->secret_values, p->c->n_secret_values + 1, sizeof *v);
        if (!v) {
                p->oom = true;
                return;
        }
        p->c->secret_values = v;
        v[p->c->n_secret_values++] = off;
}

static void unknown_key(Parse *p, const char *key) {
        BAD(p, "%s:%u: unknown key '%s' in %s", p->name, p->line, key, p->sec_label);
}

static int handler(void *user, const char *section, const char *key, const char *value) {
        Parse *p = user;
        CliConfig *c = p->c;
        if (!key || p->sec == SEC_UNKNOWN || p->sec == SEC_NONE)
                return 1;
        bool repeatable = p->sec == SEC_DRILL && strcmp(key, "sql-check") == 0;
        if (!repeatable) {
                for (size_t i = 0; i < p->n_seen; i++)
                        if (strcmp(p->seen[i], key) == 0) {
                                BAD(p, "%s:%u: key '%s' appears twice in %s", p->name, p->line, key, p->sec_label);
                                return 1;
                        }
                if (p->n_seen < LB_ARRAY_SIZE(p->seen)) {
                        char *k = strdup(key);
                        if (k)
                                p->seen[p->n_seen++] = k;
                }
        }

        switch (p->sec) {
        case SEC_REPOSITORY:
                if (strcmp(key, "location") == 0)
                        set_str(p, key, value, &c->repo_location);
                else if (strcmp(key, "password-file") == 0) {
                        set_path(p, key, value, &c->password_file);
                        note_secret(p, key);
                } else if (strcmp(key, "password") == 0) {
                        set_str(p, key, value, &c->password);
                        note_secret(p, key);
                } else if (strcmp(key, "cache-dir") == 0)
                        set_path(p, key, value, &c->cache_dir);
                else
                        unknown_key(p, key);
                break;
        case SEC_REMOTE:
                if (strcmp(key, "location") == 0)
                        set_str(p, key, value, &c->remote_location);
                else if (strcmp(key, "credentials-file") == 0) {
                        set_path(p, key, value, &c->remote_credentials_file);
                        note_secret(p, key);
                } else if (strcmp(key, "max-age") == 0)
                        set_age(p, key, value, &c->remote_max_age_ns);
                else
                        unknown_key(p, key);
                break;
        case SEC_DATABASE: {
                CliConfigDatabase *db = &c->dbs[c->n_dbs - 1];
                if (strcmp(key, "conninfo") == 0) {
                        set_str(p, key, value, &db->conninfo);
                        if (conninfo_has_password(value))
                                note_secret(p, key);
                } else if (strcmp(key, "jobs") == 0)
                        set_jobs(p, key, value, &db->jobs);
                else if (strcmp(key, "order") == 0) {
                        if (strcmp(value, "pk") == 0)
                                db->order = 0;
                        else if (strcmp(value, "physical") == 0)
                                db->order = 1;
                        else
                                BAD(p, "%s:%u: invalid value '%s' for order in %s: needs pk or physical", p->name,
                                    p->line, value, p->sec_label);
                } else
                        unknown_key(p, key);
                break;
        }
        case SEC_RETENTION:
                c->has_retention = true;
                if (strcmp(key, "keep-last") == 0)
                        set_count(p, key, value, &c->retention.last);
                else if (strcmp(key, "keep-hourly") == 0)
                        set_count(p, key, value, &c->retention.hourly);
                else if (strcmp(key, "keep-daily") == 0)
                        set_count(p, key, value, &c->retention.daily);
                else if (strcmp(key, "keep-weekly") == 0)
                        set_count(p, key, value, &c->retention.weekly);
                else if (strcmp(key, "keep-monthly") == 0)
                        set_count(p, key, value, &c->retention.monthly);
                else if (strcmp(key, "keep-yearly") == 0)
                        set_count(p, key, value, &c->retention.yearly);
                else if (strcmp(key, "keep-within") == 0) {
                        int k = lb_duration_parse(value, &c->retention.within);
                        if (k < 0)
                                BAD(p, "%s:%u: invalid value '%s' for keep-within in %s: needs a duration such as "
                                    "90d, 2w, 36h or 1y2m", p->name, p->line, value, p->sec_label);
                } else if (strcmp(key, "prune") == 0)
                        set_bool(p, key, value, &c->prune);
                else if (strcmp(key, "prune-interval") == 0)
                        set_age(p, key, value, &c->prune_interval_ns);
                else
                        unknown_key(p, key);
                break;
        case SEC_NOTIFY:
                if (strcmp(key, "command") == 0)
                        set_path(p, key, value, &c->notify_command);
                else if (strcmp(key, "webhook") == 0) {
                        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
                                BAD(p, "%s:%u: webhook in %s needs an http:// or https:// URL", p->name, p->line,
                                    p->sec_label);
                        else
                                set_str(p, key, value, &c->webhook);
                        note_secret(p, key);
                } else if (strcmp(key, "webhook-file") == 0) {
                        set_path(p, key, value, &c->webhook_file);
                        note_secret(p, key);
                } else if (strcmp(key, "on-success") == 0)
                        set_bool(p, key, value, &c->notify_on_success);
                else if (strcmp(key, "timeout") == 0) {
                        unsigned long long n;
                        if (parse_uint(value, 3600, &n) < 0 || n == 0)
                                BAD(p, "%s:%u: invalid value '%s' for timeout in %s: needs seconds from 1 to 3600",
                                    p->name, p->line, value, p->sec_label);
                        else
                                c->notify_timeout_s = (unsigned) n;
                } else
                        unknown_key(p, key);
                break;
        case SEC_DRILL:
                if (strcmp(key, "conninfo") == 0) {
                        set_str(p, key, value, &c->drill_conninfo);
                        if (conninfo_has_password(value))
                                note_secret(p, key);
                } else if (strcmp(key, "dbname-prefix") == 0) {
                        if (!db_name_ok(value) || strlen(value) > 40)
                                BAD(p, "%s:%u: invalid value '%s' for dbname-prefix in %s: use up to 40 letters, "
                                    "digits, '_', '-' and '.'", p->name, p->line, value, p->sec_label);
                        else
                                set_str(p, key, value, &c->drill_prefix);
                } else if (strcmp(key, "sql-check") == 0) {
                        if (value[0] != '/')
                                BAD(p, "%s:%u: sql-check in %s needs an absolute path, got '%s'", p->name, p->line,
                                    p->sec_label, value);
                        else if (c->n_sql_checks >= CLI_CONFIG_MAX_SQL_CHECKS)
                                BAD(p, "%s:%u: too many sql-check files (at most %d)", p->name, p->line,
                                    CLI_CONFIG_MAX_SQL_CHECKS);
                        else {
                                char **v = reallocarray(c->sql_checks, c->n_sql_checks + 1, sizeof *v);
                                if (v) {
                                        c->sql_checks = v;
                                        v[c->n_sql_checks] = strdup(value);
                                        if (v[c->n_sql_checks])
                                                c->n_sql_checks++;
                                }
                        }
                } else if (strcmp(key, "interval") == 0)
                        set_age(p, key, value, &c->drill_interval_ns);
                else if (strcmp(key, "jobs") == 0)
                        set_jobs(p, key, value, &c->drill_jobs);
                else
                        unknown_key(p, key);
                break;
        case SEC_CHECK:
                if (strcmp(key, "interval") == 0)
                        set_age(p, key, value, &c->check_interval_ns);
                else if (strcmp(key, "read-data") == 0)
                        set_bool(p, key, value, &c->check_read_data);
                else
                        unknown_key(p, key);
                break;
        case SEC_STATUS:
                if (strcmp(key, "max-age") == 0)
                        set_age(p, key, value, &c->max_age_ns);
                else if (strcmp(key, "metrics-file") == 0)
                        set_path(p, key, value, &c->metrics_file);
                else
                        unknown_key(p, key);
                break;
        default:
                break;
        }
        if (value_is_secret(key, value)) {
                note_secret(p, key);
                note_secret_value(p, value);
        }
        (void) section;
        return 1;
}

static void validate(Parse *p) {
        CliConfig *c = p->c;
        for (size_t i = 0; i < c->n_dbs; i++)
                if (!c->dbs[i].conninfo)
                        BAD(p, "%s:%u: [database%s%s] has no conninfo", p->name, c->dbs[i].line,
                            c->dbs[i].name ? " " : "", c->dbs[i].name ? c->dbs[i].name : "");
        for (size_t i = 0; i < c->n_dbs; i++)
                if (!c->dbs[i].name && c->n_dbs > 1)
                        BAD(p, "%s:%u: with several databases, each section needs a name: [database NAME]", p->name,
                            c->dbs[i].line);
        if (p->sec_line[SEC_RETENTION] && lb_policy_is_empty(&c->retention))
                BAD(p, "%s:%u: [retention] has no keep-* rule, so it would keep nothing; the suggested default is "
                    "keep-daily = 7, keep-weekly = 5, keep-monthly = 4", p->name, p->sec_line[SEC_RETENTION]);
        if (c->password && c->password_file)
                BAD(p, "%s:%u: [repository] has both password and password-file: keep one", p->name,
                    p->sec_line[SEC_REPOSITORY]);
        if (c->webhook && c->webhook_file)
                BAD(p, "%s:%u: [notify] has both webhook and webhook-file: keep one", p->name, p->sec_line[SEC_NOTIFY]);
}

int cli_config_parse_text(const char *name, const char *text, size_t len, CliConfig **ret, CliDiag *diag) {
        _cleanup_(config_freep) CliConfig *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        cli_config_defaults(c);
        c->path = strdup(name);
        c->text = malloc(len + 1);
        if (!c->path || !c->text)
                return -ENOMEM;
        memcpy(c->text, text, len);
        c->text[len] = 0;
        c->text_len = len;
        c->file_mode = 0600;
        size_t before = diag->n;
        Parse p = { .c = c, .d = diag, .name = name, .text = text, .len = len };
        /* A UTF-8 byte order mark is allowed. */
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
                p.pos = 3;
        int k = ini_parse_stream(reader, &p, handler, &p);
        seen_reset(&p);
        if (k == -2 || p.oom)
                return -ENOMEM;
        if (k > 0 && diag->n == before)
                BAD(&p, "%s:%d: syntax error", name, k);
        validate(&p);
        if (diag->n > before)
                return -EINVAL;
        *ret = LB_TAKE_PTR(c);
        return 0;
}

/* A file named by the config that holds a secret: must exist and be
 * private. */
static void check_secret_file(CliDiag *d, const char *cfg, const char *key, const char *path) {
        struct stat st;
        if (!path)
                return;
        if (stat(path, &st) < 0) {
                diag_add(d, "%s: %s %s: %s", cfg, key, path, strerror(errno));
                return;
        }
        if (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH))
                diag_add(d, "%s: %s %s is readable or writable by group or others (mode %04o); run 'chmod 600 %s'",
                         cfg, key, path, (unsigned) (st.st_mode & 07777), path);
}

int cli_config_parse_file(const char *path, bool check_files, CliConfig **ret, CliDiag *diag) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int k = -errno;
                diag_add(diag, "%s: cannot open: %s", path, strerror(-k));
                return k;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int k = -errno;
                diag_add(diag, "%s: cannot stat: %s", path, strerror(-k));
                return k;
        }
        if (!S_ISREG(st.st_mode)) {
                diag_add(diag, "%s: not a regular file", path);
                return -EINVAL;
        }
        if ((uint64_t) st.st_size > CLI_CONFIG_MAX_SIZE) {
                diag_add(diag, "%s: larger than %u bytes", path, CLI_CONFIG_MAX_SIZE);
                return -EFBIG;
        }
        _cleanup_buf_ LbBuf b = {};
        uint8_t *dst;
        size_t got = 0;
        int k = lb_buf_grow(&b, (size_t) st.st_size + 1, &dst);
        if (k == 0)
                k = lb_read_all(fd, dst, (size_t) st.st_size + 1, &got);
        if (k < 0) {
                diag_add(diag, "%s: cannot read: %s", path, strerror(-k));
                return k;
        }
        if (got > (size_t) st.st_size) {
                diag_add(diag, "%s: changed while being read", path);
                return -EAGAIN;
        }
        _cleanup_(config_freep) CliConfig *c = NULL;
        size_t before = diag->n;
        k = cli_config_parse_text(path, (const char *) b.data, got, &c, diag);
        explicit_bzero(b.data, b.len);
        if (k == -ENOMEM)
                return k;
        if (c) {
                c->file_mode = st.st_mode & 07777;
                c->file_uid = st.st_uid;
                c->file_gid = st.st_gid;
                c->file_mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        }
        if (check_files) {
                /* A config anyone else can change could run any notify command. */
                if (st.st_mode & (S_IWGRP | S_IWOTH))
                        diag_add(diag, "%s: writable by group or others (mode %04o); run 'chmod 600 %s'", path,
                                 (unsigned) (st.st_mode & 07777), path);
                else if ((st.st_mode & (S_IRGRP | S_IROTH)) && (c ? c->has_secrets : false))
                        diag_add(diag, "%s: holds secrets but is readable by group or others (mode %04o); run "
                                 "'chmod 600 %s'", path, (unsigned) (st.st_mode & 07777), path);
                if (c) {
                        check_secret_file(diag, path, "password-file", c->password_file);
                        check_secret_file(diag, path, "credentials-file", c->remote_credentials_file);
                        check_secret_file(diag, path, "webhook-file", c->webhook_file);
                        for (size_t i = 0; i < c->n_sql_checks; i++)
                                if (access(c->sql_checks[i], R_OK) < 0)
                                        diag_add(diag, "%s: sql-check %s: %s", path, c->sql_checks[i], strerror(errno));
                        if (c->notify_command && access(c->notify_command, X_OK) < 0)
                                diag_add(diag, "%s: notify command %s: %s", path, c->notify_command, strerror(errno));
                }
        }
        if (diag->n > before)
                return -EINVAL;
        *ret = LB_TAKE_PTR(c);
        return 0;
}

int cli_config_redact(const CliConfig *c, LbBuf *out) {
        lb_buf_clear(out);
        size_t pos = 0;
        int k = 0;
        for (size_t i = 0; i < c->n_secret_values && k == 0; i++) {
                size_t start = c->secret_values[i];
                if (start < pos || start > c->text_len) {
                        k = -EINVAL;
                        break;
                }
                const char *nl = memchr(c->text + start, '\n', c->text_len - start);
                size_t end = nl ? (size_t) (nl - c->text) : c->text_len;
                if (end > start && c->text[end - 1] == '\r')
                        end--;
                k = lb_buf_append(out, c->text + pos, start - pos);
                if (k == 0)
                        k = lb_buf_append(out, CLI_CONFIG_REDACTED, strlen(CLI_CONFIG_REDACTED));
                pos = end;
        }
        if (k == 0)
                k = lb_buf_append(out, c->text + pos, c->text_len - pos);
        if (k < 0) {
                if (out->data)
                        explicit_bzero(out->data, out->len);
                lb_buf_free(out);
        }
        return k;
}
