/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cmd/common.h"
#include "cmd/progress.h"
#include "store/util.h"

#define INTERVAL_NS_DEFAULT (200 * INT64_C(1000000))   /* 5 updates per second */
#define CURRENT_MAX 1024

struct CliProgress {
        pthread_mutex_t lock;
        const char *what;
        bool json;              /* status lines on stdout */
        bool tty;               /* a line on stderr */
        bool line;              /* the line is on the screen */
        int64_t start_ns, last_ns, interval_ns;
        uint64_t total, done;
        uint64_t items_done, items_total;
        const char *unit;
        char current[CURRENT_MAX];
};

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static CliProgress *active;

bool cli_progress_enabled(void) {
        if (cli.quiet)
                return false;
        return cli.json || isatty(STDERR_FILENO);
}

CliProgress *cli_progress_new(const char *what) {
        if (!cli_progress_enabled())
                return NULL;
        CliProgress *p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        pthread_mutex_init(&p->lock, NULL);
        p->what = what;
        p->json = cli.json;
        p->tty = !cli.json;
        p->start_ns = p->last_ns = lb_mono_ns();
        /* LONGBOX_PROGRESS_FPS: updates per second (0.01 to 1000; as
         * restic's RESTIC_PROGRESS_FPS). */
        p->interval_ns = INTERVAL_NS_DEFAULT;
        const char *fps = getenv("LONGBOX_PROGRESS_FPS");
        if (fps && *fps) {
                char *end;
                double v = strtod(fps, &end);
                if (*end == 0 && v >= 0.01 && v <= 1000)
                        p->interval_ns = (int64_t) (1e9 / v);
        }
        pthread_mutex_lock(&active_lock);
        active = p;
        pthread_mutex_unlock(&active_lock);
        return p;
}

static void erase_locked(CliProgress *p) {
        if (p->line) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
                p->line = false;
        }
}

CliProgress *cli_progress_free(CliProgress *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&active_lock);
        if (active == p)
                active = NULL;
        pthread_mutex_unlock(&active_lock);
        erase_locked(p);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

void cli_progress_clear(CliProgress *p) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        erase_locked(p);
        pthread_mutex_unlock(&p->lock);
}

void cli_progress_interrupt(void) {
        pthread_mutex_lock(&active_lock);
        cli_progress_clear(active);
        pthread_mutex_unlock(&active_lock);
}

void cli_format_duration(double s, char out[32]) {
        if (s < 0)
                s = 0;
        if (s < 60) {
                snprintf(out, 32, "%.1f s", s);
                return;
        }
        uint64_t t = (uint64_t) (s + 0.5);
        if (t < 3600)
                snprintf(out, 32, "%" PRIu64 "m%02" PRIu64 "s", t / 60, t % 60);
        else if (t < 100 * 3600)
                snprintf(out, 32, "%" PRIu64 "h%02" PRIu64 "m", t / 3600, t / 60 % 60);
        else
                snprintf(out, 32, "%" PRIu64 "h", t / 3600);
}

static unsigned term_width(void) {
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
                return ws.ws_col;
        return 80;
}

static void draw_tty(CliProgress *p, double secs, double rate) {
        char done[32], total[32], r[32], eta[32], items[64] = "", head[256];
        cli_format_bytes(p->done, done);
        cli_format_bytes((uint64_t) rate, r);
        if (p->items_total)
                snprintf(items, sizeof items, "[%" PRIu64 "/%" PRIu64 "%s%s] ", p->items_done, p->items_total,
                         p->unit ? " " : "", p->unit ? p->unit : "");
        if (p->total > 0) {
                cli_format_bytes(p->total, total);
                double pct = p->done >= p->total ? 100.0 : 100.0 * (double) p->done / (double) p->total;
                if (rate > 0 && p->done < p->total)
                        cli_format_duration((double) (p->total - p->done) / rate, eta);
                else
                        snprintf(eta, sizeof eta, "%s", p->done >= p->total ? "0.0 s" : "?");
                snprintf(head, sizeof head, "%s: %s%s of %s (%.0f%%), %s/s, ETA %s", p->what, items, done, total,
                         pct, r, eta);
        } else {
                char el[32];
                cli_format_duration(secs, el);
                snprintf(head, sizeof head, "%s: %s%s, %s/s, %s", p->what, items, done, r, el);
        }
        /* One line, never wrapped (a wrapped line cannot be redrawn with \r):
         * the current item gets what is left, its tail when too long. */
        unsigned width = term_width() - 1;
        size_t hl = strlen(head);
        if (hl > width)
                hl = width;
        fprintf(stderr, "\r\033[K%.*s", (int) hl, head);
        size_t room = width > hl + 2 ? width - hl - 2 : 0;
        size_t cl = strlen(p->current);
        if (cl > 0 && room >= 8) {
                if (cl <= room)
                        fprintf(stderr, "  %s", p->current);
                else
                        fprintf(stderr, "  ...%s", p->current + cl - (room - 3));
        }
        fflush(stderr);
        p->line = true;
}

static void print_json(CliProgress *p, double secs, double rate) {
        json_object *o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "message_type", json_object_new_string("status"));
        json_object_object_add(o, "action", json_object_new_string(p->what));
        json_object_object_add(o, "seconds_elapsed", json_object_new_int64((int64_t) secs));
        double frac = 0;
        if (p->total > 0) {
                frac = p->done >= p->total ? 1.0 : (double) p->done / (double) p->total;
                if (rate > 0)
                        json_object_object_add(o, "seconds_remaining",
                                               json_object_new_int64((int64_t) ((double) (p->total -
                                                       LB_MIN(p->done, p->total)) / rate)));
        }
        json_object_object_add(o, "percent_done", json_object_new_double(frac));
        if (p->total > 0)
                json_object_object_add(o, "total_bytes", json_object_new_uint64(p->total));
        json_object_object_add(o, "bytes_done", json_object_new_uint64(p->done));
        if (p->items_total) {
                json_object_object_add(o, "total_files", json_object_new_uint64(p->items_total));
                json_object_object_add(o, "files_done", json_object_new_uint64(p->items_done));
        }
        json_object *cur = json_object_new_array();
        if (p->current[0])
                json_object_array_add(cur, json_object_new_string(p->current));
        json_object_object_add(o, "current_files", cur);
        cli_json_print(o);
        fflush(stdout);
        json_object_put(o);
}

/* With p->lock held. */
static void maybe_show(CliProgress *p) {
        int64_t now = lb_mono_ns();
        if (now - p->last_ns < p->interval_ns)
                return;
        p->last_ns = now;
        double secs = (double) (now - p->start_ns) / 1e9;
        double rate = secs > 0 ? (double) p->done / secs : 0;
        if (p->json)
                print_json(p, secs, rate);
        else if (p->tty)
                draw_tty(p, secs, rate);
}

void cli_progress_set_total(CliProgress *p, uint64_t total_bytes) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->total = total_bytes;
        pthread_mutex_unlock(&p->lock);
}

void cli_progress_set_items(CliProgress *p, uint64_t done, uint64_t total, const char *unit) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->items_done = done;
        p->items_total = total;
        p->unit = unit;
        pthread_mutex_unlock(&p->lock);
}

static void update(CliProgress *p, uint64_t bytes_done, const char *current, bool now) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        if (now)
                p->last_ns = INT64_MIN / 2;
        p->done = bytes_done;
        if (current) {
                /* Control characters in a file name would wreck the line. */
                size_t i = 0;
                for (; current[i] && i < CURRENT_MAX - 1; i++)
                        p->current[i] = (unsigned char) current[i] < 0x20 || current[i] == 0x7f ? '?' : current[i];
                p->current[i] = 0;
        }
        maybe_show(p);
        pthread_mutex_unlock(&p->lock);
}

void cli_progress_update(CliProgress *p, uint64_t bytes_done, const char *current) {
        update(p, bytes_done, current, false);
}

void cli_progress_update_now(CliProgress *p, uint64_t bytes_done, const char *current) {
        update(p, bytes_done, current, true);
}
