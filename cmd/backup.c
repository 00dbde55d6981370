/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "cmd/common.h"
#include "cmd/config.h"
#include "cmd/progress.h"
#include "store/archiver.h"
#include "store/crypto.h"
#include "store/pg/dump.h"
#include "store/walk.h"

static const char help[] =
        "Usage: longbox backup [OPTIONS] PATH...\n"
        "       longbox backup [OPTIONS] --stdin-name NAME\n"
        "       longbox backup [OPTIONS] --stdin-name NAME --stdin-from-command -- CMD [ARGS...]\n"
        "       longbox backup [OPTIONS] --db CONNINFO [--jobs N] [--order pk|physical]\n"
        "\n"
        "Backs up files and directories (recorded under their absolute paths), or\n"
        "standard input as the file /NAME, into a new snapshot. With\n"
        "--stdin-from-command longbox runs CMD itself and records no snapshot unless\n"
        "CMD exits with status 0, so a failed dump never looks like a backup.\n"
        "Unreadable inputs are reported and skipped; the snapshot is recorded and the\n"
        "exit code is 3.\n"
        "\n"
        "With --db, backs up one PostgreSQL database (CONNINFO is a libpq connection\n"
        "string or URI; PGPASSFILE, PGSERVICE and PG* variables work as with psql):\n"
        "schema (pg_dump of the server's version), every table's rows over N parallel\n"
        "COPY connections, sequences, large objects, roles and the server's config\n"
        "files, all from one consistent snapshot, as /DBNAME/... and /config/; with\n"
        "a config file, also /config/longbox.conf: that file with its secrets\n"
        "replaced by <redacted>. Any failure records no snapshot.\n"
        "\n"
        "Options:\n"
        "  --tag TAG                 add a tag to the snapshot (repeatable)\n"
        "  --host HOST               hostname to record (default: this machine's)\n"
        "  --time \"YYYY-MM-DD HH:MM:SS\"  snapshot time, local time (default: now)\n"
        "  --stdin-name NAME         read the content from standard input as /NAME\n"
        "  --stdin-from-command      run the command after -- and back up its output\n"
        "  --db CONNINFO             back up the PostgreSQL database CONNINFO connects to\n"
        "  --jobs N                  parallel COPY connections for --db (1-16, default 2)\n"
        "  --order pk|physical       rows by primary key (default) or in physical order\n"
        "  --json                    print the summary as one JSON object\n";

enum {
        OPT_TAG = OPT_FIRST_LOCAL,
        OPT_HOST,
        OPT_TIME,
        OPT_STDIN_NAME,
        OPT_STDIN_FROM_COMMAND,
        OPT_DB,
        OPT_JOBS,
        OPT_ORDER,
};

typedef struct BackupCtx {
        CliProgress *progress;
        pid_t child;
        const char *command;
        bool command_failed;
        int status;
} BackupCtx;

static void on_warn(void *userdata, const char *path, int err) {
        cli_progress_interrupt();
        fprintf(stderr, "longbox: Failed to read %s: %s; it is not in the snapshot\n", path, cli_strerror(err));
}

static void on_progress(void *userdata, uint64_t bytes_read, const char *path) {
        cli_progress_update(((BackupCtx *) userdata)->progress, bytes_read, path);
}

/* The total for the progress line: what the inputs hold, by a quick walk
 * (lstat only). Files that change meanwhile make it an estimate. */
static uint64_t scan_total;
static int scan_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_F && S_ISREG(st->st_mode))
                scan_total += (uint64_t) st->st_size;
        return 0;
}

static uint64_t inputs_size(const LbBackupOptions *o) {
        if (o->stdin_name) {
                struct stat st;
                off_t pos = lseek(o->stdin_fd, 0, SEEK_CUR);
                if (fstat(o->stdin_fd, &st) == 0 && S_ISREG(st.st_mode) && pos >= 0 && st.st_size > pos)
                        return (uint64_t) (st.st_size - pos);
                return 0;
        }
        scan_total = 0;
        for (size_t i = 0; i < o->n_paths; i++)
                (void) nftw(o->paths[i], scan_one, 16, FTW_PHYS);
        return scan_total;
}

static int wait_child(BackupCtx *b) {
        if (b->child <= 0)
                return 0;
        int status;
        pid_t p;
        do
                p = waitpid(b->child, &status, 0);
        while (p < 0 && errno == EINTR);
        b->child = 0;
        if (p < 0)
                return -errno;
        b->status = status;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        b->command_failed = true;
        return -ECHILD;
}

static int before_commit(void *userdata) {
        return wait_child(userdata);
}

static int start_command(char **argv, BackupCtx *b, int *ret_fd) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return cli_fail(-errno, "create a pipe for command %s", argv[0]);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                int k = -errno;
                close(p[0]);
                close(p[1]);
                return cli_fail(k, "start command %s", argv[0]);
        }
        if (pid == 0) {
                if (dup2(p[1], STDOUT_FILENO) < 0)
                        _exit(127);
                signal(SIGPIPE, SIG_DFL);
                execvp(argv[0], argv);
                fprintf(stderr, "longbox: Failed to run command %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(p[1]);
        b->child = pid;
        b->command = argv[0];
        *ret_fd = p[0];
        return 0;
}

static int parse_time(const char *s, int64_t *ret_ns, int32_t *ret_off) {
        struct tm tm = {};
        const char *end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
        if (!end || *end)
                return -EINVAL;
        tm.tm_isdst = -1;
        errno = 0;
        time_t t = mktime(&tm);
        if (t == (time_t) -1 && errno)
                return -ERANGE;
        *ret_ns = (int64_t) t * 1000000000;
        *ret_off = (int32_t) tm.tm_gmtoff;
        return 0;
}

static void print_summary(const LbBackupResult *res) {
        const LbChangeCounts *ch = &res->changes;
        const LbSnapshotStats *s = &res->stats;
        char id[2 * LB_ID_SIZE + 1];
        lb_id_hex(&res->snapshot_id, id);
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "message_type", json_object_new_string("summary"));
                json_object_object_add(o, "files_new", json_object_new_uint64(ch->files_new));
                json_object_object_add(o, "files_changed", json_object_new_uint64(ch->files_changed));
                json_object_object_add(o, "files_unmodified", json_object_new_uint64(ch->files_unmodified));
                json_object_object_add(o, "dirs_new", json_object_new_uint64(ch->dirs_new));
                json_object_object_add(o, "dirs_changed", json_object_new_uint64(ch->dirs_changed));
                json_object_object_add(o, "dirs_unmodified", json_object_new_uint64(ch->dirs_unmodified));
                json_object_object_add(o, "data_blobs", json_object_new_uint64(s->chunks_new));
                json_object_object_add(o, "data_added", json_object_new_uint64(s->bytes_stored));
                json_object_object_add(o, "data_added_raw", json_object_new_uint64(s->bytes_new));
                json_object_object_add(o, "total_files_processed", json_object_new_uint64(s->files));
                json_object_object_add(o, "total_bytes_processed", json_object_new_uint64(s->bytes_read));
                json_object_object_add(o, "total_duration", json_object_new_double((double) s->duration_ns / 1e9));
                json_object_object_add(o, "errors", json_object_new_uint64(s->errors));
                json_object_object_add(o, "snapshot_id", json_object_new_string(id));
                cli_json_print(o);
                return;
        }
        char read[32], added[32], stored[32];
        cli_format_bytes(s->bytes_read, read);
        cli_format_bytes(s->bytes_new, added);
        cli_format_bytes(s->bytes_stored, stored);
        cli_info("files:         %" PRIu64 " (%" PRIu64 " new, %" PRIu64 " changed, %" PRIu64 " unmodified)\n"
                 "dirs:          %" PRIu64 "\n"
                 "bytes read:    %s\n"
                 "bytes new:     %s\n"
                 "bytes stored:  %s (after compression)\n"
                 "duration:      %.2f s\n"
                 "snapshot %s saved\n",
                 s->files, ch->files_new, ch->files_changed, ch->files_unmodified, s->dirs, read, added, stored, (double) s->duration_ns / 1e9, id);
}

/* ---- --db ---- */

/* Bytes of the items in flight (tables on the worker connections, schema
 * steps), so the line shows the sum over all of them. */
#define DB_SLOTS 32
typedef struct DbProgress {
        CliProgress *p;
        uint64_t done_bytes;          /* of finished items */
        struct {
                char item[128];
                uint64_t bytes;
        } slot[DB_SLOTS];
} DbProgress;

static void db_warn(void *userdata, const char *msg) {
        cli_progress_interrupt();
        fprintf(stderr, "longbox: warning: %s\n", msg);
}

/* Called never two at a time (store/pg/dump.h). */
static void db_progress(void *userdata, const LbPgProgress *pr) {
        DbProgress *d = userdata;
        size_t free_slot = DB_SLOTS, i;
        for (i = 0; i < DB_SLOTS; i++) {
                if (d->slot[i].item[0] && strncmp(d->slot[i].item, pr->item, sizeof d->slot[i].item - 1) == 0)
                        break;
                if (!d->slot[i].item[0] && free_slot == DB_SLOTS)
                        free_slot = i;
        }
        if (i == DB_SLOTS && !pr->done && free_slot < DB_SLOTS) {
                i = free_slot;
                snprintf(d->slot[i].item, sizeof d->slot[i].item, "%s", pr->item);
        }
        if (i < DB_SLOTS) {
                d->slot[i].bytes = pr->bytes;
                if (pr->done) {
                        d->done_bytes += pr->bytes;
                        d->slot[i].item[0] = 0;
                        d->slot[i].bytes = 0;
                }
        } else if (pr->done)
                d->done_bytes += pr->bytes;
        uint64_t sum = d->done_bytes;
        for (i = 0; i < DB_SLOTS; i++)
                sum += d->slot[i].bytes;
        cli_progress_set_total(d->p, pr->bytes_total);
        cli_progress_set_items(d->p, pr->items_done, pr->items_total, "tables");
        cli_progress_update(d->p, sum, pr->item);
}

static void print_db_summary(const LbPgBackupResult *res) {
        const LbSnapshotStats *s = &res->stats;
        char id[2 * LB_ID_SIZE + 1];
        lb_id_hex(&res->snapshot_id, id);
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "message_type", json_object_new_string("summary"));
                json_object_object_add(o, "files_new", json_object_new_uint64(res->files_new));
                json_object_object_add(o, "files_changed", json_object_new_uint64(res->files_changed));
                json_object_object_add(o, "files_unmodified", json_object_new_uint64(res->files_unmodified));
                json_object_object_add(o, "dirs_new", json_object_new_uint64(s->dirs));
                json_object_object_add(o, "dirs_changed", json_object_new_uint64(0));
                json_object_object_add(o, "dirs_unmodified", json_object_new_uint64(0));
                json_object_object_add(o, "data_blobs", json_object_new_uint64(s->chunks_new));
                json_object_object_add(o, "data_added", json_object_new_uint64(s->bytes_stored));
                json_object_object_add(o, "data_added_raw", json_object_new_uint64(s->bytes_new));
                json_object_object_add(o, "total_files_processed", json_object_new_uint64(s->files));
                json_object_object_add(o, "total_bytes_processed", json_object_new_uint64(s->bytes_read));
                json_object_object_add(o, "total_duration", json_object_new_double((double) s->duration_ns / 1e9));
                json_object_object_add(o, "errors", json_object_new_uint64(s->errors));
                json_object_object_add(o, "database", json_object_new_string(res->database));
                json_object_object_add(o, "tables", json_object_new_uint64(res->tables));
                json_object_object_add(o, "rows", json_object_new_uint64(res->rows));
                json_object_object_add(o, "sequences", json_object_new_uint64(res->sequences));
                json_object_object_add(o, "large_objects", json_object_new_uint64(res->large_objects));
                json_object_object_add(o, "snapshot_id", json_object_new_string(id));
                cli_json_print(o);
                return;
        }
        char read[32], added[32], stored[32];
        cli_format_bytes(s->bytes_read, read);
        cli_format_bytes(s->bytes_new, added);
        cli_format_bytes(s->bytes_stored, stored);
        cli_info("database:      %s (PostgreSQL %d.%d)\n"
                 "tables:        %" PRIu64 " (%" PRIu64 " rows), %" PRIu64 " sequences, %" PRIu64 " large objects\n"
                 "files:         %" PRIu64 " (%" PRIu64 " new, %" PRIu64 " changed, %" PRIu64 " unmodified)\n"
                 "dirs:          %" PRIu64 "\n"
                 "bytes read:    %s\n"
                 "bytes new:     %s\n"
                 "bytes stored:  %s (after compression)\n"
                 "duration:      %.2f s\n"
                 "snapshot %s saved\n",
                 res->database, res->server_version / 10000, res->server_version % 10000, res->tables, res->rows,
                 res->sequences, res->large_objects, s->files, res->files_new, res->files_changed,
                 res->files_unmodified, s->dirs, read, added, stored, (double) s->duration_ns / 1e9, id);
}

static int backup_db(LbPgBackupOptions *pg) {
        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX | CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;
        /* longbox's own config file, secrets removed, as /config/longbox.conf:
         * what a fresh machine needs to be set up again. */
        const CliConfig *conf = NULL;
        _cleanup_buf_ LbBuf conf_text = {};
        LbPgConfigFile conf_file = { .name = "longbox.conf" };
        if (cli_config_get(&conf) == 0 && conf) {
                int k = cli_config_redact(conf, &conf_text);
                if (k < 0)
                        return cli_fail(k, "copy the config file %s into the snapshot", conf->path);
                conf_file.data = conf_text.data ? (const void *) conf_text.data : "";
                conf_file.len = conf_text.len;
                conf_file.mode = conf->file_mode;
                conf_file.uid = conf->file_uid;
                conf_file.gid = conf->file_gid;
                conf_file.mtime_ns = conf->file_mtime_ns;
                pg->config_files = &conf_file;
                pg->n_config_files = 1;
        }
        DbProgress p = { .p = cli_progress_new("backup") };
        pg->warn = db_warn;
        if (p.p)
                pg->progress = db_progress;
        pg->userdata = &p;
        LbPgBackupResult res = {};
        _cleanup_free_ char *error = NULL;
        int k = lb_pg_backup(r, pg, &res, &error);
        p.p = cli_progress_free(p.p);
        if (k < 0) {
                _cleanup_free_ char *db = NULL;
                if (lb_pg_conninfo_dbname(pg->conninfo, &db) < 0)
                        db = NULL;
                int exit_code = cli_exit_code(k);
                if (db)
                        return cli_error(exit_code, "Failed to back up database %s: %s; no snapshot recorded", db,
                                         error ? error : cli_strerror(k));
                return cli_error(exit_code, "Failed to back up the database: %s; no snapshot recorded",
                                 error ? error : cli_strerror(k));
        }
        print_db_summary(&res);
        cli_report_backup(&res.snapshot_id, &res.stats, res.database);
        return CLI_EXIT_OK;
}

int cmd_backup(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "tag", required_argument, NULL, OPT_TAG },
                { "host", required_argument, NULL, OPT_HOST },
                { "time", required_argument, NULL, OPT_TIME },
                { "stdin-name", required_argument, NULL, OPT_STDIN_NAME },
                { "stdin-from-command", no_argument, NULL, OPT_STDIN_FROM_COMMAND },
                { "db", required_argument, NULL, OPT_DB },
                { "jobs", required_argument, NULL, OPT_JOBS },
                { "order", required_argument, NULL, OPT_ORDER },
                {},
        };
        LbBackupOptions o = { .stdin_fd = -1, .warn = on_warn };
        BackupCtx b = {};
        _cleanup_free_ const char **tags = calloc((size_t) argc, sizeof *tags);
        if (!tags)
                return cli_fail(-ENOMEM, "parse the arguments");
        bool from_command = false;
        LbPgBackupOptions pg = {};
        bool jobs_set = false, order_set = false;

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_TAG:
                        if (!*optarg || strlen(optarg) > LB_SNAP_STRING_MAX)
                                return cli_usage_error("--tag needs a non-empty tag of at most %d bytes", LB_SNAP_STRING_MAX);
                        tags[o.n_tags++] = optarg;
                        break;
                case OPT_HOST:
                        if (!*optarg || strlen(optarg) > 255)
                                return cli_usage_error("--host needs a hostname of 1 to 255 bytes");
                        o.hostname = optarg;
                        break;
                case OPT_TIME:
                        if (parse_time(optarg, &o.time_ns, &o.tz_offset) < 0)
                                return cli_usage_error("--time needs a local time like \"2024-05-01 23:30:00\", got '%s'",
                                                       optarg);
                        o.has_tz_offset = true;
                        break;
                case OPT_STDIN_NAME:
                        if (!*optarg || strchr(optarg, '/') || strcmp(optarg, ".") == 0 || strcmp(optarg, "..") == 0 ||
                            strlen(optarg) > 255)
                                return cli_usage_error("--stdin-name needs a file name without '/', got '%s'", optarg);
                        o.stdin_name = optarg;
                        break;
                case OPT_STDIN_FROM_COMMAND:
                        from_command = true;
                        break;
                case OPT_DB:
                        if (!*optarg)
                                return cli_usage_error("--db needs a connection string, e.g. \"dbname=shop\"");
                        pg.conninfo = optarg;
                        break;
                case OPT_JOBS: {
                        long long n;
                        if (cli_parse_int(optarg, 1, 16, &n) < 0)
                                return cli_usage_error("--jobs needs a number from 1 to 16, got '%s'", optarg);
                        pg.jobs = (unsigned) n;
                        jobs_set = true;
                        break;
                }
                case OPT_ORDER:
                        if (strcmp(optarg, "pk") == 0)
                                pg.physical_order = false;
                        else if (strcmp(optarg, "physical") == 0)
                                pg.physical_order = true;
                        else
                                return cli_usage_error("--order needs pk or physical, got '%s'", optarg);
                        order_set = true;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        o.tags = tags;

        char **rest = argv + optind;
        int n_rest = argc - optind;
        if (pg.conninfo) {
                if (o.stdin_name || from_command)
                        return cli_usage_error("--db backs up a database; it cannot be combined with --stdin-name "
                                               "or --stdin-from-command");
                if (n_rest > 0)
                        return cli_usage_error("--db backs up a database; give no PATH (got '%s')", rest[0]);
                pg.tags = o.tags;
                pg.n_tags = o.n_tags;
                pg.hostname = o.hostname;
                pg.time_ns = o.time_ns;
                pg.has_tz_offset = o.has_tz_offset;
                pg.tz_offset = o.tz_offset;
                return backup_db(&pg);
        }
        if (jobs_set || order_set)
                return cli_usage_error("%s only applies to --db", jobs_set ? "--jobs" : "--order");
        if (from_command) {
                if (!o.stdin_name)
                        return cli_usage_error("--stdin-from-command needs --stdin-name NAME");
                if (n_rest == 0)
                        return cli_usage_error("--stdin-from-command needs a command after --");
        } else if (o.stdin_name) {
                if (n_rest > 0)
                        return cli_usage_error("--stdin-name reads standard input; give no PATH (got '%s')", rest[0]);
        } else {
                if (n_rest == 0)
                        return cli_usage_error("nothing to back up: give one or more PATHs, or --stdin-name NAME");
                o.paths = (const char *const *) rest;
                o.n_paths = (size_t) n_rest;
        }

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX | CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;

        _cleanup_close_ int cmd_fd = -1;
        if (from_command) {
                code = start_command(rest, &b, &cmd_fd);
                if (code)
                        return code;
                o.stdin_fd = cmd_fd;
                o.before_commit = before_commit;
                o.userdata = &b;
        } else if (o.stdin_name)
                o.stdin_fd = STDIN_FILENO;

        /* The parent: the latest snapshot of the same host and paths. */
        _cleanup_snapshot_ LbSnapshot *parent = NULL;
        int k = lb_backup_find_parent(r, &o, &parent);
        if (k < 0 && k != -ENOENT)
                return cli_fail(k, "read the snapshots of %s", cli.repo);
        o.parent = parent;

        b.progress = cli_progress_new("backup");
        if (b.progress) {
                cli_progress_set_total(b.progress, inputs_size(&o));
                o.progress = on_progress;
                o.userdata = &b;
        }
        LbBackupResult res = {};
        k = lb_backup_run(r, &o, &res);
        b.progress = cli_progress_free(b.progress);

        if (b.child > 0) {
                /* The backup stopped before reading everything: closing the
                 * pipe ends the command (SIGPIPE), then reap it. */
                close(cmd_fd);
                cmd_fd = -1;
                (void) wait_child(&b);
        }
        if (b.command_failed && (k == -ECHILD || k == 0)) {
                if (WIFSIGNALED(b.status))
                        return cli_error(CLI_EXIT_ERROR, "Failed to back up the output of %s: command %s was killed by "
                                         "signal %d (%s); no snapshot recorded", b.command, b.command,
                                         WTERMSIG(b.status), strsignal(WTERMSIG(b.status)));
                return cli_error(CLI_EXIT_ERROR, "Failed to back up the output of %s: command %s exited with status %d; "
                                 "no snapshot recorded", b.command, b.command, WEXITSTATUS(b.status));
        }
        if (k < 0) {
                if (o.stdin_name)
                        return cli_fail(k, "back up %s into %s; no snapshot recorded",
                                        from_command ? b.command : "standard input", cli.repo);
                return cli_fail(k, "back up into %s; no snapshot recorded", cli.repo);
        }

        print_summary(&res);
        cli_report_backup(&res.snapshot_id, &res.stats, NULL);
        if (res.stats.errors > 0) {
                char id[9];
                cli_id_short(&res.snapshot_id, id);
                return cli_error(CLI_EXIT_PARTIAL, "snapshot %s was recorded, but %" PRIu64 " input%s could not be read "
                                 "(see above) and %s missing from it", id, res.stats.errors,
                                 res.stats.errors == 1 ? "" : "s", res.stats.errors == 1 ? "is" : "are");
        }
        return CLI_EXIT_OK;
}
