/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The progress reporter of the long commands (backup, restore, sync,
 * prune, check --read-data). What it shows follows the global options:
 *
 *   --quiet          nothing
 *   --json           status lines on stdout, like restic's:
 *                    {"message_type":"status","seconds_elapsed":..,
 *                     "seconds_remaining":..,"percent_done":..,
 *                     "total_bytes":..,"bytes_done":..,"current_files":[..]}
 *                    (seconds_remaining and total_bytes only when the
 *                    total is known; percent_done is a fraction 0..1)
 *   stderr a tty     one line on stderr, redrawn with \r and erased at the
 *                    end: bytes done (of the total), rate, ETA, current item
 *   otherwise        nothing
 *
 * Updates may come from any thread, as often as the caller likes: output
 * is rate-limited to 5 per second here (LONGBOX_PROGRESS_FPS changes
 * that), and the first one waits as long, so a command that finishes at
 * once prints none. cli_error, cli_fail and
 * cli_info erase the line of the active reporter before they print, so
 * messages never land in the middle of it.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct CliProgress CliProgress;

/* A reporter for the command (what: "backup", "restore", ...; a static
 * string). NULL when nothing is to be shown (or out of memory): every
 * function accepts NULL and does nothing then. Becomes the active one. */
CliProgress *cli_progress_new(const char *what);
/* Erases the line and frees; returns NULL. */
CliProgress *cli_progress_free(CliProgress *p);
static inline void cli_progress_freep(CliProgress **p) {
        cli_progress_free(*p);
}
#define _cleanup_progress_ __attribute__((cleanup(cli_progress_freep)))

/* The total in bytes; 0: unknown (no ETA, no percentage). */
void cli_progress_set_total(CliProgress *p, uint64_t total_bytes);
/* Items done of a total ("[3/12]"; total 0: not shown). */
void cli_progress_set_items(CliProgress *p, uint64_t done, uint64_t total, const char *unit);
/* Bytes done so far (absolute) and the current file, table or pack (NULL:
 * keep the previous one). The string is copied. */
void cli_progress_update(CliProgress *p, uint64_t bytes_done, const char *current);
/* The same, shown now whatever the rate limit: for the start of a step
 * that may take long with no update (an index build), so the line names
 * it rather than whatever came before. */
void cli_progress_update_now(CliProgress *p, uint64_t bytes_done, const char *current);
/* Erases the line (before a message on stderr); the next update redraws it. */
void cli_progress_clear(CliProgress *p);
/* Erases the line of the active reporter, if any. */
void cli_progress_interrupt(void);
/* Whether anything will be shown (a tty line or JSON lines). */
bool cli_progress_enabled(void);

/* "1.5 s", "2m05s", "1h02m" */
void cli_format_duration(double seconds, char out[32]);
