/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The file system `longbox mount` serves (FUSE high-level API, read-only):
 *
 *   /snapshots/<time>_<shortid>/...   each snapshot's own tree; for a
 *                                     PostgreSQL snapshot, its database
 *                                     directory also holds restore.sql
 *   /latest                           -> snapshots/<newest>
 *   /tags/<tag>/<time>_<shortid>      -> ../../snapshots/<...>, and latest
 *   /hosts/<host>/<time>_<shortid>    -> ../../snapshots/<...>, and latest
 *   /tables/<db>/<schema>.<table>/<time>_<shortid>
 *                                     one table's COPY data per snapshot
 *
 * <time> is the snapshot's start in UTC, YYYY-MM-DDTHH:MM:SSZ.
 */

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include "store/chunkcache.h"
#include "store/repo.h"

typedef struct LbFs LbFs;

typedef struct LbFsOptions {
        uint64_t cache_bytes;        /* chunk cache size */
        uint64_t readahead_bytes;    /* per file, for forward reads */
        unsigned workers;            /* read-ahead threads */
        int64_t refresh_ns;          /* how long a snapshot list is reused */
        /* Where messages go (damaged chunks): called from any thread. */
        void (*log)(const char *message);
} LbFsOptions;

/* r must outlive fs. */
int lb_fs_new(LbRepo *r, const LbFsOptions *o, LbFs **ret) _warn_unused_;
LbFs *lb_fs_free(LbFs *fs);
/* Loads the snapshot list now (so an unreadable repository fails before mounting). */
int lb_fs_refresh(LbFs *fs) _warn_unused_;
const struct fuse_operations *lb_fs_operations(void);
