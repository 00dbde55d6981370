/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Index files (index/<id>): the TOCs of a set of packs, sealed, so a new
 * machine builds its local LMDB index without reading packs.
 * Format: store/format.h and docs/design.md "Index files".
 */

#include "store/pack.h"

typedef struct LbIndexPack {
        LbId pack_id;
        uint64_t pack_size;
        LbPackEntry *entries;
        size_t n;
} LbIndexPack;

void lb_index_packs_free(LbIndexPack *p, size_t n);  /* NULL ok */
/* Encodes and seals; out is replaced. */
int lb_indexfile_encode(const LbKeys *k, const LbIndexPack *packs, size_t n, LbBuf *out) _warn_unused_;
/* Opens and parses; -EBADMSG on any malformation, entries checked with lb_entry_decode
 * and against their pack size. */
int lb_indexfile_decode(const LbKeys *k, const uint8_t *p, size_t n, LbIndexPack **ret, size_t *ret_n) _warn_unused_;
