/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Building a snapshot from streams: producers (for example one thread per
 * PostgreSQL COPY connection) each open a file at an absolute path inside
 * the snapshot, write its bytes and close it; the builder chunks, hashes,
 * deduplicates and stores them on the calling thread, so N producers use
 * N cores. Commit writes the trees bottom-up and then the snapshot, after
 * every pack and index file is durable (docs/design.md "Write order").
 *
 * lb_builder_add_node, lb_builder_file_open and lb_builder_file_close are
 * thread-safe; one LbBuilderFile is used by one thread at a time.
 */

#include "store/repo.h"

typedef struct LbBuilder LbBuilder;
typedef struct LbBuilderFile LbBuilderFile;

int lb_builder_new(LbRepo *r, LbBuilder **ret) _warn_unused_;
/* Frees an uncommitted builder; what it stored stays as unreferenced data. NULL ok. */
LbBuilder *lb_builder_free(LbBuilder *b);

/* Adds a non-file node (directory metadata, symlink, ...) at an absolute
 * path; n is deep-copied, its name replaced by the path's last component.
 * Missing parent directories are created with mode 0755. A directory that
 * already exists (created implicitly) takes n's metadata. -EEXIST if a
 * non-directory already exists there. */
int lb_builder_add_node(LbBuilder *b, const char *path, const LbNode *n) _warn_unused_;

/* Opens a regular file at an absolute path. tmpl gives mode, owner and
 * mtime (may be NULL: 0600, the current user, now). */
int lb_builder_file_open(LbBuilder *b, const char *path, const LbNode *tmpl, LbBuilderFile **ret) _warn_unused_;
/* Names prev, the same file in an earlier snapshot (a regular file node,
 * borrowed for the call): a new chunk is then stored, where it pays, as a
 * delta against the chunk at the same place in prev (docs/design.md
 * "Deltas"). Call before the first write. An unreadable prev only costs
 * the deltas (-ENOMEM is the only error). */
int lb_builder_file_set_prev(LbBuilderFile *f, const LbNode *prev) _warn_unused_;
int lb_builder_file_write(LbBuilderFile *f, const void *p, size_t n) _warn_unused_;
/* Finishes the file: its XXH3-64 checksum and size are recorded in its
 * node, with meta (deep-copied) as extra metadata. The file is freed
 * whatever the result. */
int lb_builder_file_close(LbBuilderFile *f, const LbMeta *meta, size_t n_meta) _warn_unused_;
/* Drops an unfinished file. NULL ok. */
void lb_builder_file_abort(LbBuilderFile *f);
/* XXH3-64 of the bytes written so far, and their count. */
uint64_t lb_builder_file_xxh3(LbBuilderFile *f);
uint64_t lb_builder_file_size(LbBuilderFile *f);

/* Stores the trees and the snapshot. s supplies hostname, username, tags,
 * paths, source, meta, time_ns (0: now), tz_offset and parent; tree,
 * program and stats are filled in here. The builder is consumed (freed)
 * either way.
 *
 * With a parent (s->has_parent), every file whose content is unchanged
 * keeps the parent's mtime, and so does every implicitly created
 * directory whose tree is unchanged: a file's time then says when its
 * content last changed, and unchanged directories cost nothing. Files and
 * directories are counted in *ret_changes (may be NULL). */
int lb_builder_commit(LbBuilder *b, const LbSnapshot *s, LbId *ret_id, LbSnapshotStats *ret_stats,
                      LbChangeCounts *ret_changes) _warn_unused_;
