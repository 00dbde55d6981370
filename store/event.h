/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Events: the sealed record of one unattended command's result
 * (events/<id>), read by `longbox status`. Format, writers and retention:
 * docs/design.md "Events". This module encodes and decodes the plaintext
 * (TLV records after the magic "LBEV") and stores, lists and trims events
 * through a backend and the repository keys. It never prints.
 */

#include "store/backend.h"
#include "store/crypto.h"
#include "store/format.h"
#include "store/tree.h"
#include "store/util.h"

enum {
        LB_EVENT_TAG_TIME = 1 | 0x8000,    /* u64 (i64 ns since epoch, UTC): start */
        LB_EVENT_TAG_KIND = 2 | 0x8000,    /* string: "backup", "sync", ... */
        LB_EVENT_TAG_STATUS = 3 | 0x8000,  /* u8: LbEventStatus */
        LB_EVENT_TAG_EXIT = 4,             /* u32: exit code */
        LB_EVENT_TAG_DURATION = 5,         /* u64: ns */
        LB_EVENT_TAG_HOST = 6,             /* string */
        LB_EVENT_TAG_MESSAGE = 7,          /* string */
        LB_EVENT_TAG_SNAPSHOT = 8,         /* id[32] */
        LB_EVENT_TAG_PROGRAM = 9,          /* string */
        LB_EVENT_TAG_META = 16,            /* key_len u16 || key || value, repeatable */
};

#define LB_EVENT_MAGIC "LBEV"
#define LB_EVENT_AD "LBEVENT1"
#define LB_EVENT_MAX_SIZE (64u << 10)
#define LB_EVENT_STRING_MAX 4096
#define LB_EVENT_KIND_MAX 32
#define LB_EVENT_META_MAX 64
/* Events kept per kind; older ones are removed by lb_event_trim. */
#define LB_EVENT_KEEP 50
/* At most this many event files are read by lb_event_list. */
#define LB_EVENT_LIST_MAX 4096

typedef enum LbEventStatus {
        LB_EVENT_SUCCESS = 0,
        LB_EVENT_WARNING = 1,
        LB_EVENT_FAILURE = 2,
} LbEventStatus;

typedef struct LbEvent {
        LbId id;                 /* name of the event file; not serialized */
        int64_t time_ns;
        char *kind;
        LbEventStatus status;
        uint32_t exit_code;
        uint64_t duration_ns;
        char *hostname;          /* may be NULL */
        char *message;           /* may be NULL */
        bool has_snapshot;
        LbId snapshot;
        char *program;           /* may be NULL */
        LbMeta *meta;
        size_t n_meta;
} LbEvent;

void lb_event_free(LbEvent *e);   /* NULL ok */
/* -EINVAL when e breaks a rule of the format (kind alphabet, lengths...). */
int lb_event_encode(const LbEvent *e, LbBuf *out) _warn_unused_;
/* -EBADMSG when malformed, -EPROTONOSUPPORT for an unknown critical record. */
int lb_event_decode(const uint8_t *p, size_t n, LbEvent **ret) _warn_unused_;
/* The value of meta key, or NULL (borrowed from e). */
const char *lb_event_meta(const LbEvent *e, const char *key);
/* Appends a meta key/value (both copied). */
int lb_event_meta_add(LbEvent *e, const char *key, const char *value) _warn_unused_;
/* true when kind is 1..32 bytes of a-z and '-'. */
bool lb_event_kind_ok(const char *kind);
const char *lb_event_status_name(LbEventStatus s);   /* "success", "warning", "failure" */

/* Seals and stores e under events/<id>; *ret_id (may be NULL) gets the id. */
int lb_event_save(LbBackend *be, const LbKeys *k, const LbEvent *e, LbId *ret_id) _warn_unused_;
/* Every readable event, sorted by time (oldest first; equal times by id).
 * Unreadable or damaged event files are skipped (counted in *ret_bad,
 * which may be NULL). */
int lb_event_list(LbBackend *be, const LbKeys *k, LbEvent ***ret, size_t *ret_n, size_t *ret_bad) _warn_unused_;
void lb_events_free(LbEvent **e, size_t n);
/* Removes all but the newest keep events of each kind; *ret_removed
 * (may be NULL) gets the count. */
int lb_event_trim(LbBackend *be, const LbKeys *k, unsigned keep, unsigned *ret_removed) _warn_unused_;
/* The newest event of kind in a sorted list (status any, or only
 * successes when success_only), or NULL. Borrowed from the list. */
const LbEvent *lb_event_newest(LbEvent *const *e, size_t n, const char *kind, bool success_only);
