/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Prune's mark set: blob id -> u32, an open-addressing hash table in a
 * memory-mapped temporary file. Ids are keyed or content hashes, so their
 * first bytes index the table directly. The file is unlinked from the start
 * (O_TMPFILE): a killed prune leaves nothing behind, and its pages are
 * file-backed, so the kernel can write them out under memory pressure
 * instead of the set growing the heap. Writes from one thread only; reads
 * may run in several threads while no one writes.
 *
 * A slot is 32 bytes, half a cache line: the first LB_MARKSET_KEY_SIZE (28)
 * bytes of the id and the value. Two ids that agree in those 224 bits are
 * one entry; for keyed BLAKE2b ids the chance that any two of 2^32 blobs do
 * is below 2^-160.
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
/* Starts loading id's slot into the cache: a lookup soon after is faster. */
void lb_markset_prefetch(const LbMarkSet *m, const LbId *id);
#define LB_MARKSET_KEY_SIZE 28
/* fn gets the first LB_MARKSET_KEY_SIZE bytes of each id. */
typedef int (*LbMarkFn)(const uint8_t *id_prefix, uint32_t value, void *userdata);
/* In no particular order; fn must not modify the set. */
int lb_markset_foreach(LbMarkSet *m, LbMarkFn fn, void *userdata) _warn_unused_;
