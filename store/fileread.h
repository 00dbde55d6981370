/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Random-access reads of a file in a snapshot: read(offset, length)
 * without streaming the file from its start.
 *
 * The tree entry records each chunk's (inline) or chunk list's (indirect)
 * size, so their cumulative offsets are prefix sums computed when the
 * reader opens; a chunk list's entries likewise, when the list is first
 * needed. A read finds its first chunk by binary search over those
 * offsets, then copies from the chunks it covers, fetched through a
 * shared LbChunkCache. No format change is involved (docs/design.md
 * "Content of a file").
 *
 * Every byte handed out comes from a blob lb_repo_read_blob verified
 * against its id, and whose length matches the length the tree (or the
 * chunk list) recorded: a damaged or missing blob fails the read
 * (-EBADMSG, -ENOENT) with nothing of it copied, and *failure names the
 * blob. A chunk list that does not cover exactly the bytes its reference
 * says is damaged too.
 */

#include "store/chunkcache.h"
#include "store/walk.h"

typedef struct LbFileReader LbFileReader;

/* Opens file (a regular file node; deep-copied, so file may go away) for
 * reads through cache, which must outlive the reader. -EINVAL for a node
 * that is not a regular file, -EBADMSG when its content sizes do not add
 * up to its size. */
int lb_file_reader_new(LbChunkCache *cache, const LbNode *file, LbFileReader **ret) _warn_unused_;
LbFileReader *lb_file_reader_free(LbFileReader *f);   /* NULL ok */

/* The node the reader was opened with; borrowed from f. */
const LbNode *lb_file_reader_node(const LbFileReader *f);

/* Read-ahead: when reads move forward through the file, the chunks of the
 * next bytes are queued for the cache's workers. 0 (the default) turns
 * it off. */
void lb_file_reader_set_readahead(LbFileReader *f, uint64_t bytes);

/* Copies up to len bytes at off into buf; *ret_n gets the number copied,
 * fewer than len only at the end of the file (0 at or past it). On an
 * error nothing is promised about buf, and *failure (may be NULL) names
 * the blob when one was to blame. Thread-safe: any number of threads may
 * read through one reader at once. */
int lb_file_reader_read(LbFileReader *f, uint64_t off, void *buf, size_t len, size_t *ret_n,
                        LbContentFailure *failure) _warn_unused_;
