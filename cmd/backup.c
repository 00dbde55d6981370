/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "cmd/common.h"
#include "store/archiver.h"
#include "store/crypto.h"
#include "store/walk.h"

static const char help[] =
        "Usage: longbox backup [OPTIONS] PATH...\n"
        "       longbox backup [OPTIONS] --stdin-name NAME\n"
        "       longbox backup [OPTIONS] --stdin-name NAME --stdin-from-command -- CMD [ARGS...]\n"
        "\n"
        "Backs up files and directories (recorded under their absolute paths), or\n"
        "standard input as the file /NAME, into a new snapshot. With\n"
        "--stdin-from-command longbox runs CMD itself and records no snapshot unless\n"
        "CMD exits with status 0, so a failed dump never looks like a backup.\n"
        "Unreadable inputs are reported and skipped; the snapshot is recorded and the\n"
        "exit code is 3.\n"
        "\n"
        "Options:\n"
        "  --tag TAG                 add a tag to the snapshot (repeatable)\n"
        "  --host HOST               hostname to record (default: this machine's)\n"
        "  --time \"YYYY-MM-DD HH:MM:SS\"  snapshot time, local time (default: now)\n"
        "  --stdin-name NAME         read the content from standard input as /NAME\n"
        "  --stdin-from-command      run the command after -- and back up its output\n"
        "  --json                    print the summary as one JSON object\n";

enum {
        OPT_TAG = OPT_FIRST_LOCAL,
        OPT_HOST,
        OPT_TIME,
        OPT_STDIN_NAME,
        OPT_STDIN_FROM_COMMAND,
};

typedef struct BackupCtx {
        pid_t child;
        const char *command;
        bool command_failed;
        int status;
} BackupCtx;

static void on_warn(void *userdata, const char *path, int err) {
        fprintf(stderr, "longbox: Failed to read %s: %s; it is not in the snapshot\n", path, cli_strerror(err));
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

/* Files and directories new, changed and unmodified against the parent:
 * the latest earlier snapshot of the same host and paths. */
typedef struct Changes {
        uint64_t files_new, files_changed, files_unmodified;
        uint64_t dirs_new, dirs_changed, dirs_unmodified;
} Changes;

typedef struct CountCtx {
        Changes *c;
        bool is_new;           /* count as new (no counterpart in the parent) */
} CountCtx;

static int count_node(const char *path, const LbNode *n, void *userdata) {
        CountCtx *cc = userdata;
        if (n->type == LB_NODE_DIR)
                (*(cc->is_new ? &cc->c->dirs_new : &cc->c->dirs_unmodified))++;
        else if (n->type == LB_NODE_FILE)
                (*(cc->is_new ? &cc->c->files_new : &cc->c->files_unmodified))++;
        return 0;
}

static int count_below(LbRepo *r, const LbNode *n, bool is_new, Changes *c) {
        if (n->type != LB_NODE_DIR || !n->has_subtree)
                return 0;
        CountCtx cc = { .c = c, .is_new = is_new };
        return lb_walk(r, &n->subtree, "", count_node, &cc);
}

static int compare_trees(LbRepo *r, const LbId *old_id, const LbId *new_id, Changes *c, unsigned depth) {
        if (depth >= LB_WALK_DEPTH_MAX)
                return -ELOOP;
        _cleanup_tree_ LbTree *old = NULL;
        _cleanup_tree_ LbTree *cur = NULL;
        int k = old_id ? lb_repo_load_tree(r, old_id, &old) : 0;
        if (k == 0)
                k = lb_repo_load_tree(r, new_id, &cur);
        if (k < 0)
                return k;
        for (size_t i = 0; i < cur->n && k == 0; i++) {
                const LbNode *n = &cur->nodes[i];
                const LbNode *o = old ? lb_tree_find(old, n->name) : NULL;
                if (o && o->type != n->type)
                        o = NULL;
                CountCtx cc = { .c = c, .is_new = !o };
                if (!o) {
                        (void) count_node(NULL, n, &cc);
                        k = count_below(r, n, true, c);
                } else if (n->type == LB_NODE_DIR) {
                        bool same = o->has_subtree == n->has_subtree &&
                                    (!n->has_subtree || lb_id_cmp(&o->subtree, &n->subtree) == 0);
                        (*(same && !cli_node_changed(o, n) ? &c->dirs_unmodified : &c->dirs_changed))++;
                        if (same)
                                k = count_below(r, n, false, c);
                        else if (n->has_subtree)
                                k = compare_trees(r, o->has_subtree ? &o->subtree : NULL, &n->subtree, c, depth + 1);
                } else if (n->type == LB_NODE_FILE)
                        (*(cli_node_changed(o, n) ? &c->files_changed : &c->files_unmodified))++;
        }
        return k;
}

static bool same_paths(const LbSnapshot *a, const LbSnapshot *b) {
        if (a->n_paths != b->n_paths)
                return false;
        for (size_t i = 0; i < a->n_paths; i++) {
                bool found = false;
                for (size_t j = 0; j < b->n_paths && !found; j++)
                        found = strcmp(a->paths[i], b->paths[j]) == 0;
                if (!found)
                        return false;
        }
        return true;
}

static int count_changes(LbRepo *r, const LbId *snap_id, Changes *ret) {
        LbSnapshot **snaps = NULL;
        size_t n = 0;
        int k = lb_repo_snapshot_list(r, &snaps, &n);
        if (k < 0)
                return k;
        const LbSnapshot *cur = NULL, *parent = NULL;
        for (size_t i = 0; i < n; i++)
                if (lb_id_cmp(&snaps[i]->id, snap_id) == 0)
                        cur = snaps[i];
        for (size_t i = 0; cur && i < n; i++) {
                const LbSnapshot *s = snaps[i];
                if (s == cur || s->time_ns > cur->time_ns || !s->hostname || !cur->hostname ||
                    strcmp(s->hostname, cur->hostname) != 0 || !same_paths(s, cur))
                        continue;
                if (!parent || s->time_ns >= parent->time_ns)
                        parent = s;
        }
        Changes c = {};
        if (!cur)
                k = -ENOENT;
        else
                k = compare_trees(r, parent ? &parent->tree : NULL, &cur->tree, &c, 0);
        lb_snapshots_free(snaps, n);
        if (k < 0)
                return k;
        *ret = c;
        return 0;
}

static void print_summary(const LbBackupResult *res, const Changes *ch) {
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

int cmd_backup(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "tag", required_argument, NULL, OPT_TAG },
                { "host", required_argument, NULL, OPT_HOST },
                { "time", required_argument, NULL, OPT_TIME },
                { "stdin-name", required_argument, NULL, OPT_STDIN_NAME },
                { "stdin-from-command", no_argument, NULL, OPT_STDIN_FROM_COMMAND },
                {},
        };
        LbBackupOptions o = { .stdin_fd = -1, .warn = on_warn };
        BackupCtx b = {};
        _cleanup_free_ const char **tags = calloc((size_t) argc, sizeof *tags);
        if (!tags)
                return cli_fail(-ENOMEM, "parse the arguments");
        bool from_command = false;

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

        LbBackupResult res = {};
        int k = lb_backup_run(r, &o, &res);

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

        /* Counted against the parent; if that cannot be read, everything counts as new. */
        Changes ch = { .files_new = res.stats.files, .dirs_new = res.stats.dirs };
        (void) count_changes(r, &res.snapshot_id, &ch);
        print_summary(&res, &ch);
        if (res.stats.errors > 0) {
                char id[9];
                cli_id_short(&res.snapshot_id, id);
                return cli_error(CLI_EXIT_PARTIAL, "snapshot %s was recorded, but %" PRIu64 " input%s could not be read "
                                 "(see above) and %s missing from it", id, res.stats.errors,
                                 res.stats.errors == 1 ? "" : "s", res.stats.errors == 1 ? "is" : "are");
        }
        return CLI_EXIT_OK;
}
