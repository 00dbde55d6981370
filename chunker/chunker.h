/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * FastCDC content-defined chunking with normalized chunking (level 2),
 * after Xia et al., "FastCDC", USENIX ATC 2016 and its 2020 TPDS extension.
 * Pure: no I/O, no allocation after lb_chunker_new, no global state.
 *
 * The gear table is supplied by the caller (derived from the repository
 * secret by store/crypto.c), so boundaries do not reveal content to anyone
 * without the key.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct LbChunkerParams {
        uint32_t min;   /* no cut before min bytes */
        uint32_t avg;   /* power of two; the normalization point */
        uint32_t max;   /* always cut at max bytes */
} LbChunkerParams;

/* Defaults chosen by bench/ (see docs/design.md "Chunking"). */
#define LB_CHUNKER_DEFAULT_MIN (2u << 10)
#define LB_CHUNKER_DEFAULT_AVG (8u << 10)
#define LB_CHUNKER_DEFAULT_MAX (32u << 10)

typedef struct LbChunker {
        LbChunkerParams p;
        uint64_t mask_s;   /* stricter mask, before avg */
        uint64_t mask_l;   /* looser mask, after avg */
        uint64_t gear[256];
        uint64_t gear_ls[256];  /* gear[b] << 1: two bytes a step, same hash */
} LbChunker;

/* Validates params: 64 <= min < avg < max <= 16 MiB, avg a power of two.
 * -EINVAL otherwise. */
int lb_chunker_params_check(const LbChunkerParams *p);
int lb_chunker_init(LbChunker *c, const LbChunkerParams *p, const uint64_t gear[256]);

/* Length of the chunk that starts at p, given n available bytes.
 * If n < max and eof is false, may return 0: more input is needed to decide.
 * With eof true returns n when n <= min, else a cut in (0, n].
 * Always returns <= max. */
size_t lb_chunker_cut(const LbChunker *c, const uint8_t *p, size_t n, int eof);
