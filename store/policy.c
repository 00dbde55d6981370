/* SPDX-License-Identifier: MIT */
/*
 * Retention policy (restic's rules; see store/policy.h for the contract).
 * Calendar arithmetic is done here on plain integers (days since the
 * epoch, proleptic Gregorian), so the result never depends on the time
 * zone or the libc of the machine that runs forget.
 */
#include "store/policy.h"

#include <inttypes.h>
#include <stdio.h>

#include "store/crypto.h"

#define NS_PER_SEC INT64_C(1000000000)
#define SEC_PER_DAY INT64_C(86400)

/* ---- calendar ---------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b) {
        int64_t q = a / b;
        if (a % b != 0 && (a < 0) != (b < 0))
                q--;
        return q;
}

static int64_t floor_mod(int64_t a, int64_t b) {
        return a - floor_div(a, b) * b;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        y -= m <= 2;
        int64_t era = floor_div(y, 400);
        int64_t yoe = y - era * 400;                                   /* [0, 399] */
        int64_t mp = m > 2 ? (int64_t) m - 3 : (int64_t) m + 9;        /* March = 0 */
        int64_t doy = (153 * mp + 2) / 5 + (int64_t) d - 1;            /* [0, 365] */
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
        return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *ret_y, unsigned *ret_m, unsigned *ret_d) {
        z += 719468;
        int64_t era = floor_div(z, 146097);
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        unsigned m = (unsigned) (mp < 10 ? mp + 3 : mp - 9);
        *ret_d = (unsigned) (doy - (153 * mp + 2) / 5 + 1);
        *ret_m = m;
        *ret_y = yoe + era * 400 + (m <= 2);
}

/* A snapshot's wall clock in its own zone. */
typedef struct Civil {
        int64_t days;            /* since 1970-01-01, local */
        int64_t year;
        unsigned month, day, hour;
} Civil;

static void local_civil(int64_t time_ns, int32_t tz_offset, Civil *c) {
        int64_t sec = floor_div(time_ns, NS_PER_SEC) + tz_offset;
        c->days = floor_div(sec, SEC_PER_DAY);
        c->hour = (unsigned) (floor_mod(sec, SEC_PER_DAY) / 3600);
        civil_from_days(c->days, &c->year, &c->month, &c->day);
}

/* ISO 8601 week: the week (Monday to Sunday) belongs to the year of its
 * Thursday; week 1 is the one with the year's first Thursday. */
static int64_t iso_year_week(const Civil *c) {
        int64_t weekday = floor_mod(c->days + 3, 7);      /* Monday = 0; 1970-01-01 was a Thursday */
        int64_t thursday = c->days - weekday + 3;
        int64_t y;
        unsigned m, d;
        civil_from_days(thursday, &y, &m, &d);
        int64_t week = (thursday - days_from_civil(y, 1, 1)) / 7 + 1;
        return y * 100 + week;
}

/* ---- durations --------------------------------------------------------------- */

int lb_duration_parse(const char *s, LbDuration *ret) {
        static const char units[] = "ymwdh";
        uint64_t v[5] = {};
        unsigned seen = 0;
        bool too_big = false;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p;) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                uint64_t x = 0;
                for (; *p >= '0' && *p <= '9'; p++)
                        if (x <= LB_DURATION_FIELD_MAX)
                                x = x * 10 + (uint64_t) (*p - '0');
                const char *u = *p ? strchr(units, *p) : NULL;
                if (!u)
                        return -EINVAL;
                unsigned i = (unsigned) (u - units);
                if (seen & (1u << i))
                        return -EINVAL;
                seen |= 1u << i;
                v[i] = x;
                if (x > LB_DURATION_FIELD_MAX)
                        too_big = true;
                p++;
        }
        uint64_t days = v[2] * 7 + v[3];
        if (too_big || days > LB_DURATION_FIELD_MAX)
                return -ERANGE;
        *ret = (LbDuration) {
                .years = (uint32_t) v[0],
                .months = (uint32_t) v[1],
                .days = (uint32_t) days,
                .hours = (uint32_t) v[4],
        };
        return 0;
}

bool lb_duration_is_zero(const LbDuration *d) {
        return d->years == 0 && d->months == 0 && d->days == 0 && d->hours == 0;
}

void lb_duration_format(const LbDuration *d, char out[LB_DURATION_STRING_MAX]) {
        const struct {
                uint32_t v;
                char unit;
        } f[] = { { d->years, 'y' }, { d->months, 'm' }, { d->days, 'd' }, { d->hours, 'h' } };
        size_t used = 0;
        out[0] = 0;
        for (size_t i = 0; i < LB_ARRAY_SIZE(f); i++) {
                if (f[i].v == 0)
                        continue;
                int k = snprintf(out + used, LB_DURATION_STRING_MAX - used, "%" PRIu32 "%c", f[i].v, f[i].unit);
                if (k < 0 || (size_t) k >= LB_DURATION_STRING_MAX - used)
                        break;
                used += (size_t) k;
        }
        if (used == 0)
                snprintf(out, LB_DURATION_STRING_MAX, "0d");
}

/* latest minus d, in latest's own wall clock (Go's AddDate, then hours).
 * false when the result is before the earliest representable time: then
 * every snapshot is within. */
static bool within_cutoff(int64_t latest_ns, int32_t tz_offset, const LbDuration *d, int64_t *ret) {
        int64_t sec = floor_div(latest_ns, NS_PER_SEC), nsec = latest_ns - sec * NS_PER_SEC;
        int64_t local = sec + tz_offset;
        int64_t days = floor_div(local, SEC_PER_DAY), sod = floor_mod(local, SEC_PER_DAY);
        int64_t y;
        unsigned m, dd;
        civil_from_days(days, &y, &m, &dd);

        /* Month overflow moves the year; day overflow runs on into the next
         * months ("February 31" is March 3): what time.Date does. */
        int64_t mm = (int64_t) m - 1 - (int64_t) d->months;
        y -= d->years;
        y += floor_div(mm, 12);
        mm = floor_mod(mm, 12);
        int64_t nd = days_from_civil(y, (unsigned) mm + 1, 1) + (int64_t) dd - 1 - (int64_t) d->days;

        int64_t cut = nd * SEC_PER_DAY + sod - tz_offset - (int64_t) d->hours * 3600;
        if (cut <= INT64_MIN / NS_PER_SEC + 1)
                return false;
        *ret = cut * NS_PER_SEC + nsec;
        return true;
}

/* ---- the policy ------------------------------------------------------------- */

bool lb_policy_is_empty(const LbPolicy *p) {
        return p->last == 0 && p->hourly == 0 && p->daily == 0 && p->weekly == 0 && p->monthly == 0 &&
               p->yearly == 0 && lb_duration_is_zero(&p->within) && p->n_keep_tags == 0;
}

static bool has_tag(const LbSnapshot *s, const char *t, size_t len) {
        for (size_t i = 0; i < s->n_tags; i++)
                if (s->tags[i] && strlen(s->tags[i]) == len && memcmp(s->tags[i], t, len) == 0)
                        return true;
        return false;
}

/* Every tag of the comma-separated list; "" matches untagged snapshots. */
static bool tags_match(const LbSnapshot *s, const char *list) {
        if (!*list)
                return s->n_tags == 0;
        for (const char *p = list;;) {
                const char *e = strchrnul(p, ',');
                if (!has_tag(s, p, (size_t) (e - p)))
                        return false;
                if (!*e)
                        return true;
                p = e + 1;
        }
}

typedef struct Ordered {
        const LbSnapshot *s;
        size_t index;
} Ordered;

/* Newest first; equal times by id descending. */
static int newest_first(const void *a, const void *b) {
        const Ordered *x = a, *y = b;
        if (x->s->time_ns != y->s->time_ns)
                return x->s->time_ns > y->s->time_ns ? -1 : 1;
        return -lb_id_cmp(&x->s->id, &y->s->id);
}

typedef struct CountRule {
        unsigned count;
        unsigned bit;
        bool has_last;
        int64_t last;
} CountRule;

static int64_t bucket_of(unsigned bit, const Civil *c, size_t nr) {
        int64_t ymd = (c->year * 100 + c->month) * 100 + c->day;
        switch (bit) {
        case LB_POLICY_RULE_HOURLY:
                return ymd * 100 + c->hour;
        case LB_POLICY_RULE_DAILY:
                return ymd;
        case LB_POLICY_RULE_WEEKLY:
                return iso_year_week(c);
        case LB_POLICY_RULE_MONTHLY:
                return c->year * 100 + c->month;
        case LB_POLICY_RULE_YEARLY:
                return c->year;
        default: /* LAST: every snapshot is a bucket of its own */
                return (int64_t) nr;
        }
}

int lb_policy_apply(const LbPolicy *p, LbSnapshot *const *snaps, size_t n, int64_t now_ns, LbPolicyDecision *ret) {
        if (!p || lb_policy_is_empty(p) || p->n_keep_tags > LB_POLICY_KEEP_TAGS_MAX)
                return -EINVAL;
        if (n == 0)
                return 0;
        if (!snaps || !ret || (p->n_keep_tags > 0 && !p->keep_tags))
                return -EINVAL;
        for (size_t i = 0; i < p->n_keep_tags; i++)
                if (!p->keep_tags[i])
                        return -EINVAL;

        _cleanup_free_ Ordered *o = calloc(n, sizeof *o);
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                o[i] = (Ordered) { .s = snaps[i], .index = i };
        lb_qsort(o, n, sizeof *o, newest_first);

        /* keep-within counts from the newest snapshot not in the future. */
        bool all_within = true;
        int64_t cutoff = 0;
        if (!lb_duration_is_zero(&p->within)) {
                const LbSnapshot *latest = NULL;
                for (size_t i = 0; i < n && !latest; i++)
                        if (o[i].s->time_ns < now_ns)
                                latest = o[i].s;
                if (latest)
                        all_within = !within_cutoff(latest->time_ns, latest->tz_offset, &p->within, &cutoff);
        }

        CountRule rules[] = {
                { .count = p->last, .bit = LB_POLICY_RULE_LAST },
                { .count = p->hourly, .bit = LB_POLICY_RULE_HOURLY },
                { .count = p->daily, .bit = LB_POLICY_RULE_DAILY },
                { .count = p->weekly, .bit = LB_POLICY_RULE_WEEKLY },
                { .count = p->monthly, .bit = LB_POLICY_RULE_MONTHLY },
                { .count = p->yearly, .bit = LB_POLICY_RULE_YEARLY },
        };

        for (size_t nr = 0; nr < n; nr++) {
                const LbSnapshot *s = o[nr].s;
                LbPolicyDecision d = {};

                for (size_t i = 0; i < p->n_keep_tags; i++)
                        if (tags_match(s, p->keep_tags[i])) {
                                d.rules |= LB_POLICY_RULE_TAG;
                                d.tags |= UINT64_C(1) << i;
                        }

                if (!lb_duration_is_zero(&p->within) && (all_within || s->time_ns > cutoff))
                        d.rules |= LB_POLICY_RULE_WITHIN;

                Civil c;
                local_civil(s->time_ns, s->tz_offset, &c);
                bool oldest = nr == n - 1;
                for (size_t i = 0; i < LB_ARRAY_SIZE(rules); i++) {
                        CountRule *r = &rules[i];
                        if (r->count == 0)
                                continue;
                        int64_t val = bucket_of(r->bit, &c, nr);
                        bool same = r->has_last && val == r->last;
                        if (same && !oldest)
                                continue;
                        /* A rule with count left also keeps the oldest snapshot. */
                        if (same)
                                d.oldest |= r->bit;
                        d.rules |= r->bit;
                        r->has_last = true;
                        r->last = val;
                        if (r->count != LB_POLICY_UNLIMITED)
                                r->count--;
                }

                d.keep = d.rules != 0;
                ret[o[nr].index] = d;
        }
        return 0;
}

/* ---- reasons ------------------------------------------------------------------ */

void lb_policy_reasons_free(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static int push(char ***v, size_t *n, char *s) {
        if (!s)
                return -ENOMEM;
        char **nv = reallocarray(*v, *n + 1, sizeof *nv);
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        nv[(*n)++] = s;
        *v = nv;
        return 0;
}

/* "has tags [a, b]" as restic prints a tag list; "has no tags" for "". */
static char *tag_reason(const char *list) {
        if (!*list)
                return strdup("has no tags");
        _cleanup_buf_ LbBuf b = {};
        int k = lb_buf_append(&b, "has tags [", 10);
        for (const char *p = list; k >= 0;) {
                const char *e = strchrnul(p, ',');
                k = lb_buf_append(&b, p, (size_t) (e - p));
                if (k < 0 || !*e)
                        break;
                k = lb_buf_append(&b, ", ", 2);
                p = e + 1;
        }
        if (k >= 0)
                k = lb_buf_append_u8(&b, ']');
        if (k >= 0)
                k = lb_buf_append_u8(&b, 0);
        if (k < 0)
                return NULL;
        return (char *) LB_TAKE_PTR(b.data);
}

int lb_policy_reasons(const LbPolicy *p, const LbPolicyDecision *d, char ***ret, size_t *ret_n) {
        static const struct {
                unsigned bit;
                const char *name;
        } counted[] = {
                { LB_POLICY_RULE_LAST, "last snapshot" },       { LB_POLICY_RULE_HOURLY, "hourly snapshot" },
                { LB_POLICY_RULE_DAILY, "daily snapshot" },     { LB_POLICY_RULE_WEEKLY, "weekly snapshot" },
                { LB_POLICY_RULE_MONTHLY, "monthly snapshot" }, { LB_POLICY_RULE_YEARLY, "yearly snapshot" },
        };
        char **v = NULL;
        size_t n = 0;
        int k = 0;

        for (size_t i = 0; k >= 0 && i < p->n_keep_tags && i < LB_POLICY_KEEP_TAGS_MAX; i++)
                if (d->tags & (UINT64_C(1) << i))
                        k = push(&v, &n, tag_reason(p->keep_tags[i]));
        if (k >= 0 && (d->rules & LB_POLICY_RULE_WITHIN)) {
                char dur[LB_DURATION_STRING_MAX];
                lb_duration_format(&p->within, dur);
                k = push(&v, &n, lb_strdup_printf("within %s", dur));
        }
        for (size_t i = 0; k >= 0 && i < LB_ARRAY_SIZE(counted); i++)
                if (d->rules & counted[i].bit)
                        k = push(&v, &n, lb_strdup_printf("%s%s", (d->oldest & counted[i].bit) ? "oldest " : "",
                                                          counted[i].name));
        if (k < 0) {
                lb_policy_reasons_free(v, n);
                return k;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ---- grouping ----------------------------------------------------------------- */

int lb_policy_group_parse(const char *s, unsigned *ret_flags) {
        static const struct {
                const char *name;
                unsigned flag;
        } names[] = {
                { "host", LB_POLICY_GROUP_HOST },         { "paths", LB_POLICY_GROUP_PATHS },
                { "tags", LB_POLICY_GROUP_TAGS },         { "database", LB_POLICY_GROUP_DATABASE },
                { "source", LB_POLICY_GROUP_DATABASE },
        };
        unsigned flags = 0;
        if (!s)
                return -EINVAL;
        for (const char *p = s; *p;) {
                const char *e = strchrnul(p, ',');
                size_t len = (size_t) (e - p);
                bool found = false;
                for (size_t i = 0; i < LB_ARRAY_SIZE(names) && !found; i++)
                        if (strlen(names[i].name) == len && memcmp(names[i].name, p, len) == 0) {
                                flags |= names[i].flag;
                                found = true;
                        }
                if (!found)
                        return -EINVAL;
                if (!*e)
                        break;
                p = e + 1;
                if (!*p)
                        return -EINVAL; /* trailing comma */
        }
        *ret_flags = flags;
        return 0;
}

static int append_escaped(LbBuf *b, const char *s) {
        int k = 0;
        for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p && k >= 0; p++) {
                if (*p == '\\' || *p == ' ' || *p == ',' || *p == '=') {
                        uint8_t e[2] = { '\\', *p };
                        k = lb_buf_append(b, e, 2);
                } else if (*p < 0x20 || *p == 0x7f) {
                        char e[5];
                        snprintf(e, sizeof e, "\\x%02x", *p);
                        k = lb_buf_append(b, e, 4);
                } else
                        k = lb_buf_append_u8(b, *p);
        }
        return k;
}

static int cmp_str(const void *a, const void *b) {
        const char *x = *(const char *const *) a, *y = *(const char *const *) b;
        return strcmp(x ? x : "", y ? y : "");
}

/* " name=v1,v2" with the values sorted. */
static int append_list(LbBuf *b, const char *name, char **v, size_t n) {
        _cleanup_free_ char **sorted = NULL;
        if (n > 0) {
                sorted = calloc(n, sizeof *sorted);
                if (!sorted)
                        return -ENOMEM;
                memcpy(sorted, v, n * sizeof *sorted);
                lb_qsort(sorted, n, sizeof *sorted, cmp_str);
        }
        int k = b->len > 0 ? lb_buf_append_u8(b, ' ') : 0;
        if (k >= 0)
                k = lb_buf_append(b, name, strlen(name));
        if (k >= 0)
                k = lb_buf_append_u8(b, '=');
        for (size_t i = 0; k >= 0 && i < n; i++) {
                if (i > 0)
                        k = lb_buf_append_u8(b, ',');
                if (k >= 0)
                        k = append_escaped(b, sorted[i]);
        }
        return k;
}

static int append_field(LbBuf *b, const char *name, const char *value) {
        char *v[1] = { (char *) value };
        return append_list(b, name, v, 1);
}

int lb_policy_group_key(const LbSnapshot *s, unsigned flags, char **ret) {
        _cleanup_buf_ LbBuf b = {};
        const char *db = lb_snapshot_meta(s, "pg.database");
        bool paths = flags & LB_POLICY_GROUP_PATHS;
        int k = 0;

        if (flags & LB_POLICY_GROUP_HOST)
                k = append_field(&b, "host", s->hostname);
        if (k >= 0 && (flags & LB_POLICY_GROUP_DATABASE)) {
                if (db)
                        k = append_field(&b, "database", db);
                else
                        paths = true; /* the source of a file or stream snapshot is its paths */
        }
        if (k >= 0 && paths)
                k = append_list(&b, "paths", s->paths, s->n_paths);
        if (k >= 0 && (flags & LB_POLICY_GROUP_TAGS))
                k = append_list(&b, "tags", s->tags, s->n_tags);
        if (k >= 0)
                k = lb_buf_append_u8(&b, 0);
        if (k < 0)
                return k;
        *ret = (char *) LB_TAKE_PTR(b.data);
        return 0;
}

typedef struct Keyed {
        char *key;
        size_t index;
} Keyed;

static int keyed_cmp(const void *a, const void *b) {
        const Keyed *x = a, *y = b;
        int c = strcmp(x->key, y->key);
        if (c)
                return c;
        return x->index < y->index ? -1 : x->index > y->index;
}

void lb_policy_groups_free(LbPolicyGroup *g, size_t n) {
        for (size_t i = 0; g && i < n; i++) {
                free(g[i].key);
                free(g[i].members);
        }
        free(g);
}

int lb_policy_group(LbSnapshot *const *snaps, size_t n, unsigned flags, LbPolicyGroup **ret, size_t *ret_n) {
        Keyed *kv = calloc(n ? n : 1, sizeof *kv);
        LbPolicyGroup *g = calloc(n ? n : 1, sizeof *g);
        size_t ng = 0;
        int k = kv && g ? 0 : -ENOMEM;

        for (size_t i = 0; k >= 0 && i < n; i++) {
                kv[i].index = i;
                k = lb_policy_group_key(snaps[i], flags, &kv[i].key);
        }
        if (k >= 0)
                lb_qsort(kv, n, sizeof *kv, keyed_cmp);
        for (size_t i = 0; k >= 0 && i < n;) {
                size_t j = i;
                while (j < n && strcmp(kv[j].key, kv[i].key) == 0)
                        j++;
                LbPolicyGroup *cur = &g[ng];
                cur->members = calloc(j - i, sizeof *cur->members);
                if (!cur->members) {
                        k = -ENOMEM;
                        break;
                }
                ng++;
                cur->key = LB_TAKE_PTR(kv[i].key);
                for (size_t m = i; m < j; m++)
                        cur->members[cur->n_members++] = kv[m].index;
                i = j;
        }

        for (size_t i = 0; kv && i < n; i++)
                free(kv[i].key);
        free(kv);
        if (k < 0) {
                lb_policy_groups_free(g, ng);
                return k;
        }
        *ret = g;
        *ret_n = ng;
        return 0;
}
