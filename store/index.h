/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The local index: an LMDB environment mapping blob id -> (pack, entry),
 * the packs it knows, and the repository index files merged into it.
 * Derived from the repository and rebuildable at any time; never the only
 * copy of anything. The only place that calls LMDB: its error convention
 * (positive errno, negative MDB_*) is translated here. Layout and rules in
 * docs/design.md "The local index".
 *
 * Databases in the environment (version LB_INDEX_VERSION; an environment
 * of another version is emptied on open and refilled from the index files):
 *   "meta":     "version" -> u32; "next_pack" -> u32 (the next pack number)
 *   "blobs":    id[32] -> pack_no u32 || offset u32 || payload_len u32 ||
 *               raw_len u32 || type u8 || codec u8
 *   "packs":    pack_id[32] -> pack_no u32 || size u64 || blob count u32
 *   "packnos":  pack_no u32 (big-endian) -> pack_id[32]
 *   "remap":    pack_no u32 (big-endian) -> n * (offset u32 || new pack_no
 *               u32 || new offset u32), sorted by offset: where prune
 *               copied the blobs of a pack
 *   "remapsrc": pack_no u32 || source pack_no u32 (big-endian) -> (empty):
 *               the packs whose remap points into pack_no
 *   "files":    index file id[32] -> (empty)
 * "packs" and "packnos" hold the packs present; a blob entry whose pack
 * is not present resolves through that pack's remap, one step at most.
 */

#include "store/indexfile.h"
#include "store/repo.h"

#define LB_INDEX_VERSION 2u

int lb_index_open(const char *dir, LbIndex **ret) _warn_unused_;
LbIndex *lb_index_free(LbIndex *x);

/* Thread-safe. -ENOENT if unknown. */
int lb_index_lookup(LbIndex *x, const LbId *id, LbBlobLoc *ret) _warn_unused_;
/* Adds packs (and marks file_id, if not NULL, as merged). A blob already
 * indexed keeps its location, unless that location no longer resolves
 * (its pack was forgotten and the blob not copied). Large merges commit
 * in steps; the file is marked merged in the last one. */
int lb_index_add(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n) _warn_unused_;

/* Where a blob copied by prune came from. */
typedef struct LbIndexMove {
        LbId pack;
        uint64_t offset;
} LbIndexMove;
/* Adds packs that prune wrote with copies of blobs, and marks file_id
 * merged, in one transaction, without touching blob entries: from[i][j]
 * is where packs[i].entries[j] was copied from. A blob entry that points
 * into a source pack finds the copy once the source pack is forgotten;
 * remaps that pointed into a source pack are pointed at the copies. */
int lb_index_add_copies(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n,
                        LbIndexMove *const *from) _warn_unused_;
/* Marks an index file as merged without adding its packs: for an index
 * file that lists packs the index already holds (prune's rewrite). */
int lb_index_add_file(LbIndex *x, const LbId *file_id) _warn_unused_;
/* Points every blob of p at its entry in p (a copy that stays, where the
 * indexed one goes); p must be indexed (-ENOENT if not). */
int lb_index_relocate(LbIndex *x, const LbIndexPack *p) _warn_unused_;
/* 1 if the pack is indexed, 0 if not. */
int lb_index_has_pack(LbIndex *x, const LbId *pack_id) _warn_unused_;
/* Removes packs (and the index files that listed them) in one transaction.
 * Their blobs' entries stay: those prune copied resolve to the copies,
 * the others are ignored by every lookup from then on; index rebuild
 * drops them. */
int lb_index_forget(LbIndex *x, const LbId *packs, size_t np, const LbId *files, size_t nf) _warn_unused_;
/* Empties all databases. */
int lb_index_clear(LbIndex *x) _warn_unused_;
/* 1 if the index file has been merged, 0 if not. */
int lb_index_has_file(LbIndex *x, const LbId *file_id) _warn_unused_;
typedef int (*LbIdFn)(const LbId *id, void *userdata);
int lb_index_foreach_file(LbIndex *x, LbIdFn fn, void *userdata) _warn_unused_;
int lb_index_foreach_pack(LbIndex *x, LbPackFn fn, void *userdata) _warn_unused_;
int lb_index_totals(LbIndex *x, uint64_t *ret_blobs, uint64_t *ret_stored) _warn_unused_;
