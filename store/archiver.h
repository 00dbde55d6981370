/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Backup of files, directories and streams into a snapshot.
 *
 * The main thread walks and reads inputs and cuts chunks; worker threads
 * hash, deduplicate, compress and seal them (store/pipeline.c), so both
 * cores work. Trees are written bottom-up; the snapshot file is written
 * last, after every pack and index file is durable.
 */

#include "store/repo.h"

typedef struct LbBackupOptions {
        const char *const *paths;     /* files/directories to back up (absolute or relative) */
        size_t n_paths;
        const char *stdin_name;       /* if set: read stdin_fd into file /<stdin_name> */
        int stdin_fd;
        const char *const *tags;
        size_t n_tags;
        const char *hostname;         /* NULL: gethostname() */
        int64_t time_ns;              /* 0: now */
        bool has_tz_offset;
        int32_t tz_offset;            /* seconds east of UTC; default: local zone at time_ns */
        const char *source;           /* "files" / "stdin" (default from inputs) */
        const LbMeta *meta;           /* extra snapshot metadata */
        /* The previous snapshot of the same inputs (or NULL): recorded as the
         * parent, and each file and directory is counted as new, changed or
         * unmodified against it. */
        const LbSnapshot *parent;
        size_t n_meta;
        /* Called for every input that cannot be read (the backup goes on and
         * counts it in stats.errors). */
        void (*warn)(void *userdata, const char *path, int err);
        /* Called after all data is stored and before the snapshot is written;
         * a negative return aborts the backup (no snapshot) with that error. */
        int (*before_commit)(void *userdata);
        /* Progress (may be NULL): content bytes read so far (holes
         * included) and the file being read (borrowed for the call; "/NAME"
         * for a stream). Called from the thread that runs lb_backup_run,
         * once per read buffer: rate-limit in the callback. */
        void (*progress)(void *userdata, uint64_t bytes_read, const char *path);
        void *userdata;
} LbBackupOptions;

typedef struct LbBackupResult {
        LbId snapshot_id;
        LbSnapshotStats stats;
        LbChangeCounts changes;
} LbBackupResult;

/* Finds the parent for a backup with these options: the latest snapshot
 * with the same hostname and the same set of (normalized) paths.
 * -ENOENT when there is none. */
int lb_backup_find_parent(LbRepo *r, const LbBackupOptions *o, LbSnapshot **ret) _warn_unused_;

/* Returns 0 on success (ret filled), -errno when no snapshot was recorded. */
int lb_backup_run(LbRepo *r, const LbBackupOptions *o, LbBackupResult *ret) _warn_unused_;
