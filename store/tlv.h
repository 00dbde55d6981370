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
