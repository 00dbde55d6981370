/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * TLV records, the extensible encoding of trees and snapshots:
 *
 *   tag u16 || len u32 || value[len]
 *
 * A tag with bit 15 set (LB_TLV_CRITICAL) must be understood by a reader;
 * a reader that meets an unknown critical tag refuses the object
 * (-EPROTONOSUPPORT). Unknown non-critical tags are skipped, so fields can
 * be added without a format break.
 */

#include "store/util.h"

#define LB_TLV_CRITICAL 0x8000u
#define LB_TLV_HEADER_SIZE 6

int lb_tlv_put(LbBuf *b, uint16_t tag, const void *v, size_t n) _warn_unused_;
int lb_tlv_put_u8(LbBuf *b, uint16_t tag, uint8_t v) _warn_unused_;
int lb_tlv_put_u32(LbBuf *b, uint16_t tag, uint32_t v) _warn_unused_;
int lb_tlv_put_u64(LbBuf *b, uint16_t tag, uint64_t v) _warn_unused_;
int lb_tlv_put_str(LbBuf *b, uint16_t tag, const char *s) _warn_unused_; /* no NUL stored */

/* Reads the next record. Returns 1 and fills the outputs, 0 at the end of
 * input, -EBADMSG when a record runs past the end. *ret_v borrows from the
 * reader's buffer. */
int lb_tlv_next(LbReader *r, uint16_t *ret_tag, const uint8_t **ret_v, uint32_t *ret_n) _warn_unused_;

/* Applies the reader rules to a tag just read by lb_tlv_next: returns 0 to
 * handle the record, 1 to skip it (unknown and not critical),
 * -EPROTONOSUPPORT for an unknown critical tag, -EBADMSG for a second
 * record of a non-repeatable tag. Known tag numbers must be below 32;
 * *seen tracks them (start at 0). */
int lb_tlv_check(uint16_t tag, bool known, bool repeatable, uint32_t *seen) _warn_unused_;

/* Typed value decoders: -EBADMSG when the length is not exactly right. */
int lb_tlv_u8(const uint8_t *v, uint32_t n, uint8_t *ret) _warn_unused_;
int lb_tlv_u32(const uint8_t *v, uint32_t n, uint32_t *ret) _warn_unused_;
int lb_tlv_u64(const uint8_t *v, uint32_t n, uint64_t *ret) _warn_unused_;
/* Copies a string value; refuses embedded NUL bytes and lengths > max. */
int lb_tlv_str(const uint8_t *v, uint32_t n, size_t max, char **ret) _warn_unused_;

/* A metadata pair: the META records of trees, snapshots and events. */
typedef struct LbMeta {
        char *key;
        char *value;
} LbMeta;

/* Frees the pairs and the array; NULL ok. */
void lb_meta_free(LbMeta *m, size_t n);
/* The value of key, or NULL; borrowed from m. */
const char *lb_meta_get(const LbMeta *m, size_t n, const char *key);
/* A META record: value = key_len u16 || key || value. scratch is a buffer
 * the caller reuses between records. -EINVAL for a key over 65535 bytes. */
int lb_tlv_put_meta(LbBuf *b, LbBuf *scratch, uint16_t tag, const LbMeta *m) _warn_unused_;
/* Decodes a META record's value and appends the pair to *m (*n pairs):
 * -EBADMSG when malformed, when key or value is longer than max_len, or
 * when *n is already max_count. */
int lb_tlv_meta_append(const uint8_t *v, uint32_t n, size_t max_len, size_t max_count, LbMeta **m,
                       size_t *count) _warn_unused_;
