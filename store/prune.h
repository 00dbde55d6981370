/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Prune: delete the data no snapshot uses. Protocol and crash analysis in
 * docs/design.md "Prune".
 *
 * Phase 1, under the caller's shared lock (backups go on): read the index
 * files once (packs, where trees and chunk lists are, and a spill file of
 * every entry); mark every blob the snapshots reach in an on-disk mark set;
 * account every pack from the spill; copy the live blobs of packs that are
 * mostly dead into new packs (a second thread reads and verifies them),
 * telling the local index where the copies are. Phase 2, under the
 * exclusive lock (backups wait): mark the snapshots written meanwhile,
 * keep any pack they now need, write the new index files, update the local
 * index, remove the old index files, then the packs, then packs no index
 * file lists and temporary files.
 */

#include "store/repo.h"

typedef struct LbPruneOptions {
        /* A pack whose dead blobs take more than this percentage of it is
         * repacked; 100 repacks only packs holding a dead delta (codec 2),
         * which are never kept whole (docs/design.md "Prune", step 3). */
        unsigned max_unused_percent;
        bool dry_run;               /* plan only: phase 1 without the copies */
        int64_t lock_wait_ns;       /* for the exclusive lock of phase 2 */
        /* Dry run only: count these snapshots as gone (forget --dry-run --prune). */
        const LbId *ignore_snapshots;
        size_t n_ignore_snapshots;
        /* Progress lines ("marking 12 snapshots"); may be NULL. */
        void (*info)(void *userdata, const char *message);
        /* Progress of repacking (may be NULL): bytes of the packs to
         * repack done so far of their total, packs done of their number,
         * and the pack being read (hex name, borrowed for the call);
         * called when a pack starts, after each blob copied out of it and
         * when it is done. */
        void (*progress)(void *userdata, uint64_t bytes_done, uint64_t bytes_total, uint64_t packs_done,
                         uint64_t packs_total, const char *pack);
        void *userdata;
} LbPruneOptions;

#define LB_PRUNE_MAX_UNUSED_DEFAULT 10

typedef struct LbPruneResult {
        uint64_t snapshots;
        uint64_t blobs;              /* blob entries in the index files */
        uint64_t blobs_live;         /* of those, the copies snapshots use */
        uint64_t packs;              /* packs in the index files */
        uint64_t bytes;              /* their size */
        uint64_t packs_deleted;      /* with no live blob */
        uint64_t packs_repacked;     /* live blobs copied out, then deleted */
        uint64_t packs_written;      /* new packs holding the copies */
        uint64_t packs_busy;         /* candidates kept: a new snapshot uses them, or
                                      * they hold the base of a delta that stays */
        uint64_t packs_damaged;      /* candidates kept: could not be read whole */
        uint64_t packs_unindexed;    /* leftovers no index file lists, removed */
        uint64_t bytes_deleted;      /* size of all packs removed */
        uint64_t bytes_written;      /* size of the new packs */
        uint64_t index_files_removed;
        uint64_t index_files_written;
        uint64_t temporaries_removed;
        int64_t mark_ns, repack_ns, exclusive_ns, total_ns;
} LbPruneResult;

/* The caller holds a shared lock and has updated the index; prune trades
 * it for the exclusive lock in phase 2 (-EWOULDBLOCK after lock_wait_ns;
 * the copies of phase 1 are then harmless duplicates) and leaves the
 * repository unlocked. -EBADMSG when a snapshot cannot be read or needs a
 * blob no index file lists: nothing is deleted then. *ret_error, when set,
 * says which (caller frees). */
int lb_prune_run(LbRepo *r, const LbPruneOptions *o, LbPruneResult *ret, char **ret_error) _warn_unused_;

/* Test hook (documented in docs/design.md "Prune"): with
 * LONGBOX_TEST_CRASH_AT=prune:STEP in the environment, prune kills itself
 * with SIGKILL at STEP. The steps, in order: */
#define LB_PRUNE_CRASH_STEPS                                                   \
        "marked", "repack-pack", "repack-index", "exclusive", "index-written", \
                "local-index", "index-removed", "pack-removed", "leftover-removed"
