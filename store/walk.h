/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Reading snapshots back: resolve a path inside a snapshot, walk a tree
 * depth-first, and stream a file's content chunk by chunk.
 *
 * Every byte handed to a caller comes from a blob that lb_repo_read_blob
 * has decrypted and verified against its id, and whose length matches the
 * length the tree recorded: a damaged chunk is reported (-EBADMSG) before
 * any of its bytes are passed on, so a reader never writes wrong data.
 */

#include "store/repo.h"

/* Deepest directory nesting a walk follows (-ELOOP beyond). Trees are
 * authenticated, but a limit keeps recursion bounded whatever they say. */
#define LB_WALK_DEPTH_MAX 1024

/* "/a//b/" -> "/a/b"; a relative path is taken from the snapshot root.
 * NULL on ENOMEM. */
char *lb_snapshot_path_normalize(const char *p);

/* Deep copy of a node into *ret (which the caller clears with lb_node_clear). */
int lb_node_copy(const LbNode *src, LbNode *ret) _warn_unused_;

/* Resolves an absolute path inside the snapshot ("/" is the root, empty
 * components and "." are skipped) and deep-copies its node into *ret.
 * The root is a synthesized directory node named "/" with mode 0755, the
 * snapshot's time as mtime and the snapshot's tree as subtree.
 * -ENOENT if a component does not exist, -ENOTDIR if a non-final
 * component is not a directory, -EINVAL for a relative path. */
int lb_snapshot_lookup_path(LbRepo *r, const LbSnapshot *s, const char *path, LbNode *ret) _warn_unused_;

/* Called for every entry of a walk. path is prefix + "/" + name (borrowed,
 * valid during the call); node is borrowed from the loaded tree.
 * Return < 0 to stop the walk (the value is returned by lb_walk),
 * LB_WALK_SKIP to not descend into this directory, 0 to go on. */
#define LB_WALK_SKIP 1
typedef int (*LbWalkFn)(const char *path, const LbNode *node, void *userdata);

/* Depth-first, pre-order, in name order over tree and its subtrees.
 * prefix is "" for the root of a snapshot. */
int lb_walk(LbRepo *r, const LbId *tree, const char *prefix, LbWalkFn fn, void *userdata) _warn_unused_;

/* Called with each verified chunk of a file in order; p is borrowed for
 * the call. offset is the chunk's position in the file. A negative return
 * stops the stream and is returned. */
typedef int (*LbContentFn)(const uint8_t *p, size_t n, uint64_t offset, void *userdata);

/* Which blob a content stream failed on, when it failed on one. */
typedef struct LbContentFailure {
        bool has_id;
        LbId id;                 /* the data chunk or chunk-list blob */
        bool is_list;            /* id is a chunk-list blob */
        uint64_t offset;         /* file offset where it was needed */
} LbContentFailure;

/* Streams a file's content. Inline content (node->indirect false): each
 * ref is a data chunk; indirect: each ref is a chunk-list blob whose
 * entries are data chunks. -EBADMSG when a chunk is damaged, a decoded
 * length differs from the recorded one or the total differs from
 * file->size; -ENOENT when a referenced blob is not in the index;
 * -EINVAL when file is not a regular file. */
int lb_content_foreach(LbRepo *r, const LbNode *file, LbContentFn fn, void *userdata) _warn_unused_;
/* Same; on failure, when a blob was to blame, *failure (may be NULL) says
 * which. *failure is written only on failure, has_id false otherwise. */
int lb_content_foreach_full(LbRepo *r, const LbNode *file, LbContentFn fn, void *userdata,
                            LbContentFailure *failure) _warn_unused_;
/* Same, every chunk read and verified in the calling thread: for callers
 * that run several streams at once from a local repository, whose
 * streams keep the CPUs busy already (read-ahead threads would only add
 * hand-offs between threads). */
int lb_content_foreach_serial(LbRepo *r, const LbNode *file, LbContentFn fn, void *userdata,
                              LbContentFailure *failure) _warn_unused_;

/* Writes a file's content to fd at its current position. With sparse,
 * chunks that are all zero bytes are skipped with lseek and fd is
 * ftruncate'd to file->size at the end (fd must be a fresh regular file). */
int lb_content_write_fd(LbRepo *r, const LbNode *file, int fd, bool sparse) _warn_unused_;
int lb_content_write_fd_full(LbRepo *r, const LbNode *file, int fd, bool sparse,
                             LbContentFailure *failure) _warn_unused_;

/* True when the n bytes at p are all zero. */
bool lb_is_zero(const void *p, size_t n);
