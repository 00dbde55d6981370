/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Retention policy: which snapshots `longbox forget` keeps. Pure: no I/O,
 * no clock (the caller passes "now"), no printing.
 *
 * The rules are restic's (doc/060_forget.rst, restic 0.17), applied to one
 * group of snapshots at a time:
 *
 *   - The group is sorted newest first (time descending; equal times by id
 *     descending, the exact reverse of lb_repo_snapshot_list's order).
 *   - keep-last N keeps the N newest snapshots.
 *   - keep-hourly/daily/weekly/monthly/yearly N: walking newest to oldest,
 *     a snapshot whose bucket differs from that of the last snapshot the
 *     rule kept is kept, until the rule has kept N. So each rule keeps the
 *     newest snapshot of each of the last N buckets that contain one.
 *     Buckets are calendar hours, days, ISO 8601 weeks (ISO year + week,
 *     Monday to Sunday), months and years of the snapshot's OWN local time
 *     (time_ns + tz_offset), never of the machine running forget.
 *   - If such a rule still has count left when it reaches the oldest
 *     snapshot of the group, that snapshot is kept too, even when its bucket
 *     already has a kept snapshot (restic's "oldest monthly snapshot"): a
 *     rule that cannot be filled keeps as much history as there is.
 *   - keep-within D keeps every snapshot strictly newer than L - D, where L
 *     is the time of the newest snapshot that is not in the future
 *     (time < now) and L - D is calendar arithmetic in L's own local time:
 *     years, months and days are subtracted from the wall-clock date with
 *     Go's time.AddDate normalisation (March 31 minus 1 month is "February
 *     31", that is March 3, or March 2 in a leap year), then hours as
 *     exact hours. Snapshots in the future are therefore always kept by it.
 *   - keep-tag LIST keeps every snapshot that has all the comma-separated
 *     tags of LIST; the empty LIST "" matches snapshots without any tag.
 *   - The rules are ORed; a snapshot kept by several rules records them all.
 *
 * An empty policy (every count 0, no duration, no tag) would remove
 * everything: lb_policy_apply refuses it with -EINVAL.
 */

#include "store/snapshot.h"
#include "store/util.h"

/* A calendar duration, as restic writes it: "1y2m", "90d", "36h", and weeks
 * ("2w" = 14 days). Fields are never negative. */
typedef struct LbDuration {
        uint32_t years;
        uint32_t months;
        uint32_t days;
        uint32_t hours;
} LbDuration;

/* Largest value of one duration field; larger ones are -ERANGE. */
#define LB_DURATION_FIELD_MAX 100000u
/* "1y2m3d4h" with every field at its maximum, and the NUL. */
#define LB_DURATION_STRING_MAX 32

/* Parses a sequence of NUMBER UNIT pairs, units y (years), m (months),
 * w (weeks), d (days), h (hours), each at most once, in any order; no
 * sign, no spaces. -EINVAL when malformed, -ERANGE when a field is over
 * LB_DURATION_FIELD_MAX. "0d" is valid and zero. */
int lb_duration_parse(const char *s, LbDuration *ret) _warn_unused_;
bool lb_duration_is_zero(const LbDuration *d);
/* "1y2m14d" (weeks folded into days); "0d" for zero. */
void lb_duration_format(const LbDuration *d, char out[LB_DURATION_STRING_MAX]);

/* A count rule with this value keeps every bucket ("unlimited"). */
#define LB_POLICY_UNLIMITED UINT32_MAX
/* At most this many keep-tag lists (so a decision can record which matched). */
#define LB_POLICY_KEEP_TAGS_MAX 64

typedef struct LbPolicy {
        unsigned last;           /* 0: rule off; LB_POLICY_UNLIMITED: all */
        unsigned hourly;
        unsigned daily;
        unsigned weekly;
        unsigned monthly;
        unsigned yearly;
        LbDuration within;       /* all zero: rule off */
        char **keep_tags;        /* borrowed; each a comma-separated tag list, "" = untagged */
        size_t n_keep_tags;      /* at most LB_POLICY_KEEP_TAGS_MAX */
} LbPolicy;

/* True when the policy has no rule at all (applying it is refused). */
bool lb_policy_is_empty(const LbPolicy *p);

/* The rules, as bits of LbPolicyDecision.rules. */
enum {
        LB_POLICY_RULE_LAST = 1u << 0,
        LB_POLICY_RULE_HOURLY = 1u << 1,
        LB_POLICY_RULE_DAILY = 1u << 2,
        LB_POLICY_RULE_WEEKLY = 1u << 3,
        LB_POLICY_RULE_MONTHLY = 1u << 4,
        LB_POLICY_RULE_YEARLY = 1u << 5,
        LB_POLICY_RULE_WITHIN = 1u << 6,
        LB_POLICY_RULE_TAG = 1u << 7,
};

typedef struct LbPolicyDecision {
        bool keep;
        unsigned rules;          /* LB_POLICY_RULE_* that keep the snapshot */
        unsigned oldest;         /* subset of rules that keep it only because it is the group's
                                  * oldest snapshot and they had count left */
        uint64_t tags;           /* bit i: keep_tags[i] matched */
} LbPolicyDecision;

/* Applies p to one group of n snapshots (any order; none NULL) and writes
 * one decision per snapshot into ret[0..n-1], in the order of snaps.
 * now_ns is the current time (for keep-within's "newest not in the
 * future"). -EINVAL for an empty policy, more than LB_POLICY_KEEP_TAGS_MAX
 * keep-tag lists or a NULL one, -ENOMEM; ret is untouched then. */
int lb_policy_apply(const LbPolicy *p, LbSnapshot *const *snaps, size_t n, int64_t now_ns,
                    LbPolicyDecision *ret) _warn_unused_;

/* The reasons a snapshot was kept, in restic's words and order: "has tags
 * a,b", "within 90d", "last snapshot", "hourly snapshot", "daily snapshot",
 * "weekly snapshot", "monthly snapshot", "yearly snapshot" (each prefixed
 * "oldest " when kept as the group's oldest). *ret is a new array of new
 * strings (free with lb_policy_reasons_free); empty for a removed snapshot. */
int lb_policy_reasons(const LbPolicy *p, const LbPolicyDecision *d, char ***ret, size_t *ret_n) _warn_unused_;
void lb_policy_reasons_free(char **v, size_t n);

/* ---- grouping ----
 * Policies apply to groups of related snapshots, so that the backups of one
 * database never push out those of another. */
enum {
        LB_POLICY_GROUP_HOST = 1u << 0,      /* hostname */
        LB_POLICY_GROUP_PATHS = 1u << 1,     /* the paths (sorted) */
        LB_POLICY_GROUP_TAGS = 1u << 2,      /* the tags (sorted) */
        LB_POLICY_GROUP_DATABASE = 1u << 3,  /* the source: the "pg.database" meta of a
                                              * database snapshot, the paths of any other */
        LB_POLICY_GROUP_DEFAULT = LB_POLICY_GROUP_HOST | LB_POLICY_GROUP_DATABASE,
};

/* Parses "host,paths,tags,database" ("source" is a synonym of "database";
 * "" means one group for everything). -EINVAL on an unknown or empty name. */
int lb_policy_group_parse(const char *s, unsigned *ret_flags) _warn_unused_;

/* The group key of s: space-separated "host=H", "database=D", "paths=P1,P2",
 * "tags=T1,T2" for the fields flags select (in that order; "" when flags
 * is 0). Values escape backslash, space, comma, '=' and control bytes as
 * "\\", "\ ", "\,", "\=", "\xHH", so two snapshots are in the same group
 * exactly when their keys are equal, and the key reads well in messages.
 * *ret is a new string. */
int lb_policy_group_key(const LbSnapshot *s, unsigned flags, char **ret) _warn_unused_;

typedef struct LbPolicyGroup {
        char *key;               /* lb_policy_group_key of its members */
        size_t *members;         /* indices into the snapshot array, ascending */
        size_t n_members;
} LbPolicyGroup;

/* Splits n snapshots into groups, sorted by key. Free with lb_policy_groups_free. */
int lb_policy_group(LbSnapshot *const *snaps, size_t n, unsigned flags, LbPolicyGroup **ret,
                    size_t *ret_n) _warn_unused_;
void lb_policy_groups_free(LbPolicyGroup *g, size_t n);
