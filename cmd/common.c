/* SPDX-License-Identifier: MIT */
#include "cmd/common.h"
#include "cmd/progress.h"

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>

#include "cmd/config.h"
#include "store/crypto.h"
#include "store/http.h"
#include "store/location.h"

CliGlobals cli = { .lock_wait_ns = -1 };

const char cli_help_globals[] =
        "\n"
        "Global options (before or after the command):\n"
        "  --repo LOCATION        repository location (env LONGBOX_REPO; else the config's\n"
        "                         [repository] location)\n"
        "  --password-file FILE   read the passphrase from FILE (env LONGBOX_PASSWORD_FILE);\n"
        "                         else env LONGBOX_PASSWORD, else the config's password-file\n"
        "                         or password, else a prompt on the terminal\n"
        "  --cache-dir DIR        local cache (env LONGBOX_CACHE_DIR; else the config's\n"
        "                         cache-dir; default $XDG_CACHE_HOME/longbox or\n"
        "                         ~/.cache/longbox)\n"
        "  --json                 machine-readable output where the command has it\n"
        "  --lock-wait DURATION   wait this long for a lock another longbox holds\n"
        "                         (30s, 10m, 1h; default 10m; 0 fails at once)\n"
        "  --ca-cert FILE         remote locations: trust the CAs in this PEM file\n"
        "                         (env LONGBOX_CA_CERT; default: the system's)\n"
        "  --limit-upload KIB     remote locations: upload at most KIB KiB/s in total\n"
        "                         (env LONGBOX_LIMIT_UPLOAD)\n"
        "  --config FILE          config file (env LONGBOX_CONFIG; default\n"
        "                         /etc/longbox/longbox.conf when it exists)\n"
        "  --metrics-file FILE    write Prometheus metrics of unattended commands to FILE\n"
        "                         (env LONGBOX_METRICS_FILE; config [status] metrics-file)\n"
        "  -q, --quiet            print only errors and the data asked for\n"
        "  -h, --help             show this help\n";

const char cli_help_exit_codes[] =
        "\n"
        "Exit codes:\n"
        "  0   success\n"
        "  1   error\n"
        "  2   usage error (bad option, missing argument)\n"
        "  3   backup recorded, but some inputs could not be read\n"
        "  10  no repository at the location\n"
        "  11  repository locked by another process\n"
        "  12  wrong passphrase\n"
        "  13  damaged or missing data found\n";

void cli_getopt_reset(void) {
        optind = 0; /* glibc: full re-initialisation */
        opterr = 0;
}

int cli_usage_error(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "longbox%s%s: ", cli.command ? " " : "", cli.command ? cli.command : "");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "; see 'longbox%s%s --help'\n", cli.command ? " " : "", cli.command ? cli.command : "");
        va_end(ap);
        return CLI_EXIT_USAGE;
}

int cli_global_option(int c, char **argv, const char *help) {
        switch (c) {
        case OPT_REPO:
                cli.repo = optarg;
                return -1;
        case OPT_PASSWORD_FILE:
                cli.password_file = optarg;
                return -1;
        case OPT_CACHE_DIR:
                cli.cache_dir = optarg;
                return -1;
        case OPT_JSON:
                cli.json = true;
                return -1;
        case OPT_CA_CERT:
                cli.ca_cert = optarg;
                return -1;
        case OPT_LIMIT_UPLOAD:
                cli.limit_upload = optarg;
                return -1;
        case OPT_QUIET:
                cli.quiet = true;
                return -1;
        case OPT_LOCK_WAIT:
                if (cli_parse_duration(optarg, &cli.lock_wait_ns) < 0)
                        return cli_usage_error("--lock-wait needs a duration such as 30s, 10m or 1h, got '%s'", optarg);
                return -1;
        case OPT_CONFIG:
                cli.config = optarg;
                return -1;
        case OPT_METRICS_FILE:
                cli.metrics_file = optarg;
                return -1;
        case OPT_HELP:
                cli.help_shown = true;
                fputs(help, stdout);
                fputs(cli_help_globals, stdout);
                fputs(cli_help_exit_codes, stdout);
                return CLI_EXIT_OK;
        case ':':
                return cli_usage_error("option %s needs an argument", argv[optind - 1]);
        case '?':
                if (optopt && optopt < 0x100)
                        return cli_usage_error("unknown option -%c", optopt);
                return cli_usage_error("unknown option %s", argv[optind - 1]);
        default:
                return cli_usage_error("option %s is not handled", argv[optind - 1]);
        }
}

const char *cli_strerror(int err) {
        switch (-err) {
        case ENOSPC:
                return "no space left on device";
        case EBADMSG:
                return "data is damaged (authentication or checksum failed)";
        case EKEYREJECTED:
                return "wrong passphrase";
        case EWOULDBLOCK:
                return "repository is locked";
        case EPROTONOSUPPORT:
                return "format or location type not supported by this longbox";
        case ENOTUNIQ:
                return "ambiguous name";
        case ENXIO:
                return "the bucket or remote folder does not exist";
        case ENOKEY:
                return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
        case ENOPKG:
                return "rclone is not installed (or LONGBOX_RCLONE does not name it)";
        case EHOSTUNREACH:
                return "host not found or unreachable";
        case ECONNREFUSED:
                return "connection refused by the server";
        case ETIMEDOUT:
                return "the server did not answer in time (after retries)";
        case ECONNRESET:
                return "the connection broke (after retries)";
        case EPROTO:
                return "TLS or HTTP protocol error (check the certificate, --ca-cert and the location)";
        default:
                return strerror(-err);
        }
}

int cli_exit_code(int err) {
        switch (-err) {
        case EBADMSG:
                return CLI_EXIT_CORRUPT;
        case EWOULDBLOCK:
                return CLI_EXIT_LOCKED;
        case EKEYREJECTED:
                return CLI_EXIT_BAD_PASSWORD;
        default:
                return CLI_EXIT_ERROR;
        }
}

int cli_fail(int err, const char *what_fmt, ...) {
        va_list ap;
        char what[2048], msg[2200];
        va_start(ap, what_fmt);
        vsnprintf(what, sizeof what, what_fmt, ap);
        va_end(ap);
        snprintf(msg, sizeof msg, "Failed to %s: %s", what, cli_strerror(err));
        cli_progress_interrupt();
        fprintf(stderr, "longbox: %s\n", msg);
        cli_report_message(msg);
        return cli_exit_code(err);
}

int cli_error(int code, const char *fmt, ...) {
        va_list ap;
        char msg[4096];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        cli_progress_interrupt();
        fprintf(stderr, "longbox: %s\n", msg);
        cli_report_message(msg);
        return code;
}

void cli_info(const char *fmt, ...) {
        if (cli.quiet)
                return;
        cli_progress_interrupt();
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
}

/* ---- passphrases ---- */

#define PASSPHRASE_MAX 4096

void cli_passphrase_free(char *p) {
        if (!p)
                return;
        explicit_bzero(p, strlen(p));
        free(p);
}

static int read_passphrase_file(const char *path, char **ret) {
        _cleanup_buf_ LbBuf b = {};
        int k = lb_read_file(path, PASSPHRASE_MAX, &b);
        if (k == -EFBIG)
                return cli_error(CLI_EXIT_ERROR, "password file %s is larger than %d bytes; it should hold one passphrase",
                                 path, PASSPHRASE_MAX);
        if (k < 0)
                return cli_fail(k, "read password file %s", path);
        size_t n = b.len;
        if (n > 0 && b.data[n - 1] == '\n')
                n--;
        if (n > 0 && b.data[n - 1] == '\r')
                n--;
        int code = 0;
        if (memchr(b.data, 0, n))
                code = cli_error(CLI_EXIT_ERROR, "password file %s contains a NUL byte", path);
        char *p = NULL;
        if (code == 0) {
                p = malloc(n + 1);
                if (!p)
                        code = cli_fail(-ENOMEM, "read password file %s", path);
                else {
                        if (n)
                                memcpy(p, b.data, n);
                        p[n] = 0;
                }
        }
        if (b.data)
                explicit_bzero(b.data, b.len);
        if (code)
                return code;
        *ret = p;
        return 0;
}

/* The terminal state to put back if a signal interrupts a prompt. */
static int prompt_fd = -1;
static struct termios prompt_saved;

static void prompt_signal(int sig) {
        if (prompt_fd >= 0)
                (void) tcsetattr(prompt_fd, TCSAFLUSH, &prompt_saved);
        signal(sig, SIG_DFL);
        raise(sig);
}

/* Reads one line from the terminal with echo off. */
static int tty_prompt(const char *msg, char **ret) {
        _cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct termios old, quiet;
        if (tcgetattr(fd, &old) < 0)
                return -errno;
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t) ECHO;
        quiet.c_lflag |= ICANON;
        prompt_saved = old;
        prompt_fd = fd;
        struct sigaction sa = { .sa_handler = prompt_signal }, old_int, old_term, old_hup;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGHUP, &sa, &old_hup);
        if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
                int k = -errno;
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
                sigaction(SIGHUP, &old_hup, NULL);
                prompt_fd = -1;
                return k;
        }
        int k = lb_write_all(fd, msg, strlen(msg));

        char *buf = calloc(1, PASSPHRASE_MAX + 1);
        size_t n = 0;
        if (!buf && k == 0)
                k = -ENOMEM;
        while (k == 0) {
                char ch;
                ssize_t m = read(fd, &ch, 1);
                if (m < 0 && errno == EINTR)
                        continue;
                if (m < 0) {
                        k = -errno;
                        break;
                }
                if (m == 0 || ch == '\n')
                        break;
                if (n >= PASSPHRASE_MAX) {
                        k = -E2BIG;
                        break;
                }
                buf[n++] = ch;
        }
        (void) tcsetattr(fd, TCSAFLUSH, &old);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        prompt_fd = -1;
        (void) !write(fd, "\n", 1);
        if (k < 0) {
                cli_passphrase_free(buf);
                return k;
        }
        *ret = buf;
        return 0;
}

/* Prompts (twice when confirm); returns 0 or an exit code after reporting. */
static int prompt_passphrase(const char *what, bool confirm, char **ret) {
        char msg[512];
        char *a = NULL, *b = NULL;
        snprintf(msg, sizeof msg, "%s: ", what);
        int k = tty_prompt(msg, &a);
        if (k < 0)
                return cli_fail(k, "read the passphrase from the terminal");
        if (confirm) {
                k = tty_prompt("Enter it again: ", &b);
                if (k < 0) {
                        cli_passphrase_free(a);
                        return cli_fail(k, "read the passphrase from the terminal");
                }
                bool same = strcmp(a, b) == 0;
                cli_passphrase_free(b);
                if (!same) {
                        cli_passphrase_free(a);
                        return cli_error(CLI_EXIT_ERROR, "the two passphrases do not match; nothing was changed");
                }
        }
        *ret = a;
        return 0;
}

/* A passphrase taken from LONGBOX_PASSWORD (which is then removed from
 * the environment), for later opens in the same process. */
static char *cached_passphrase;

static void cached_passphrase_set(const char *p) {
        cli_passphrase_free(cached_passphrase);
        cached_passphrase = strdup(p);
}

static int dup_passphrase(const char *s, char **ret) {
        char *p = strdup(s);
        if (!p)
                return cli_fail(-ENOMEM, "copy the passphrase");
        *ret = p;
        return 0;
}

int cli_get_passphrase(bool confirm, char **ret) {
        /* The passphrase that opened the repository already (longbox run). */
        if (cached_passphrase && !confirm)
                return dup_passphrase(cached_passphrase, ret);
        const char *file = cli.password_file;
        if (!file) {
                const char *e = getenv("LONGBOX_PASSWORD_FILE");
                if (e && *e)
                        file = e;
        }
        if (file)
                return read_passphrase_file(file, ret);
        const char *env = getenv("LONGBOX_PASSWORD");
        if (env) {
                int k = dup_passphrase(env, ret);
                /* Child processes (pg_dump, psql, --stdin-from-command) must not inherit it. */
                unsetenv("LONGBOX_PASSWORD");
                return k;
        }
        const CliConfig *conf = NULL;
        int code = cli_config_get(&conf);
        if (code)
                return code;
        if (conf && conf->password_file)
                return read_passphrase_file(conf->password_file, ret);
        if (conf && conf->password)
                return dup_passphrase(conf->password, ret);
        if (isatty(STDIN_FILENO)) {
                char what[PATH_MAX + 64];
                snprintf(what, sizeof what, "Passphrase for %s", cli.repo ? cli.repo : "the repository");
                return prompt_passphrase(what, confirm, ret);
        }
        return cli_error(CLI_EXIT_ERROR, "no passphrase: use --password-file, LONGBOX_PASSWORD_FILE or LONGBOX_PASSWORD");
}

int cli_get_new_passphrase(const char *file, char **ret) {
        if (file)
                return read_passphrase_file(file, ret);
        const char *env = getenv("LONGBOX_NEW_PASSWORD");
        if (env) {
                int k = dup_passphrase(env, ret);
                unsetenv("LONGBOX_NEW_PASSWORD");
                return k;
        }
        if (isatty(STDIN_FILENO))
                return prompt_passphrase("New passphrase", true, ret);
        return cli_error(CLI_EXIT_ERROR, "no new passphrase: use --new-password-file or LONGBOX_NEW_PASSWORD");
}

/* ---- the repository ---- */

int cli_http_setup(void) {
        static bool done;
        if (done)
                return 0;
        LbHttpOptions o;
        lb_http_get_defaults(&o);
        const char *ca = cli.ca_cert ? cli.ca_cert : getenv("LONGBOX_CA_CERT");
        if (ca && *ca) {
                if (access(ca, R_OK) < 0)
                        return cli_fail(-errno, "read the CA file %s", ca);
                o.ca_cert = ca;
        }
        const char *lim = cli.limit_upload ? cli.limit_upload : getenv("LONGBOX_LIMIT_UPLOAD");
        long long v;
        if (lim && *lim) {
                if (cli_parse_int(lim, 1, 1ll << 40, &v) < 0)
                        return cli_usage_error("--limit-upload needs a rate in KiB/s (1 or more), got '%s'", lim);
                o.limit_upload = (uint64_t) v << 10;
        }
        const char *e = getenv("LONGBOX_HTTP_TIMEOUT");
        if (e && *e) {
                if (cli_parse_int(e, 1, 3600, &v) < 0)
                        return cli_usage_error("LONGBOX_HTTP_TIMEOUT needs seconds from 1 to 3600, got '%s'", e);
                o.timeout_s = (unsigned) v;
        }
        e = getenv("LONGBOX_HTTP_RETRIES");
        if (e && *e) {
                if (cli_parse_int(e, 0, 100, &v) < 0)
                        return cli_usage_error("LONGBOX_HTTP_RETRIES needs a number from 0 to 100, got '%s'", e);
                o.retries = (unsigned) v;
        }
        lb_http_set_defaults(&o);
        done = true;
        return 0;
}

const char *cli_repo_location(void) {
        if (cli_http_setup() != 0)
                return NULL;
        if (!cli.repo) {
                const char *e = getenv("LONGBOX_REPO");
                if (e && *e)
                        cli.repo = e;
        }
        /* A broken config stops every command that uses a repository. */
        const CliConfig *conf = NULL;
        if (cli_config_get(&conf) != 0)
                return NULL;
        if (!cli.repo && conf && conf->repo_location)
                cli.repo = conf->repo_location;
        /* The off-site copy used as the repository (a restore after a
         * disaster): its credentials come with it. */
        if (cli.repo && conf && conf->remote_location && strcmp(cli.repo, conf->remote_location) == 0 &&
            cli_config_remote_credentials() != 0)
                return NULL;
        if (!cli.repo)
                cli_usage_error("no repository given: use --repo LOCATION, set LONGBOX_REPO, or set location in "
                                "[repository] of the config file");
        return cli.repo;
}

char *cli_cache_dir(void) {
        if (cli.cache_dir)
                return strdup(cli.cache_dir);
        const char *e = getenv("LONGBOX_CACHE_DIR");
        if (e && *e)
                return strdup(e);
        const CliConfig *conf = NULL;
        if (cli_config_get(&conf) == 0 && conf && conf->cache_dir)
                return strdup(conf->cache_dir);
        e = getenv("XDG_CACHE_HOME");
        if (e && e[0] == '/')
                return lb_path_join(e, "longbox");
        e = getenv("HOME");
        if (e && e[0] == '/')
                return lb_path_join(e, ".cache/longbox");
        return NULL;
}

int cli_lock_failed(LbRepo *r, int err) {
        if (err == -EWOULDBLOCK) {
                _cleanup_free_ char *holder = lb_repo_lock_holder(r);
                return cli_error(CLI_EXIT_LOCKED,
                                 "Failed to lock repository %s: there is %s; wait for it to finish, or if "
                                 "the process is gone run 'longbox unlock'",
                                 cli.repo, holder ? holder : "another process");
        }
        return cli_fail(err, "lock repository %s", cli.repo);
}

int cli_open_repo(unsigned flags, LbRepo **ret) {
        const char *loc = cli_repo_location();
        if (!loc)
                return CLI_EXIT_USAGE;
        char *pass = NULL;
        int code = cli_get_passphrase(false, &pass);
        if (code)
                return code;
        _cleanup_free_ char *cache = cli_cache_dir();

        _cleanup_repo_ LbRepo *r = NULL;
        int k = lb_repo_open(loc, cache, pass, &r);
        if (k == 0 && (!cached_passphrase || strcmp(cached_passphrase, pass) != 0))
                cached_passphrase_set(pass);
        cli_passphrase_free(pass);
        switch (k) {
        case 0:
                break;
        case -ENOENT:
                return cli_error(CLI_EXIT_NO_REPO, "Failed to open repository: no repository at %s; check --repo or "
                                 "LONGBOX_REPO, or create one with 'longbox init'", loc);
        case -EKEYREJECTED:
                return cli_error(CLI_EXIT_BAD_PASSWORD, "Failed to open repository: wrong passphrase: no key slot of %s "
                                 "opens with it", loc);
        case -EPROTONOSUPPORT:
                if (strncmp(loc, "sftp:", 5) == 0)
                        return cli_error(CLI_EXIT_ERROR, "Failed to open repository %s: sftp: is not supported; "
                                         "use rclone:REMOTE:PATH with an rclone sftp remote", loc);
                return cli_error(CLI_EXIT_ERROR, "Failed to open repository %s: repository format is newer than this "
                                 "longbox (%s); upgrade longbox to use it", loc, LB_VERSION_STRING);
        case -EBADMSG:
                return cli_error(CLI_EXIT_CORRUPT, "Failed to open repository %s: its config or key slot is damaged "
                                 "or was altered; run 'longbox check'", loc);
        case -ENXIO:
                return cli_error(CLI_EXIT_NO_REPO, "Failed to open repository: no repository at %s: the bucket or "
                                 "folder does not exist", loc);
        case -EACCES:
                if (lb_location_is_remote(loc))
                        return cli_error(CLI_EXIT_ERROR, "Failed to open repository %s: the server refused the "
                                         "credentials; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the WebDAV "
                                         "user and LONGBOX_WEBDAV_PASSWORD", loc);
                return cli_fail(k, "open repository %s", loc);
        case -EINVAL:
                if (lb_location_is_remote(loc))
                        return cli_error(CLI_EXIT_USAGE, "Failed to open repository %s: not a valid location; see "
                                         "longbox(1) LOCATIONS", loc);
                return cli_fail(k, "open repository %s", loc);
        default:
                return cli_fail(k, "open repository %s", loc);
        }

        cli_report_repo(r);

        /* Lock first: the index must not be read from a repository that a
         * maintenance command holding the exclusive lock is changing. */
        if (flags & (CLI_OPEN_LOCK_SHARED | CLI_OPEN_LOCK_EXCLUSIVE)) {
                code = cli_lock(r, flags & CLI_OPEN_LOCK_EXCLUSIVE);
                if (code)
                        return code;
        }
        if (flags & CLI_OPEN_INDEX) {
                k = lb_repo_index_update(r);
                if (k < 0)
                        return cli_fail(k, "update the local index of %s (try 'longbox index rebuild')", loc);
        }
        *ret = LB_TAKE_PTR(r);
        return 0;
}

int64_t cli_lock_wait_ns(void) {
        return cli.lock_wait_ns < 0 ? CLI_LOCK_WAIT_DEFAULT_NS : cli.lock_wait_ns;
}

int cli_lock(LbRepo *r, bool exclusive) {
        int k = lb_repo_lock(r, exclusive, 0);
        int64_t wait = cli_lock_wait_ns();
        if (k == -EWOULDBLOCK && wait > 0) {
                _cleanup_free_ char *holder = lb_repo_lock_holder(r);
                fprintf(stderr, "longbox: waiting up to %" PRId64 " s for %s to finish (--lock-wait)\n",
                        wait / 1000000000, holder ? holder : "a lock of another process");
                k = lb_repo_lock(r, exclusive, wait);
        }
        return k < 0 ? cli_lock_failed(r, k) : 0;
}

int cli_parse_duration(const char *s, int64_t *ret_ns) {
        char *end;
        errno = 0;
        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
                return -ERANGE;
        uint64_t unit = 1;
        if (*end == 's')
                end++;
        else if (*end == 'm')
                unit = 60, end++;
        else if (*end == 'h')
                unit = 3600, end++;
        if (*end || v > (uint64_t) INT64_MAX / 1000000000 / unit)
                return -EINVAL;
        *ret_ns = (int64_t) (v * unit) * 1000000000;
        return 0;
}

int cli_find_snapshot(LbRepo *r, const char *spec, LbSnapshot **ret) {
        int k = lb_repo_snapshot_find(r, spec, ret);
        switch (k) {
        case 0:
                return 0;
        case -ENOTUNIQ:
                return cli_error(CLI_EXIT_ERROR, "Failed to find snapshot %s: snapshot prefix %s is ambiguous; give more "
                                 "characters of the id", spec, spec);
        case -ENOENT:
                return cli_error(CLI_EXIT_ERROR, "Failed to find snapshot %s: no snapshot %s in %s; 'longbox snapshots' "
                                 "lists them", spec, spec, cli.repo);
        default:
                return cli_fail(k, "load snapshot %s", spec);
        }
}

/* ---- output ---- */

void cli_json_print(json_object *o) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void split_ns(int64_t ns, time_t *sec, long *nsec) {
        int64_t s = ns / 1000000000, r = ns % 1000000000;
        if (r < 0) {
                r += 1000000000;
                s--;
        }
        *sec = (time_t) s;
        *nsec = (long) r;
}

void cli_format_local_time(int64_t time_ns, char out[32]) {
        time_t t;
        long ns;
        struct tm tm;
        split_ns(time_ns, &t, &ns);
        if (!localtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(out, 32, "@%lld", (long long) t);
}

static void format_rfc3339_tm(const struct tm *tm, long ns, long off, char out[48]) {
        char base[32], zone[16];
        if (strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", tm) == 0)
                base[0] = 0;
        if (off == 0)
                snprintf(zone, sizeof zone, "Z");
        else
                snprintf(zone, sizeof zone, "%c%02d:%02d", off < 0 ? '-' : '+', (int) (labs(off) / 3600 % 100),
                         (int) (labs(off) % 3600 / 60));
        if (ns)
                snprintf(out, 48, "%s.%09ld%s", base, ns, zone);
        else
                snprintf(out, 48, "%s%s", base, zone);
}

void cli_format_rfc3339(int64_t time_ns, int32_t tz_offset, char out[48]) {
        time_t t;
        long ns;
        struct tm tm;
        split_ns(time_ns, &t, &ns);
        time_t shifted = t + tz_offset;
        if (!gmtime_r(&shifted, &tm))
                memset(&tm, 0, sizeof tm);
        format_rfc3339_tm(&tm, ns, tz_offset, out);
}

void cli_format_rfc3339_local(int64_t time_ns, char out[48]) {
        time_t t;
        long ns;
        struct tm tm;
        split_ns(time_ns, &t, &ns);
        if (!localtime_r(&t, &tm))
                memset(&tm, 0, sizeof tm);
        format_rfc3339_tm(&tm, ns, tm.tm_gmtoff, out);
}

void cli_format_bytes(uint64_t n, char out[32]) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        if (n < 1024) {
                snprintf(out, 32, "%" PRIu64 " B", n);
                return;
        }
        double v = (double) n;
        size_t u = 0;
        while (v >= 1024 && u + 1 < LB_ARRAY_SIZE(units)) {
                v /= 1024;
                u++;
        }
        snprintf(out, 32, "%.2f %s", v, units[u]);
}

void cli_format_mode(const LbNode *n, char out[11]) {
        static const char types[] = { [LB_NODE_FILE] = '-', [LB_NODE_DIR] = 'd', [LB_NODE_SYMLINK] = 'l',
                                      [LB_NODE_FIFO] = 'p', [LB_NODE_CHARDEV] = 'c', [LB_NODE_BLOCKDEV] = 'b' };
        uint32_t m = n->mode;
        out[0] = n->type > 0 && n->type < _LB_NODE_MAX ? types[n->type] : '?';
        const char *rwx = "rwxrwxrwx";
        for (int i = 0; i < 9; i++)
                out[1 + i] = (m & (1u << (8 - i))) ? rwx[i] : '-';
        if (m & S_ISUID)
                out[3] = (m & S_IXUSR) ? 's' : 'S';
        if (m & S_ISGID)
                out[6] = (m & S_IXGRP) ? 's' : 'S';
        if (m & S_ISVTX)
                out[9] = (m & S_IXOTH) ? 't' : 'T';
        out[10] = 0;
}

const char *cli_node_type_name(int type) {
        switch (type) {
        case LB_NODE_FILE:
                return "file";
        case LB_NODE_DIR:
                return "dir";
        case LB_NODE_SYMLINK:
                return "symlink";
        case LB_NODE_FIFO:
                return "fifo";
        case LB_NODE_CHARDEV:
                return "chardev";
        case LB_NODE_BLOCKDEV:
                return "blockdev";
        default:
                return "unknown";
        }
}

int cli_parse_size(const char *s, uint64_t *ret) {
        char *end;
        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (end == s)
                return -EINVAL;
        unsigned shift = 0;
        switch (*end) {
        case 0:
                break;
        case 'k':
        case 'K':
                shift = 10;
                break;
        case 'm':
        case 'M':
                shift = 20;
                break;
        case 'g':
        case 'G':
                shift = 30;
                break;
        default:
                return -EINVAL;
        }
        if (*end) {
                end++;
                if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0 || strcmp(end, "ib") == 0)
                        end += strlen(end);
                if (*end)
                        return -EINVAL;
        }
        if (shift && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t) v << shift;
        return 0;
}

int cli_parse_int(const char *s, long long min, long long max, long long *ret) {
        char *end;
        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end || end == s)
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}



void cli_id_short(const LbId *id, char out[9]) {
        lb_hex_encode(id->b, 4, out);
}
