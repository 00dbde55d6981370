/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Prune's mark set: blob id -> u32, an open-addressing hash table in a
 * memory-mapped temporary file. Ids are keyed or content hashes, so their
 * first bytes index the table directly. The file is unlinked from the start
 * (O_TMPFILE): a killed prune leaves nothing behind, and its pages are
 * file-backed, so the kernel can write them out under memory pressure
 * instead of the set growing the heap. One thread only.
 */

#include "store/format.h"
#include "store/util.h"

typedef struct LbMarkSet LbMarkSet;

/* An empty set sized for expected ids (it grows past that, by doubling)
 * in a temporary file in dir. */
int lb_markset_open(const char *dir, uint64_t expected, LbMarkSet **ret) _warn_unused_;
LbMarkSet *lb_markset_free(LbMarkSet *m);   /* NULL ok */
/* 0 and *ret_value (may be NULL), or -ENOENT. */
int lb_markset_get(LbMarkSet *m, const LbId *id, uint32_t *ret_value) _warn_unused_;
/* Sets id's value (non-zero: 0 marks empty slots); -EINVAL for 0. */
int lb_markset_put(LbMarkSet *m, const LbId *id, uint32_t value) _warn_unused_;
typedef int (*LbMarkFn)(const LbId *id, uint32_t value, void *userdata);
/* In no particular order; fn must not modify the set. */
int lb_markset_foreach(LbMarkSet *m, LbMarkFn fn, void *userdata) _warn_unused_;
