/* SPDX-License-Identifier: MIT */
#pragma once

/* An in-memory set of ids (open addressing, linear probing). Ids are keyed
 * hashes, so their first bytes are already uniformly distributed. Not
 * thread-safe. */

#include "store/format.h"
#include "store/util.h"

typedef struct LbIdSet {
        LbId *slots;
        uint8_t *used;
        size_t cap;     /* power of two */
        size_t n;
} LbIdSet;

/* 1 if added, 0 if already present. */
int lb_idset_add(LbIdSet *s, const LbId *id) _warn_unused_;
bool lb_idset_contains(const LbIdSet *s, const LbId *id);
void lb_idset_free(LbIdSet *s);
