/* SPDX-License-Identifier: MIT */
/*
 * Results of unattended commands: the event record in the repository
 * (docs/design.md "Events"), the Prometheus metrics file (node_exporter
 * textfile collector format, written atomically) and the notifications
 * of [notify]: a command run with the result in LONGBOX_* environment
 * variables, and a webhook POST of a JSON body (store/http.c).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>

#include "cmd/common.h"
#include "store/http.h"
#include "cmd/config.h"
#include "store/event.h"

#define REPORT_DEPTH 2
#define REPORT_META_MAX 16
#define METRICS_FILE_MAX (1u << 20)

typedef struct Report {
        char kind[LB_EVENT_KIND_MAX + 1];
        int64_t start_ns, start_mono;
        char *message;
        bool has_snapshot;
        LbId snapshot;
        LbMeta meta[REPORT_META_MAX];
        size_t n_meta;
        bool has_backup;
        LbSnapshotStats backup;
} Report;

static Report reports[REPORT_DEPTH];
static int depth;

/* The repository the command opened: where its event goes. */
static LbKeys saved_keys;
static char *saved_location;

static const char *const wanted[] = { "backup", "sync", "forget", "prune", "check", "drill", "run" };

bool cli_report_wanted(const char *command, int argc, char **argv) {
        /* A dry run changes nothing, not even the record of results. */
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--dry-run") == 0)
                        return false;
        for (size_t i = 0; i < LB_ARRAY_SIZE(wanted); i++)
                if (strcmp(command, wanted[i]) == 0)
                        return true;
        return false;
}

static Report *current(void) {
        return depth > 0 ? &reports[depth - 1] : NULL;
}

void cli_report_begin(const char *kind) {
        if (depth >= REPORT_DEPTH)
                return;
        Report *r = &reports[depth++];
        *r = (Report) {};
        snprintf(r->kind, sizeof r->kind, "%s", kind);
        r->start_ns = lb_now_ns();
        r->start_mono = lb_mono_ns();
}

void cli_report_repo(LbRepo *r) {
        if (!r || !r->be || !r->be->location)
                return;
        if (!saved_location || strcmp(saved_location, r->be->location) != 0) {
                free(saved_location);
                saved_location = strdup(r->be->location);
        }
        saved_keys = r->keys;
}

void cli_report_cleanup(void) {
        explicit_bzero(&saved_keys, sizeof saved_keys);
        free(saved_location);
        saved_location = NULL;
}

void cli_report_snapshot(const LbId *id) {
        Report *r = current();
        if (!r)
                return;
        r->has_snapshot = true;
        r->snapshot = *id;
}

void cli_report_meta(const char *key, const char *fmt, ...) {
        Report *r = current();
        if (!r || r->n_meta >= REPORT_META_MAX)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *v = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        char *k = strdup(key);
        if (!v || !k) {
                free(v);
                free(k);
                return;
        }
        for (size_t i = 0; i < r->n_meta; i++)
                if (strcmp(r->meta[i].key, key) == 0) {
                        free(r->meta[i].value);
                        r->meta[i].value = v;
                        free(k);
                        return;
                }
        r->meta[r->n_meta++] = (LbMeta) { .key = k, .value = v };
}

void cli_report_message(const char *msg) {
        for (int i = 0; i < depth; i++)
                if (!reports[i].message) {
                        reports[i].message = strndup(msg, LB_EVENT_STRING_MAX);
                }
}

void cli_report_backup(const LbId *snapshot, const LbSnapshotStats *s, const char *database) {
        Report *r = current();
        if (!r)
                return;
        cli_report_snapshot(snapshot);
        r->has_backup = true;
        r->backup = *s;
        if (database)
                cli_report_meta("database", "%s", database);
        cli_report_meta("bytes_read", "%" PRIu64, s->bytes_read);
        cli_report_meta("bytes_added", "%" PRIu64, s->bytes_new);
        cli_report_meta("bytes_stored", "%" PRIu64, s->bytes_stored);
}

static const char *report_meta(const Report *r, const char *key) {
        for (size_t i = 0; i < r->n_meta; i++)
                if (strcmp(r->meta[i].key, key) == 0)
                        return r->meta[i].value;
        return NULL;
}

static LbEventStatus status_of(int code) {
        return code == CLI_EXIT_OK ? LB_EVENT_SUCCESS : code == CLI_EXIT_PARTIAL ? LB_EVENT_WARNING : LB_EVENT_FAILURE;
}

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("longbox: warning: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

/* ---- the event ---- */

static void record_event(const Report *r, int code, int64_t duration_ns) {
        if (!saved_location)
                return; /* the repository was never opened: nothing to write into */
        char host[256];
        if (gethostname(host, sizeof host - 1) < 0)
                strcpy(host, "unknown");
        host[sizeof host - 1] = 0;
        LbEvent e = {
                .time_ns = r->start_ns,
                .kind = (char *) r->kind,
                .status = status_of(code),
                .exit_code = (uint32_t) code,
                .duration_ns = (uint64_t) duration_ns,
                .hostname = host,
                .message = r->message,
                .has_snapshot = r->has_snapshot,
                .snapshot = r->snapshot,
                .program = (char *) LB_VERSION_STRING,
                .meta = (LbMeta *) r->meta,
                .n_meta = r->n_meta,
        };
        LbBackend *be = NULL;
        int k = lb_backend_open(saved_location, &be);
        if (k == 0)
                k = lb_event_save(be, &saved_keys, &e, NULL);
        if (k == 0)
                k = lb_event_trim(be, &saved_keys, LB_EVENT_KEEP, NULL);
        lb_backend_free(be);
        if (k < 0)
                warn("Failed to record the result of %s in repository %s: %s", r->kind, saved_location,
                     cli_strerror(k));
}

/* ---- metrics ---- */

typedef struct Sample {
        char *key;      /* name{labels} */
        char *value;
} Sample;

typedef struct Samples {
        Sample *v;
        size_t n;
} Samples;

static void samples_clear(Samples *s) {
        for (size_t i = 0; i < s->n; i++) {
                free(s->v[i].key);
                free(s->v[i].value);
        }
        free(s->v);
        *s = (Samples) {};
}

static int samples_set(Samples *s, const char *key, const char *value) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i].key, key) == 0) {
                        char *v = strdup(value);
                        if (!v)
                                return -ENOMEM;
                        free(s->v[i].value);
                        s->v[i].value = v;
                        return 0;
                }
        Sample *v = reallocarray(s->v, s->n + 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        s->v = v;
        char *k = strdup(key), *val = strdup(value);
        if (!k || !val) {
                free(k);
                free(val);
                return -ENOMEM;
        }
        s->v[s->n++] = (Sample) { .key = k, .value = val };
        return 0;
}

/* Reads the samples of an earlier metrics file: "longbox_... VALUE" lines. */
static void samples_load(Samples *s, const char *path) {
        _cleanup_buf_ LbBuf b = {};
        if (lb_read_file(path, METRICS_FILE_MAX, &b) < 0)
                return;
        char *text = strndup((const char *) b.data, b.len);
        if (!text)
                return;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strncmp(line, "longbox_", 8) != 0)
                        continue;
                char *sp = strrchr(line, ' ');
                if (!sp || sp == line)
                        continue;
                *sp = 0;
                (void) samples_set(s, line, sp + 1);
        }
        free(text);
}

static int sample_cmp(const void *a, const void *b) {
        return strcmp(((const Sample *) a)->key, ((const Sample *) b)->key);
}

static const char *metric_help(const char *name) {
        static const struct {
                const char *name, *help;
        } h[] = {
                { "longbox_last_run_timestamp_seconds", "Start of the last run of the command (Unix time)." },
                { "longbox_last_success_timestamp_seconds", "Start of the last successful run (Unix time)." },
                { "longbox_last_run_duration_seconds", "Duration of the last run." },
                { "longbox_last_run_exit_code", "Exit code of the last run." },
                { "longbox_last_run_success", "1 if the last run succeeded, else 0." },
                { "longbox_backup_bytes_processed", "Bytes read by the last successful backup." },
                { "longbox_backup_bytes_added", "Raw bytes of new chunks of the last successful backup." },
                { "longbox_backup_bytes_stored", "Bytes stored (compressed, encrypted) by the last successful backup." },
                { "longbox_backup_dedup_ratio", "Bytes processed per byte stored by the last successful backup." },
                { "longbox_drill_rto_seconds", "Time to a usable database in the last successful drill." },
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(h); i++)
                if (strcmp(h[i].name, name) == 0)
                        return h[i].help;
        return "longbox metric.";
}

static int samples_write(Samples *s, const char *path) {
        lb_qsort(s->v, s->n, sizeof *s->v, sample_cmp);
        _cleanup_buf_ LbBuf out = {};
        char last[128] = "";
        for (size_t i = 0; i < s->n; i++) {
                char name[128];
                size_t nl = strcspn(s->v[i].key, "{");
                snprintf(name, sizeof name, "%.*s", (int) LB_MIN(nl, sizeof name - 1), s->v[i].key);
                char *line = NULL;
                int k;
                if (strcmp(name, last) != 0) {
                        k = asprintf(&line, "# HELP %s %s\n# TYPE %s gauge\n", name, metric_help(name), name);
                        if (k < 0)
                                return -ENOMEM;
                        k = lb_buf_append(&out, line, strlen(line));
                        free(line);
                        if (k < 0)
                                return k;
                        snprintf(last, sizeof last, "%s", name);
                }
                if (asprintf(&line, "%s %s\n", s->v[i].key, s->v[i].value) < 0)
                        return -ENOMEM;
                k = lb_buf_append(&out, line, strlen(line));
                free(line);
                if (k < 0)
                        return k;
        }
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *slash = strrchr(copy, '/');
        const char *dir = ".", *base = copy;
        if (slash) {
                *slash = 0;
                dir = slash == copy ? "/" : copy;
                base = slash + 1;
        }
        /* Readable by the node_exporter user: metrics hold no secrets. */
        return lb_write_file_atomic(dir, base, out.data, out.len, 0644);
}

/* A label value with \, " and newline escaped. */
static void label_escape(const char *in, char *out, size_t n) {
        size_t j = 0;
        for (; *in && j + 3 < n; in++) {
                if (*in == '\\' || *in == '"') {
                        out[j++] = '\\';
                        out[j++] = *in;
                } else if (*in == '\n') {
                        out[j++] = '\\';
                        out[j++] = 'n';
                } else
                        out[j++] = *in;
        }
        out[j] = 0;
}

static const char *metrics_path(void) {
        if (cli.metrics_file)
                return cli.metrics_file;
        const char *e = getenv("LONGBOX_METRICS_FILE");
        if (e && *e)
                return e;
        const CliConfig *c = NULL;
        if (cli_config_get(&c) == 0 && c && c->metrics_file)
                return c->metrics_file;
        return NULL;
}

static void write_metrics(const Report *r, int code, int64_t duration_ns) {
        const char *path = metrics_path();
        if (!path)
                return;
        Samples s = {};
        samples_load(&s, path);
        char labels[512], db[300];
        const char *database = report_meta(r, "database");
        if (database) {
                label_escape(database, db, sizeof db);
                snprintf(labels, sizeof labels, "{command=\"%s\",database=\"%s\"}", r->kind, db);
        } else
                snprintf(labels, sizeof labels, "{command=\"%s\"}", r->kind);
        char key[700], val[64];
        int k = 0;
#define SET(name, ...)                                                                   \
        do {                                                                             \
                snprintf(key, sizeof key, "%s%s", name, labels);                         \
                snprintf(val, sizeof val, __VA_ARGS__);                                  \
                if (k == 0)                                                              \
                        k = samples_set(&s, key, val);                                   \
        } while (0)
        double start = (double) r->start_ns / 1e9;
        bool ok = status_of(code) != LB_EVENT_FAILURE;
        SET("longbox_last_run_timestamp_seconds", "%.3f", start);
        SET("longbox_last_run_duration_seconds", "%.3f", (double) duration_ns / 1e9);
        SET("longbox_last_run_exit_code", "%d", code);
        SET("longbox_last_run_success", "%d", ok ? 1 : 0);
        if (ok)
                SET("longbox_last_success_timestamp_seconds", "%.3f", start);
        if (ok && r->has_backup) {
                SET("longbox_backup_bytes_processed", "%" PRIu64, r->backup.bytes_read);
                SET("longbox_backup_bytes_added", "%" PRIu64, r->backup.bytes_new);
                SET("longbox_backup_bytes_stored", "%" PRIu64, r->backup.bytes_stored);
                SET("longbox_backup_dedup_ratio", "%.3f",
                    r->backup.bytes_stored ? (double) r->backup.bytes_read / (double) r->backup.bytes_stored : 0.0);
        }
        const char *rto = report_meta(r, "rto_seconds");
        if (ok && rto)
                SET("longbox_drill_rto_seconds", "%s", rto);
#undef SET
        if (k == 0)
                k = samples_write(&s, path);
        samples_clear(&s);
        if (k < 0)
                warn("Failed to write the metrics file %s: %s", path, cli_strerror(k));
}

/* ---- notifications ---- */

static void format_time(int64_t ns, char out[48]) {
        cli_format_rfc3339_local(ns, out);
}

static int run_notify_command(const CliConfig *c, const Report *r, int code, int64_t duration_ns) {
        char exit_s[16], dur[32], when[48], snap[2 * LB_ID_SIZE + 1] = "";
        snprintf(exit_s, sizeof exit_s, "%d", code);
        snprintf(dur, sizeof dur, "%.3f", (double) duration_ns / 1e9);
        format_time(r->start_ns, when);
        if (r->has_snapshot)
                lb_id_hex(&r->snapshot, snap);
        char host[256];
        if (gethostname(host, sizeof host - 1) < 0)
                strcpy(host, "unknown");
        host[sizeof host - 1] = 0;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull >= 0)
                        dup2(devnull, STDIN_FILENO);
                dup2(STDERR_FILENO, STDOUT_FILENO);
                setenv("LONGBOX_EVENT", r->kind, 1);
                setenv("LONGBOX_STATUS", lb_event_status_name(status_of(code)), 1);
                setenv("LONGBOX_EXIT_CODE", exit_s, 1);
                setenv("LONGBOX_MESSAGE", r->message ? r->message : "", 1);
                setenv("LONGBOX_REPOSITORY", cli.repo ? cli.repo : "", 1);
                setenv("LONGBOX_HOST", host, 1);
                setenv("LONGBOX_TIME", when, 1);
                setenv("LONGBOX_DURATION", dur, 1);
                setenv("LONGBOX_SNAPSHOT", snap, 1);
                const char *db = report_meta(r, "database");
                setenv("LONGBOX_DATABASE", db ? db : "", 1);
                unsetenv("LONGBOX_PASSWORD");
                signal(SIGPIPE, SIG_DFL);
                execl(c->notify_command, c->notify_command, (char *) NULL);
                fprintf(stderr, "longbox: Failed to run notify command %s: %s\n", c->notify_command, strerror(errno));
                _exit(127);
        }
        int64_t deadline = lb_mono_ns() + (int64_t) c->notify_timeout_s * 1000000000;
        for (;;) {
                int status;
                pid_t p = waitpid(pid, &status, WNOHANG);
                if (p < 0 && errno == EINTR)
                        continue;
                if (p < 0)
                        return -errno;
                if (p == pid) {
                        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                                return 0;
                        if (WIFEXITED(status))
                                warn("notify command %s exited with status %d", c->notify_command, WEXITSTATUS(status));
                        else
                                warn("notify command %s was killed by signal %d", c->notify_command, WTERMSIG(status));
                        return 1;
                }
                if (lb_mono_ns() > deadline) {
                        kill(pid, SIGKILL);
                        (void) waitpid(pid, &status, 0);
                        warn("notify command %s did not finish within %u s and was stopped", c->notify_command,
                             c->notify_timeout_s);
                        return 1;
                }
                poll(NULL, 0, 20);
        }
}

static json_object *event_json(const Report *r, int code, int64_t duration_ns) {
        json_object *o = json_object_new_object();
        char when[48], host[256];
        format_time(r->start_ns, when);
        if (gethostname(host, sizeof host - 1) < 0)
                strcpy(host, "unknown");
        host[sizeof host - 1] = 0;
        json_object_object_add(o, "event", json_object_new_string(r->kind));
        json_object_object_add(o, "status", json_object_new_string(lb_event_status_name(status_of(code))));
        json_object_object_add(o, "exit_code", json_object_new_int(code));
        json_object_object_add(o, "message", r->message ? json_object_new_string(r->message) : NULL);
        json_object_object_add(o, "repository", cli.repo ? json_object_new_string(cli.repo) : NULL);
        json_object_object_add(o, "host", json_object_new_string(host));
        json_object_object_add(o, "time", json_object_new_string(when));
        json_object_object_add(o, "duration", json_object_new_double((double) duration_ns / 1e9));
        if (r->has_snapshot) {
                char snap[2 * LB_ID_SIZE + 1];
                lb_id_hex(&r->snapshot, snap);
                json_object_object_add(o, "snapshot_id", json_object_new_string(snap));
        }
        json_object *meta = json_object_new_object();
        for (size_t i = 0; i < r->n_meta; i++)
                json_object_object_add(meta, r->meta[i].key, json_object_new_string(r->meta[i].value));
        json_object_object_add(o, "details", meta);
        char text[4400];
        snprintf(text, sizeof text, "longbox %s on %s: %s%s%s", r->kind, host,
                 lb_event_status_name(status_of(code)), r->message ? ": " : "", r->message ? r->message : "");
        /* "text": what Slack- and Mattermost-style webhooks display. */
        json_object_object_add(o, "text", json_object_new_string(text));
        return o;
}

/* Through store/http.c, the one place libcurl is used: HTTPS verified
 * (--ca-cert), one retry on a timeout or a 5xx. */
static int post_webhook(const CliConfig *c, const char *url, const char *body) {
        LbHttpOptions o;
        lb_http_get_defaults(&o);
        o.retries = 1;
        o.timeout_s = c->notify_timeout_s;
        LbHttp *h;
        int k = lb_http_new(&o, &h);
        if (k < 0) {
                warn("Failed to post the notification webhook: %s", cli_strerror(k));
                return 1;
        }
        static const char *const hdrs[] = { "Content-Type: application/json", NULL };
        LbHttpRequest q = { .method = "POST", .url = url, .headers = hdrs, .body = body, .body_len = strlen(body),
                            .has_body = true, .max_response = 64 << 10 };
        LbHttpResponse resp = {};
        k = lb_http_do(h, &q, &resp);
        lb_buf_free(&resp.body);
        lb_http_free(h);
        /* The URL usually holds a token: never print it. */
        if (k < 0 && resp.status)
                warn("Failed to post the notification webhook: the server answered HTTP %ld", resp.status);
        else if (k < 0)
                warn("Failed to post the notification webhook: %s", cli_strerror(k));
        return k < 0 ? 1 : 0;
}

static void notify(const Report *r, int code, int64_t duration_ns) {
        const CliConfig *c = NULL;
        if (cli_config_get(&c) != 0 || !c)
                return;
        if (code == CLI_EXIT_OK && !c->notify_on_success)
                return;
        if (c->notify_command) {
                int k = run_notify_command(c, r, code, duration_ns);
                if (k < 0)
                        warn("Failed to run notify command %s: %s", c->notify_command, cli_strerror(k));
        }
        if (c->webhook || c->webhook_file) {
                _cleanup_free_ char *url = NULL;
                if (c->webhook_file) {
                        _cleanup_buf_ LbBuf b = {};
                        int k = lb_read_file(c->webhook_file, 4096, &b);
                        if (k < 0) {
                                warn("Failed to read webhook-file %s: %s", c->webhook_file, cli_strerror(k));
                                return;
                        }
                        url = strndup((const char *) b.data, b.len);
                        if (url)
                                url[strcspn(url, "\r\n")] = 0;
                } else
                        url = strdup(c->webhook);
                if (!url)
                        return;
                _cleanup_json_ json_object *o = event_json(r, code, duration_ns);
                (void) post_webhook(c, url, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        }
}

int cli_report_end(int exit_code, bool do_notify) {
        Report *r = current();
        if (!r)
                return exit_code;
        int64_t duration = lb_mono_ns() - r->start_mono;
        if (!cli.help_shown) {   /* --help: nothing ran */
                record_event(r, exit_code, duration);
                write_metrics(r, exit_code, duration);
                if (do_notify)
                        notify(r, exit_code, duration);
        }
        free(r->message);
        for (size_t i = 0; i < r->n_meta; i++) {
                free(r->meta[i].key);
                free(r->meta[i].value);
        }
        *r = (Report) {};
        depth--;
        return exit_code;
}
