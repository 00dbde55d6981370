/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Snapshot metadata: who, when, what, and the root tree. Stored sealed in
 * snapshots/<id>; this module handles only the plaintext (TLV records
 * after the magic "LBSN"). Format: docs/design.md "Snapshots".
 */

#include "store/format.h"
#include "store/tree.h"
#include "store/util.h"

enum {
        LB_SNAP_TAG_TIME = 1 | 0x8000,  /* u64 (i64 ns since epoch, UTC) */
        LB_SNAP_TAG_TZOFF = 2,          /* u32 (i32 seconds east of UTC at backup time) */
        LB_SNAP_TAG_HOST = 3,           /* string */
        LB_SNAP_TAG_USER = 4,           /* string */
        LB_SNAP_TAG_TAG = 5,            /* string, repeatable */
        LB_SNAP_TAG_PATH = 6,           /* string, repeatable */
        LB_SNAP_TAG_TREE = 7 | 0x8000,  /* id[32] root tree */
        LB_SNAP_TAG_SOURCE = 8,         /* string: "files", "stdin", "postgresql" */
        LB_SNAP_TAG_PROGRAM = 9,        /* string: "longbox 0.1.0" */
        LB_SNAP_TAG_PARENT = 10,        /* id[32] */
        LB_SNAP_TAG_STATS = 11,         /* LB_SNAP_STATS_COUNT * u64 */
        LB_SNAP_TAG_META = 16,          /* key_len u16 || key || value */
};

#define LB_SNAP_STRING_MAX 4096
#define LB_SNAP_LIST_MAX 1024

typedef struct LbSnapshotStats {
        uint64_t files;
        uint64_t dirs;
        uint64_t bytes_read;     /* logical bytes of all content */
        uint64_t bytes_new;      /* raw bytes of chunks new in this snapshot */
        uint64_t bytes_stored;   /* stored (compressed, encrypted, padded) bytes added */
        uint64_t chunks;         /* data chunks referenced */
        uint64_t chunks_new;
        uint64_t duration_ns;
        uint64_t errors;         /* inputs that could not be read */
} LbSnapshotStats;
#define LB_SNAP_STATS_COUNT 9

/* Files and directories of a new snapshot, compared with its parent. */
typedef struct LbChangeCounts {
        uint64_t files_new, files_changed, files_unmodified;
        uint64_t dirs_new, dirs_changed, dirs_unmodified;
} LbChangeCounts;

typedef struct LbSnapshot {
        LbId id;                 /* name of the snapshot file; not serialized */
        int64_t time_ns;
        int32_t tz_offset;
        char *hostname;
        char *username;
        char **tags;
        size_t n_tags;
        char **paths;
        size_t n_paths;
        LbId tree;
        char *source;
        char *program;
        bool has_parent;
        LbId parent;
        LbSnapshotStats stats;
        LbMeta *meta;
        size_t n_meta;
} LbSnapshot;

void lb_snapshot_free(LbSnapshot *s);  /* NULL ok */
int lb_snapshot_encode(const LbSnapshot *s, LbBuf *out) _warn_unused_;
int lb_snapshot_decode(const uint8_t *p, size_t n, LbSnapshot **ret) _warn_unused_;
/* Returns the value of meta key, or NULL (borrowed from s). */
const char *lb_snapshot_meta(const LbSnapshot *s, const char *key);
