/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The local index: an LMDB environment mapping blob id -> (pack, entry),
 * the packs it knows, and the repository index files merged into it.
 * Derived from the repository and rebuildable at any time; never the only
 * copy of anything. The only place that calls LMDB: its error convention
 * (positive errno, negative MDB_*) is translated here.
 *
 * Databases in the environment:
 *   "blobs": id[32] -> pack_id[32] || offset u64 || stored_len u32 ||
 *            payload_len u32 || raw_len u32 || type u8 || codec u8
 *   "packs": pack_id[32] -> size u64 || blob count u32
 *   "files": index file id[32] -> (empty)
 */

#include "store/indexfile.h"
#include "store/repo.h"

int lb_index_open(const char *dir, LbIndex **ret) _warn_unused_;
LbIndex *lb_index_free(LbIndex *x);

/* Thread-safe. -ENOENT if unknown. */
int lb_index_lookup(LbIndex *x, const LbId *id, LbBlobLoc *ret) _warn_unused_;
/* Adds packs (and marks file_id, if not NULL, as merged) in one transaction.
 * A blob already indexed keeps its location, unless its pack has been
 * forgotten; with relocate, every blob of packs points to its new place
 * (prune copied it). */
int lb_index_add(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n) _warn_unused_;
int lb_index_add_full(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n, bool relocate) _warn_unused_;
/* Marks an index file as merged without adding its packs: for an index
 * file that lists packs the index already holds (prune's rewrite). */
int lb_index_add_file(LbIndex *x, const LbId *file_id) _warn_unused_;
/* Points every blob of p at its entry in p (a copy that stays, where the
 * indexed one goes); the packs database is not touched. */
int lb_index_relocate(LbIndex *x, const LbIndexPack *p) _warn_unused_;
/* 1 if the pack is indexed, 0 if not. */
int lb_index_has_pack(LbIndex *x, const LbId *pack_id) _warn_unused_;
/* Removes packs (and the index files that listed them) in one transaction.
 * Their blobs' entries stay but are ignored by every lookup from then on
 * (a blob is present only while its pack is); index rebuild drops them. */
int lb_index_forget(LbIndex *x, const LbId *packs, size_t np, const LbId *files, size_t nf) _warn_unused_;
/* Empties all databases. */
int lb_index_clear(LbIndex *x) _warn_unused_;
/* 1 if the index file has been merged, 0 if not. */
int lb_index_has_file(LbIndex *x, const LbId *file_id) _warn_unused_;
typedef int (*LbIdFn)(const LbId *id, void *userdata);
int lb_index_foreach_file(LbIndex *x, LbIdFn fn, void *userdata) _warn_unused_;
int lb_index_foreach_pack(LbIndex *x, LbPackFn fn, void *userdata) _warn_unused_;
int lb_index_totals(LbIndex *x, uint64_t *ret_blobs, uint64_t *ret_stored) _warn_unused_;

