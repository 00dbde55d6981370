/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Repository check: config and key slots parse, every snapshot loads,
 * every blob referenced by a snapshot is indexed and its pack exists with
 * the indexed size, index files agree with the local index; with
 * read_data, every pack is read whole, its name verified against its
 * hash, its TOC parsed and every blob decoded and verified.
 * Damage is reported with the pack and the snapshots that need it.
 */

#include "store/repo.h"

typedef struct LbCheckProgress {
        uint64_t packs_done, packs_total;
        uint64_t bytes_done, bytes_total;
        const char *pack;
} LbCheckProgress;

typedef struct LbCheckOptions {
        bool read_data;
        /* One line per problem, e.g. "pack 3fa2... is damaged (blob 77c1...
         * fails authentication); needed by snapshots 1a2b3c4d, 5e6f7a8b". */
        void (*report)(void *userdata, const char *message);
        /* Progress/info lines (may be NULL). */
        void (*info)(void *userdata, const char *message);
        /* With read_data, progress of reading the packs (may be NULL):
         * called after each pack (pack is its hex name, borrowed). */
        void (*progress)(void *userdata, const LbCheckProgress *p);
        void *userdata;
} LbCheckOptions;

typedef struct LbCheckResult {
        uint64_t snapshots;
        uint64_t trees;
        uint64_t blobs_referenced;
        uint64_t packs;
        uint64_t packs_read;
        uint64_t errors;              /* > 0: the repository is damaged (exit 13) */
        uint64_t unreferenced_packs;  /* harmless leftovers (e.g. after a crash) */
} LbCheckResult;

/* Returns 0 when the check ran (look at ret->errors), -errno when it could not run. */
int lb_check_run(LbRepo *r, const LbCheckOptions *o, LbCheckResult *ret) _warn_unused_;
