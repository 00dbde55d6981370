/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Restore of a snapshot's files into a directory. Absolute paths in the
 * snapshot are recreated under the target (/tmp/x/a.txt ->
 * TARGET/tmp/x/a.txt).
 *
 * A regular file is written to a temporary name in its directory and
 * renamed to its real name only once its whole content was written and
 * verified: a damaged chunk never leaves wrong bytes under the real name.
 * A file that fails is removed, reported through warn and counted; the
 * restore goes on with the next one. Directory modes and times are set
 * after their contents (post-order), so read-only directories restore.
 * Every name is created relative to an open directory with O_NOFOLLOW, so
 * symlinks already present under the target are not followed.
 */

#include "store/repo.h"

typedef struct LbRestoreOptions {
        const char *target;              /* created if missing */
        /* Absolute snapshot paths: restore only these subtrees (and their
         * parent directories). NULL/0: everything. */
        const char *const *includes;
        size_t n_includes;
        bool no_sparse;                  /* write zero chunks instead of holes */
        /* Called for each entry that could not be restored, with its path
         * under the target and the error. */
        void (*warn)(void *userdata, const char *path, int err);
        /* Progress (may be NULL): content bytes written so far (holes
         * included) and the file being written (its path under the
         * target, borrowed for the call). Called once per chunk from the
         * calling thread: rate-limit in the callback. */
        void (*progress)(void *userdata, uint64_t bytes_done, const char *path);
        void *userdata;
} LbRestoreOptions;

typedef struct LbRestoreStats {
        uint64_t files;
        uint64_t dirs;
        uint64_t symlinks;
        uint64_t specials;               /* fifos and device nodes */
        uint64_t bytes;                  /* content bytes of restored files */
        uint64_t errors;                 /* entries that failed */
        uint64_t errors_damaged;         /* of which because of damaged or missing data */
} LbRestoreStats;

/* Returns 0 when everything was restored, else the first error (negative),
 * having still restored everything else it could. stats may be NULL;
 * it is filled in either case. */
int lb_restore_run(LbRepo *r, const LbSnapshot *s, const LbRestoreOptions *o, LbRestoreStats *stats) _warn_unused_;
