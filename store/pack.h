/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Packs: blobs (sealed chunks, trees, chunk lists) in a random order,
 * followed by a sealed table of contents and a 16-byte footer, so a pack
 * describes itself and the index can be rebuilt from packs alone.
 * Format: store/format.h and docs/design.md "Packs".
 *
 * Also the blob codec: compress (zstd, or raw when that does not help),
 * pad (Padmé) and seal a chunk; and the reverse, which verifies the chunk
 * id after decrypting so a reader can never return wrong bytes.
 */

#include "store/crypto.h"
#include "store/format.h"
#include "store/util.h"

/* One entry of a pack's table of contents (and of index files). */
typedef struct LbPackEntry {
        LbId id;
        uint64_t offset;        /* of the sealed blob within the pack */
        uint32_t stored_len;    /* sealed length: nonce + padded payload + tag */
        uint32_t payload_len;   /* compressed (or raw) length before padding */
        uint32_t raw_len;       /* length of the chunk itself */
        uint8_t type;           /* LB_BLOB_* */
        uint8_t codec;          /* LB_CODEC_* */
        LbId base;              /* LB_CODEC_DELTA: the base chunk's id; zero otherwise */
} LbPackEntry;

/* Bytes of e's TOC / index file record: LB_ENTRY_SIZE, or
 * LB_RECORD_MAX_SIZE for a delta (the entry, then its base id). */
size_t lb_entry_record_size(const LbPackEntry *e);
/* Writes e's record (lb_entry_record_size(e) bytes). */
void lb_entry_encode(const LbPackEntry *e, uint8_t *out);
/* Decodes the fixed 56-byte part of a record; for a delta the base id
 * (the next 32 bytes) is the caller's to read (lb_record_read does both).
 * Checks type, codec, length relations and limits: -EBADMSG if invalid. */
int lb_entry_decode(const uint8_t in[LB_ENTRY_SIZE], LbPackEntry *ret) _warn_unused_;
/* Reads one whole record from rd. */
int lb_record_read(LbReader *rd, LbPackEntry *ret) _warn_unused_;

/* Encodes a blob: fills e (all but offset) and appends the sealed bytes to out.
 * zstd_level <= 0 stores raw. raw_len must be <= LB_BLOB_RAW_MAX. */
int lb_blob_encode(const LbKeys *k, uint8_t type, const LbId *id, const void *raw, size_t raw_len,
                   int zstd_level, LbBuf *out, LbPackEntry *e) _warn_unused_;
/* The same for a data chunk that may be stored as a delta against base
 * (base_len bytes, the plaintext of chunk base_id, a chunk stored whole):
 * the delta is kept when its payload is at most half the whole chunk's
 * (docs/design.md "Deltas"); e->codec says which was stored. */
int lb_blob_encode_base(const LbKeys *k, const LbId *id, const void *raw, size_t raw_len, const LbId *base_id,
                        const void *base, size_t base_len, int zstd_level, LbBuf *out, LbPackEntry *e) _warn_unused_;
/* Decodes a sealed blob described by e into out (replacing its contents);
 * verifies the AEAD tag, decompressed length and keyed id: -EBADMSG on any
 * mismatch. A delta (codec LB_CODEC_DELTA) needs lb_blob_decode_base:
 * -EINVAL here. */
int lb_blob_decode(const LbKeys *k, const LbPackEntry *e, const uint8_t *stored, size_t stored_len,
                   LbBuf *out) _warn_unused_;
/* The same for a delta, given its base's verified plaintext (base_len
 * bytes); for other codecs base is ignored. */
int lb_blob_decode_base(const LbKeys *k, const LbPackEntry *e, const uint8_t *stored, size_t stored_len,
                        const void *base, size_t base_len, LbBuf *out) _warn_unused_;

/* Checks that stored is the sealed blob e describes (its AEAD tag over the
 * id, type, codec and lengths), without decrypting or decompressing it:
 * what moving the sealed bytes unchanged needs. -EBADMSG if not. */
int lb_blob_verify(const LbKeys *k, const LbPackEntry *e, const uint8_t *stored, size_t stored_len) _warn_unused_;

/* Builds one pack in memory. Not thread-safe; callers serialize. */
typedef struct LbPackWriter LbPackWriter;
int lb_pack_writer_new(const LbKeys *k, LbPackWriter **ret) _warn_unused_;
LbPackWriter *lb_pack_writer_free(LbPackWriter *w);  /* NULL ok; returns NULL */
/* Adds a sealed blob (as produced by lb_blob_encode); copies the bytes. */
int lb_pack_writer_add(LbPackWriter *w, const LbPackEntry *e, const void *stored, size_t stored_len) _warn_unused_;
size_t lb_pack_writer_count(const LbPackWriter *w);
uint64_t lb_pack_writer_size(const LbPackWriter *w);  /* bytes of blobs so far */
/* Shuffles blobs, appends the sealed TOC and the footer. *ret_bytes gets the
 * whole pack, *ret_entries its entries with final offsets (caller frees). */
int lb_pack_writer_finish(LbPackWriter *w, LbBuf *ret_bytes, LbPackEntry **ret_entries, size_t *ret_n) _warn_unused_;
/* The same; *ret_order[i] is the position (0 = first added) at which
 * entry i was added (caller frees). */
int lb_pack_writer_finish_ordered(LbPackWriter *w, LbBuf *ret_bytes, LbPackEntry **ret_entries, size_t *ret_n,
                                  uint32_t **ret_order) _warn_unused_;
/* The same without copying the blobs: the pack is the concatenation of
 * *ret_iov (*ret_n_iov pieces, *ret_size bytes), borrowed from the writer
 * and valid until lb_pack_writer_reset(), which empties the writer; no
 * blob may be added before it. */
struct iovec;
int lb_pack_writer_finish_iov(LbPackWriter *w, const struct iovec **ret_iov, size_t *ret_n_iov, uint64_t *ret_size,
                              LbPackEntry **ret_entries, size_t *ret_n, uint32_t **ret_order) _warn_unused_;
void lb_pack_writer_reset(LbPackWriter *w);

/* Parses the footer (the last LB_PACK_FOOTER_SIZE bytes of a pack of
 * pack_size bytes): the sealed TOC is at [pack_size - 16 - toc_len, pack_size - 16). */
int lb_pack_parse_footer(const uint8_t footer[LB_PACK_FOOTER_SIZE], uint64_t pack_size, uint32_t *ret_toc_len) _warn_unused_;
/* Opens and parses a sealed TOC; checks every entry lies inside the blob
 * area [0, blobs_end) without overlap. */
int lb_pack_parse_toc(const LbKeys *k, const uint8_t *sealed, size_t n, uint64_t blobs_end,
                      LbPackEntry **ret, size_t *ret_n) _warn_unused_;
/* Convenience over a whole pack in memory: footer + TOC. */
int lb_pack_parse(const LbKeys *k, const uint8_t *pack, size_t pack_size, LbPackEntry **ret, size_t *ret_n) _warn_unused_;
