/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Sync: makes another backend a complete copy of a repository
 * (docs/design.md "Sync"). Objects are content-named and immutable, so a
 * copy is a byte copy; what a side lacks is found by comparing listings by
 * name and size.
 *
 * Order, so the destination is a consistent repository at every instant:
 * key slots, config (new destinations only), packs, index files, snapshot
 * files; with delete_extra then: snapshot files, index files, packs, key
 * slots the source no longer has. Source listings are taken in the
 * reverse order (snapshots, index files, packs), so every object a listed
 * snapshot needs is in the listings taken after it.
 *
 * Packs, index files and snapshots are verified against their names
 * (BLAKE2b-256 of the bytes) before upload: a damaged local object is
 * never copied; it is counted and the sync goes on, returning -EBADMSG at
 * the end.
 */

#include "store/repo.h"

typedef struct LbSyncProgress {
        uint64_t objects_done;
        uint64_t objects_total;
        uint64_t bytes_done;
        uint64_t bytes_total;
} LbSyncProgress;

/* Called from worker threads, one call at a time. */
typedef void (*LbSyncProgressFn)(const LbSyncProgress *p, void *userdata);

typedef struct LbSyncOptions {
        bool delete_extra;        /* mirror deletions */
        unsigned parallel;        /* transfers at once; 0: 4 */
        LbSyncProgressFn progress;
        void *userdata;
} LbSyncOptions;

typedef struct LbSyncStats {
        uint64_t copied[_LB_OBJ_MAX];    /* objects uploaded, per type */
        uint64_t deleted[_LB_OBJ_MAX];   /* objects removed, per type */
        uint64_t present;                /* objects already there */
        uint64_t bytes_copied;
        uint64_t damaged;                /* source objects not matching their names (not copied) */
        bool created;                    /* the destination was a new repository */
} LbSyncStats;

/* Prepares dst to hold src's repository. If dst has no config: creates it
 * (an empty location, or one a previous interrupted sync started), copies
 * the key slots, then the config. If it has one, it must be byte-equal to
 * src's: -EEXIST otherwise (another repository lives there). */
int lb_sync_prepare(LbBackend *src, LbBackend *dst, LbSyncStats *stats) _warn_unused_;

/* The same repository (config, keys) opened on another backend, to take
 * locks there. Takes ownership of be (also on failure). */
int lb_sync_open_peer(const LbRepo *src, LbBackend *be, LbRepo **ret) _warn_unused_;

/* Copies what dst lacks, then (delete_extra) removes what src lacks. */
int lb_sync_run(LbBackend *src, LbBackend *dst, const LbSyncOptions *o, LbSyncStats *stats) _warn_unused_;
