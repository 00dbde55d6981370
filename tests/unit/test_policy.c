/* SPDX-License-Identifier: MIT */
/*
 * Retention policy on synthetic timelines. Every expected set below was
 * worked out by hand from a calendar (the comments show the working); the
 * timelines are built with libc's timegm(), not with the calendar code
 * under test, and each snapshot carries a label written from the wall
 * clock it was created with, so a mistake in policy.c cannot also hide in
 * the fixture.
 */
#include <stdarg.h>
#include <time.h>

#include "store/policy.h"
#include "store/util.h"
#include "tests.h"

#define NS INT64_C(1000000000)
#define H (3600)
#define CET (1 * H)
#define CEST (2 * H)

/* ---- fixtures ----------------------------------------------------------------- */

enum { LABEL_DATE, LABEL_MINUTE, LABEL_ZONE };

typedef struct Timeline {
        LbSnapshot **v;
        char **label;
        size_t n;
        int label_mode;
        unsigned next_id;
} Timeline;

static char *xstrdup(const char *s) {
        char *p = strdup(s);
        CHECK(p);
        return p;
}

static void push_str(char ***v, size_t *n, const char *s) {
        char **nv = reallocarray(*v, *n + 1, sizeof *nv);
        CHECK(nv);
        *v = nv;
        nv[(*n)++] = xstrdup(s);
}

static void timeline_free(Timeline *t) {
        for (size_t i = 0; i < t->n; i++) {
                lb_snapshot_free(t->v[i]);
                free(t->label[i]);
        }
        free(t->v);
        free(t->label);
        *t = (Timeline) {};
}

/* A snapshot taken at the given local wall clock, tz_offset seconds east of
 * UTC. The wall clock is normalised by timegm (day 32 is the 1st of the
 * next month), and the label is written from the normalised fields. */
static LbSnapshot *add_snap(Timeline *t, int y, int mo, int d, int h, int mi, int32_t off) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
        time_t local = timegm(&tm);
        CHECK(local != (time_t) -1);

        LbSnapshot *s = calloc(1, sizeof *s);
        CHECK(s);
        unsigned id = ++t->next_id;
        s->id.b[0] = (uint8_t) (id >> 8);
        s->id.b[1] = (uint8_t) id;
        s->time_ns = ((int64_t) local - off) * NS;
        s->tz_offset = off;
        s->hostname = xstrdup("db1");
        s->source = xstrdup("files");
        push_str(&s->paths, &s->n_paths, "/data");

        char label[64];
        if (t->label_mode == LABEL_DATE)
                snprintf(label, sizeof label, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        else if (t->label_mode == LABEL_MINUTE)
                snprintf(label, sizeof label, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min);
        else
                snprintf(label, sizeof label, "%04d-%02d-%02d %02d:%02d%+03d", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, off / H);

        LbSnapshot **nv = reallocarray(t->v, t->n + 1, sizeof *nv);
        CHECK(nv);
        t->v = nv;
        char **nl = reallocarray(t->label, t->n + 1, sizeof *nl);
        CHECK(nl);
        t->label = nl;
        t->v[t->n] = s;
        t->label[t->n] = xstrdup(label);
        t->n++;
        return s;
}

/* One snapshot a day at h:mi local for days days from y-mo-d. */
static void add_daily(Timeline *t, int y, int mo, int d, int days, int h, int mi, int32_t off) {
        for (int i = 0; i < days; i++)
                add_snap(t, y, mo, d + i, h, mi, off);
}

static size_t find_label(const Timeline *t, const char *label) {
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->label[i], label) == 0)
                        return i;
        fprintf(stderr, "no snapshot labelled %s in the timeline\n", label);
        exit(1);
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static LbPolicyDecision *apply(const LbPolicy *p, const Timeline *t, int64_t now_ns) {
        LbPolicyDecision *d = calloc(t->n ? t->n : 1, sizeof *d);
        CHECK(d);
        CHECK_OK(lb_policy_apply(p, t->v, t->n, now_ns, d));
        return d;
}

/* Far in the future: nothing in the timelines is "in the future". */
static const int64_t NOW = INT64_C(4000000000) * NS;

/* The kept labels are exactly expected (NULL-terminated, any order). */
static void check_kept_(const Timeline *t, const LbPolicyDecision *d, const char *const *expected, const char *where) {
        size_t n_exp = 0, n_got = 0;
        while (expected[n_exp])
                n_exp++;
        const char **exp = calloc(n_exp + 1, sizeof *exp), **got = calloc(t->n + 1, sizeof *got);
        CHECK(exp && got);
        memcpy(exp, expected, n_exp * sizeof *exp);
        for (size_t i = 0; i < t->n; i++) {
                CHECK(d[i].keep == (d[i].rules != 0));
                if (d[i].keep)
                        got[n_got++] = t->label[i];
        }
        qsort(exp, n_exp, sizeof *exp, cmp_strp);
        qsort(got, n_got, sizeof *got, cmp_strp);
        bool same = n_exp == n_got;
        for (size_t i = 0; same && i < n_exp; i++)
                same = strcmp(exp[i], got[i]) == 0;
        if (!same) {
                fprintf(stderr, "%s: kept set differs\n  expected (%zu):", where, n_exp);
                for (size_t i = 0; i < n_exp; i++)
                        fprintf(stderr, " %s", exp[i]);
                fprintf(stderr, "\n  got (%zu):", n_got);
                for (size_t i = 0; i < n_got; i++)
                        fprintf(stderr, " %s", got[i]);
                fprintf(stderr, "\n");
                exit(1);
        }
        free(exp);
        free(got);
}
#define STRINGIFY2(x) #x
#define STRINGIFY(x) STRINGIFY2(x)
#define check_kept(t, d, ...) \
        check_kept_(t, d, (const char *const[]) { __VA_ARGS__, NULL }, __FILE__ ":" STRINGIFY(__LINE__))

/* Exactly the snapshots labelled >= first are kept (labels sort by time). */
static void check_kept_from(const Timeline *t, const LbPolicyDecision *d, const char *first) {
        for (size_t i = 0; i < t->n; i++) {
                bool want = strcmp(t->label[i], first) >= 0;
                if (d[i].keep != want) {
                        fprintf(stderr, "%s: %s, expected %s (everything from %s kept)\n", t->label[i],
                                d[i].keep ? "kept" : "removed", want ? "kept" : "removed", first);
                        exit(1);
                }
        }
}

/* The reasons of the snapshot labelled label, joined with ", ". */
static void check_reasons(const LbPolicy *p, const Timeline *t, const LbPolicyDecision *d, const char *label,
                          const char *expected) {
        size_t i = find_label(t, label);
        char **r = NULL;
        size_t n = 0;
        CHECK_OK(lb_policy_reasons(p, &d[i], &r, &n));
        char joined[512] = "";
        for (size_t j = 0; j < n; j++) {
                strncat(joined, j ? ", " : "", sizeof joined - strlen(joined) - 1);
                strncat(joined, r[j], sizeof joined - strlen(joined) - 1);
        }
        lb_policy_reasons_free(r, n);
        if (strcmp(joined, expected) != 0) {
                fprintf(stderr, "reasons of %s: '%s', expected '%s'\n", label, joined, expected);
                exit(1);
        }
}

/* ---- durations ----------------------------------------------------------------- */

static void check_duration(const char *s, uint32_t y, uint32_t m, uint32_t d, uint32_t h) {
        LbDuration v = { 9, 9, 9, 9 };
        int k = lb_duration_parse(s, &v);
        if (k < 0 || v.years != y || v.months != m || v.days != d || v.hours != h) {
                fprintf(stderr, "'%s': %d, %uy %um %ud %uh\n", s, k, v.years, v.months, v.days, v.hours);
                exit(1);
        }
}

static void check_duration_bad(const char *s, int err) {
        LbDuration v = { 9, 9, 9, 9 };
        int k = lb_duration_parse(s, &v);
        if (k != err || v.years != 9 || v.months != 9 || v.days != 9 || v.hours != 9) {
                fprintf(stderr, "'%s': %d, expected %d and the output untouched\n", s, k, err);
                exit(1);
        }
}

TEST(test_duration_parse) {
        check_duration("90d", 0, 0, 90, 0);
        check_duration("1y2m", 1, 2, 0, 0);
        check_duration("2w", 0, 0, 14, 0);
        check_duration("36h", 0, 0, 0, 36);
        check_duration("1y2m3w4d5h", 1, 2, 25, 5);
        check_duration("5h4d3m2y", 2, 3, 4, 5);       /* any order */
        check_duration("1d1w", 0, 0, 8, 0);
        check_duration("0d", 0, 0, 0, 0);
        check_duration("007d", 0, 0, 7, 0);
        check_duration("100000y", 100000, 0, 0, 0);
        check_duration("14285w5d", 0, 0, 100000, 0);

        check_duration_bad(NULL, -EINVAL);
        check_duration_bad("", -EINVAL);
        check_duration_bad("d", -EINVAL);             /* no number */
        check_duration_bad("10", -EINVAL);            /* no unit */
        check_duration_bad("10x", -EINVAL);           /* unknown unit */
        check_duration_bad("1D", -EINVAL);            /* units are lower case */
        check_duration_bad("1M", -EINVAL);
        check_duration_bad("-1d", -EINVAL);           /* no sign */
        check_duration_bad("+1d", -EINVAL);
        check_duration_bad("1d2d", -EINVAL);          /* a unit twice */
        check_duration_bad("1w2w", -EINVAL);
        check_duration_bad("1.5d", -EINVAL);
        check_duration_bad(" 1d", -EINVAL);
        check_duration_bad("1d ", -EINVAL);
        check_duration_bad("1yy", -EINVAL);
        check_duration_bad("y1", -EINVAL);
        check_duration_bad("1d\n", -EINVAL);
        check_duration_bad("100001d", -ERANGE);
        check_duration_bad("99999999999999999999999d", -ERANGE);
        check_duration_bad("14286w", -ERANGE);        /* 100002 days */
        check_duration_bad("1w99999d", -ERANGE);
        check_duration_bad("99999999999999999999999d1x", -EINVAL); /* malformed wins */

        char out[LB_DURATION_STRING_MAX];
        lb_duration_format(&(LbDuration) { 1, 2, 14, 0 }, out);
        CHECK(strcmp(out, "1y2m14d") == 0);
        lb_duration_format(&(LbDuration) { 0, 0, 0, 36 }, out);
        CHECK(strcmp(out, "36h") == 0);
        lb_duration_format(&(LbDuration) {}, out);
        CHECK(strcmp(out, "0d") == 0);
        lb_duration_format(&(LbDuration) { 100000, 100000, 100000, 100000 }, out);
        CHECK(strcmp(out, "100000y100000m100000d100000h") == 0);
        CHECK(lb_duration_is_zero(&(LbDuration) {}));
        CHECK(!lb_duration_is_zero(&(LbDuration) { .hours = 1 }));
}

/* ---- the empty policy ------------------------------------------------------------ */

TEST(test_empty_policy_refused) {
        Timeline t = {};
        add_daily(&t, 2024, 1, 1, 3, 3, 0, 0);
        LbPolicyDecision d[3];
        memset(d, 0xa5, sizeof d);
        LbPolicyDecision sentinel;
        memset(&sentinel, 0xa5, sizeof sentinel);

        LbPolicy p = {};
        CHECK(lb_policy_is_empty(&p));
        CHECK_EQ_INT(lb_policy_apply(&p, t.v, t.n, NOW, d), -EINVAL);
        CHECK(memcmp(&d[0], &sentinel, sizeof sentinel) == 0);

        /* A zero duration is no rule either ("--keep-within 0d", "--keep-last 0"). */
        CHECK_OK(lb_duration_parse("0d", &p.within));
        p.last = 0;
        CHECK(lb_policy_is_empty(&p));
        CHECK_EQ_INT(lb_policy_apply(&p, t.v, t.n, NOW, d), -EINVAL);

        /* Any single rule makes it a policy. */
        LbPolicy one[] = { { .last = 1 },   { .hourly = 1 },  { .daily = 1 },           { .weekly = 1 },
                           { .monthly = 1 }, { .yearly = 1 }, { .within = { .hours = 1 } } };
        for (size_t i = 0; i < LB_ARRAY_SIZE(one); i++)
                CHECK(!lb_policy_is_empty(&one[i]));
        char *tag = (char *) "x";
        CHECK(!lb_policy_is_empty(&(LbPolicy) { .keep_tags = &tag, .n_keep_tags = 1 }));

        /* Too many tag lists. */
        char *tags[LB_POLICY_KEEP_TAGS_MAX + 1];
        for (size_t i = 0; i < LB_ARRAY_SIZE(tags); i++)
                tags[i] = tag;
        LbPolicy many = { .keep_tags = tags, .n_keep_tags = LB_POLICY_KEEP_TAGS_MAX + 1 };
        CHECK_EQ_INT(lb_policy_apply(&many, t.v, t.n, NOW, d), -EINVAL);
        many.n_keep_tags = LB_POLICY_KEEP_TAGS_MAX;
        CHECK_OK(lb_policy_apply(&many, t.v, t.n, NOW, d));

        /* No snapshots: nothing to decide. */
        CHECK_OK(lb_policy_apply(&(LbPolicy) { .last = 1 }, NULL, 0, NOW, NULL));
        timeline_free(&t);
}

/* ---- counted rules --------------------------------------------------------------- */

/* 500 daily snapshots at 23:30 local (UTC+1), 2019-10-01 to 2021-02-11,
 * across two year ends, 16 month ends, the leap day 2020-02-29 and the ISO
 * week 2020-W53 (2020-12-28 to 2021-01-03). */
TEST(test_500_days) {
        Timeline t = { .label_mode = LABEL_DATE };
        add_daily(&t, 2019, 10, 1, 500, 23, 30, CET);
        CHECK_EQ_INT(t.n, 500);
        CHECK(strcmp(t.label[499], "2021-02-11") == 0); /* a Thursday */

        LbPolicy p = { .daily = 10, .weekly = 8, .monthly = 18, .yearly = 5 };
        LbPolicyDecision *d = apply(&p, &t, NOW);
        check_kept(&t, d,
                   /* daily 10: the last ten days */
                   "2021-02-02", "2021-02-03", "2021-02-04", "2021-02-05", "2021-02-06", "2021-02-07", "2021-02-08",
                   "2021-02-09", "2021-02-10", "2021-02-11",
                   /* weekly 8, the Sundays (and this week's Thursday): 2021-W06 02-11, W05 02-07,
                    * W04 01-31, W03 01-24, W02 01-17, W01 01-10, 2020-W53 2021-01-03, 2020-W52 12-27 */
                   "2021-01-31", "2021-01-24", "2021-01-17", "2021-01-10", "2021-01-03", "2020-12-27",
                   /* monthly 18: last day of 2021-02 (the 11th) back to 2019-10: only 17 months... */
                   "2020-12-31", "2020-11-30", "2020-10-31", "2020-09-30", "2020-08-31", "2020-07-31", "2020-06-30",
                   "2020-05-31", "2020-04-30", "2020-03-31", "2020-02-29", "2020-01-31", "2019-12-31", "2019-11-30",
                   "2019-10-31",
                   /* ...so the oldest is kept too; yearly 5 has 2021, 2020, 2019 and also keeps it */
                   "2019-10-01");
        check_reasons(&p, &t, d, "2021-02-11", "daily snapshot, weekly snapshot, monthly snapshot, yearly snapshot");
        check_reasons(&p, &t, d, "2021-02-07", "daily snapshot, weekly snapshot");
        check_reasons(&p, &t, d, "2021-02-02", "daily snapshot");
        check_reasons(&p, &t, d, "2021-01-31", "weekly snapshot, monthly snapshot");
        check_reasons(&p, &t, d, "2021-01-03", "weekly snapshot");
        check_reasons(&p, &t, d, "2020-12-31", "monthly snapshot, yearly snapshot");
        check_reasons(&p, &t, d, "2019-12-31", "monthly snapshot, yearly snapshot");
        check_reasons(&p, &t, d, "2019-10-01", "oldest monthly snapshot, oldest yearly snapshot");
        check_reasons(&p, &t, d, "2021-02-01", "");
        size_t i = find_label(&t, "2019-10-01");
        CHECK_EQ_INT(d[i].rules, LB_POLICY_RULE_MONTHLY | LB_POLICY_RULE_YEARLY);
        CHECK_EQ_INT(d[i].oldest, LB_POLICY_RULE_MONTHLY | LB_POLICY_RULE_YEARLY);
        free(d);

        /* With monthly 17 the rule is used up exactly by 2019-10-31 (the 17
         * months from 2019-10 to 2021-02), so the oldest goes. */
        p = (LbPolicy) { .monthly = 17 };
        d = apply(&p, &t, NOW);
        CHECK(!d[find_label(&t, "2019-10-01")].keep);
        CHECK(d[find_label(&t, "2019-10-31")].keep);
        free(d);

        /* The order of the input does not matter. */
        p = (LbPolicy) { .daily = 10, .weekly = 8, .monthly = 18, .yearly = 5 };
        LbPolicyDecision *d1 = apply(&p, &t, NOW);
        for (size_t a = 0, b = t.n - 1; a < b; a++, b--) {
                LbSnapshot *s = t.v[a];
                t.v[a] = t.v[b];
                t.v[b] = s;
                char *l = t.label[a];
                t.label[a] = t.label[b];
                t.label[b] = l;
        }
        LbPolicyDecision *d2 = apply(&p, &t, NOW);
        for (size_t k = 0; k < t.n; k++)
                CHECK(d1[t.n - 1 - k].keep == d2[k].keep && d1[t.n - 1 - k].rules == d2[k].rules);
        free(d1);
        free(d2);
        timeline_free(&t);
}

/* ISO weeks: 2020 and 2026 have a week 53 that runs into January; the days
 * 2024-12-30 and 2024-12-31 are in 2025-W01. Yearly buckets stay calendar years. */
TEST(test_iso_weeks) {
        Timeline t = { .label_mode = LABEL_DATE };
        /* 2020-12-14 (Mon) to 2021-01-10 (Sun): W51, W52, W53 (Dec 28 - Jan 3), 2021-W01 */
        add_daily(&t, 2020, 12, 14, 28, 12, 0, 0);
        LbPolicy p = { .weekly = 4 };
        LbPolicyDecision *d = apply(&p, &t, NOW);
        check_kept(&t, d, "2021-01-10", "2021-01-03", "2020-12-27", "2020-12-20");
        free(d);
        /* weekly 5 runs out of weeks: the oldest (Monday 2020-12-14) is kept too */
        p.weekly = 5;
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2021-01-10", "2021-01-03", "2020-12-27", "2020-12-20", "2020-12-14");
        check_reasons(&p, &t, d, "2020-12-14", "oldest weekly snapshot");
        free(d);
        timeline_free(&t);

        /* 2026-12-21 (Mon) to 2027-01-06 (Wed): 2026-W52, 2026-W53 (Dec 28 - Jan 3), 2027-W01 */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2026, 12, 21, 17, 9, 15, CET);
        CHECK(strcmp(t.label[t.n - 1], "2027-01-06") == 0);
        p = (LbPolicy) { .weekly = 3 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2027-01-06", "2027-01-03", "2026-12-27");
        free(d);
        timeline_free(&t);

        /* 2024-12-23 (Mon) to 2025-01-05 (Sun): 2024-W52, then 2025-W01 from Monday Dec 30 */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2024, 12, 23, 14, 18, 0, -5 * H);
        p = (LbPolicy) { .weekly = 2 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2025-01-05", "2024-12-29");
        free(d);
        p = (LbPolicy) { .weekly = 2, .yearly = 2 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2025-01-05", "2024-12-29", "2024-12-31");
        check_reasons(&p, &t, d, "2025-01-05", "weekly snapshot, yearly snapshot");
        check_reasons(&p, &t, d, "2024-12-31", "yearly snapshot");
        free(d);
        timeline_free(&t);
}

/* Buckets are the snapshot's own wall clock, across DST changes
 * (Europe/Berlin 2021: CET +1 until 03-28 02:00, CEST +2 until 10-31 03:00). */
TEST(test_dst) {
        /* Fall back: 02:00-03:00 happens twice on 2021-10-31. Local hour 02
         * holds four snapshots in two offsets; in UTC they would be two hours. */
        Timeline t = { .label_mode = LABEL_ZONE };
        add_snap(&t, 2021, 10, 31, 1, 50, CEST);  /* 23:50Z */
        add_snap(&t, 2021, 10, 31, 2, 10, CEST);  /* 00:10Z */
        add_snap(&t, 2021, 10, 31, 2, 50, CEST);  /* 00:50Z */
        add_snap(&t, 2021, 10, 31, 2, 10, CET);   /* 01:10Z */
        add_snap(&t, 2021, 10, 31, 2, 50, CET);   /* 01:50Z */
        add_snap(&t, 2021, 10, 31, 3, 10, CET);   /* 02:10Z */
        LbPolicy p = { .hourly = 3 };
        LbPolicyDecision *d = apply(&p, &t, NOW);
        check_kept(&t, d, "2021-10-31 03:10+01", "2021-10-31 02:50+01", "2021-10-31 01:50+02");
        free(d);
        timeline_free(&t);

        /* Spring forward, two backups a day (00:30 and 23:30 local); on 03-28
         * 02:30 does not exist and the nightly job ran at 03:30 CEST. Daily
         * keeps each local day's 23:30; by UTC days it would keep the 00:30s. */
        t = (Timeline) { .label_mode = LABEL_ZONE };
        for (int day = 25; day <= 30; day++) {
                add_snap(&t, 2021, 3, day, 0, 30, day <= 28 ? CET : CEST);
                if (day == 28)
                        add_snap(&t, 2021, 3, 28, 3, 30, CEST);
                add_snap(&t, 2021, 3, day, 23, 30, day < 28 ? CET : CEST);
        }
        p = (LbPolicy) { .daily = 4 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2021-03-30 23:30+02", "2021-03-29 23:30+02", "2021-03-28 23:30+02", "2021-03-27 23:30+01");
        free(d);
        /* hourly 3: 03-30 23h, 03-30 00h, 03-29 23h */
        p = (LbPolicy) { .hourly = 3 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2021-03-30 23:30+02", "2021-03-30 00:30+02", "2021-03-29 23:30+02");
        free(d);
        timeline_free(&t);

        /* Fall back with nightly 02:30 backups: 10-31 02:30 ran twice (CEST
         * then CET, an hour apart), plus 23:30 ones. Daily keeps the 23:30s.
         * Hourly sees one local hour 10-31 02h where UTC has two (00:30Z and
         * 01:30Z), so its fifth bucket is 10-30 23h. */
        t = (Timeline) { .label_mode = LABEL_ZONE };
        for (int day = 29; day <= 32; day++) { /* 32: Nov 1 */
                int32_t off = day < 31 ? CEST : CET;
                add_snap(&t, 2021, 10, day, 2, 30, day == 31 ? CEST : off);
                if (day == 31)
                        add_snap(&t, 2021, 10, 31, 2, 30, CET);
                add_snap(&t, 2021, 10, day, 23, 30, off);
        }
        p = (LbPolicy) { .daily = 3 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2021-11-01 23:30+01", "2021-10-31 23:30+01", "2021-10-30 23:30+02");
        free(d);
        p = (LbPolicy) { .hourly = 5 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2021-11-01 23:30+01", "2021-11-01 02:30+01", "2021-10-31 23:30+01", "2021-10-31 02:30+01",
                   "2021-10-30 23:30+02");
        free(d);
        timeline_free(&t);
}

/* The combination the docs suggest, 7 daily + 5 weekly + 4 monthly, on
 * 2024-01-01 (Mon) to 2024-03-15 (Fri), one backup a day at 03:00 UTC. */
TEST(test_default_policy) {
        Timeline t = { .label_mode = LABEL_DATE };
        add_daily(&t, 2024, 1, 1, 75, 3, 0, 0);
        CHECK(strcmp(t.label[t.n - 1], "2024-03-15") == 0);
        LbPolicy p = { .daily = 7, .weekly = 5, .monthly = 4 };
        LbPolicyDecision *d = apply(&p, &t, NOW);
        /* daily: 03-09..03-15. weekly (Sundays): W11 03-15, W10 03-10, W09 03-03,
         * W08 02-25, W07 02-18. monthly: 03-15, 02-29, 01-31, and with one count
         * left, the oldest, 01-01. */
        check_kept(&t, d, "2024-03-15", "2024-03-14", "2024-03-13", "2024-03-12", "2024-03-11", "2024-03-10",
                   "2024-03-09", "2024-03-03", "2024-02-25", "2024-02-18", "2024-02-29", "2024-01-31", "2024-01-01");
        check_reasons(&p, &t, d, "2024-03-15", "daily snapshot, weekly snapshot, monthly snapshot");
        check_reasons(&p, &t, d, "2024-03-10", "daily snapshot, weekly snapshot");
        check_reasons(&p, &t, d, "2024-03-09", "daily snapshot");
        check_reasons(&p, &t, d, "2024-03-03", "weekly snapshot");
        check_reasons(&p, &t, d, "2024-02-29", "monthly snapshot");
        check_reasons(&p, &t, d, "2024-01-31", "monthly snapshot");
        check_reasons(&p, &t, d, "2024-01-01", "oldest monthly snapshot");
        free(d);
        timeline_free(&t);
}

TEST(test_keep_last_and_unlimited) {
        Timeline t = { .label_mode = LABEL_MINUTE };
        /* Three at the same instant: newest first means highest id first. */
        add_snap(&t, 2024, 5, 1, 10, 0, 0);
        add_snap(&t, 2024, 5, 1, 12, 0, 0);
        add_snap(&t, 2024, 5, 1, 12, 0, 0);
        add_snap(&t, 2024, 5, 1, 12, 0, 0);
        add_snap(&t, 2024, 5, 2, 8, 0, 0);
        LbPolicy p = { .last = 3 };
        LbPolicyDecision *d = apply(&p, &t, NOW);
        CHECK(d[4].keep && d[3].keep && d[2].keep && !d[1].keep && !d[0].keep);
        free(d);

        p.last = 10; /* more than there are: all, each as a bucket of its own (no "oldest") */
        d = apply(&p, &t, NOW);
        for (size_t i = 0; i < t.n; i++)
                CHECK(d[i].keep && d[i].rules == LB_POLICY_RULE_LAST && d[i].oldest == 0);
        check_reasons(&p, &t, d, "2024-05-01 10:00", "last snapshot");
        free(d);

        p = (LbPolicy) { .last = LB_POLICY_UNLIMITED };
        d = apply(&p, &t, NOW);
        for (size_t i = 0; i < t.n; i++)
                CHECK(d[i].keep);
        free(d);

        /* unlimited daily: the newest of every day, and the oldest */
        p = (LbPolicy) { .daily = LB_POLICY_UNLIMITED };
        d = apply(&p, &t, NOW);
        CHECK(d[4].keep && d[3].keep && !d[2].keep && !d[1].keep && d[0].keep);
        CHECK_EQ_INT(d[0].oldest, LB_POLICY_RULE_DAILY);
        free(d);
        timeline_free(&t);
}

/* keep-within: calendar arithmetic in the newest snapshot's own wall clock,
 * with Go's AddDate normalisation, strictly newer than the cutoff. */
TEST(test_keep_within) {
        LbPolicy p = {};
        LbPolicyDecision *d;
        Timeline t;

        /* 2021-03-31 12:00 minus 1m = "2021-02-31" = 2021-03-03 12:00 */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2021, 2, 1, 59, 12, 0, 0);
        CHECK(strcmp(t.label[t.n - 1], "2021-03-31") == 0);
        CHECK_OK(lb_duration_parse("1m", &p.within));
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2021-03-04");
        check_reasons(&p, &t, d, "2021-03-04", "within 1m");
        free(d);
        timeline_free(&t);

        /* leap year: 2020-03-31 minus 1m = "2020-02-31" = 2020-03-02 */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2020, 2, 1, 60, 12, 0, 0);
        CHECK(strcmp(t.label[t.n - 1], "2020-03-31") == 0);
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2020-03-03");
        free(d);
        timeline_free(&t);

        /* 2021-05-31 minus 1m = "2021-04-31" = 2021-05-01 */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2021, 4, 15, 47, 12, 0, 0);
        CHECK(strcmp(t.label[t.n - 1], "2021-05-31") == 0);
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2021-05-02");
        free(d);
        timeline_free(&t);

        /* 2021-01-15 minus 13m = 2019-12-15 (months borrow from years) */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2019, 12, 1, 412, 12, 0, 0);
        CHECK(strcmp(t.label[t.n - 1], "2021-01-15") == 0);
        CHECK_OK(lb_duration_parse("13m", &p.within));
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2019-12-16");
        free(d);
        /* 1y1m is the same */
        CHECK_OK(lb_duration_parse("1y1m", &p.within));
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2019-12-16");
        free(d);
        timeline_free(&t);

        /* 2020-02-29 minus 1y = "2019-02-29" = 2019-03-01 */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2019, 2, 20, 375, 12, 0, 0);
        CHECK(strcmp(t.label[t.n - 1], "2020-02-29") == 0);
        CHECK_OK(lb_duration_parse("1y", &p.within));
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2019-03-02");
        free(d);
        timeline_free(&t);

        /* In the newest snapshot's zone: 2021-03-01 00:30 +02 (Feb 28 22:30Z)
         * minus 1m = 2021-02-01 00:30 +02. By UTC it would be Jan 28 22:30Z
         * (Jan 29 00:30 local), keeping Jan 30 and 31 as well. */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2021, 1, 25, 36, 0, 30, CEST);
        CHECK(strcmp(t.label[t.n - 1], "2021-03-01") == 0);
        CHECK_OK(lb_duration_parse("1m", &p.within));
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2021-02-02");
        free(d);
        timeline_free(&t);

        /* Hours and weeks: every 6 hours from 2021-03-08 00:00 to 03-10 12:00.
         * 36h before 03-10 12:00 is 03-09 00:00 (not kept: strictly newer). */
        t = (Timeline) { .label_mode = LABEL_MINUTE };
        for (int i = 0; i <= 10; i++)
                add_snap(&t, 2021, 3, 8, 6 * i, 0, 0);
        CHECK(strcmp(t.label[t.n - 1], "2021-03-10 12:00") == 0);
        CHECK_OK(lb_duration_parse("36h", &p.within));
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2021-03-09 06:00");
        check_reasons(&p, &t, d, "2021-03-10 12:00", "within 36h");
        free(d);
        CHECK_OK(lb_duration_parse("1d18h", &p.within)); /* 03-08 18:00 */
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2021-03-09 00:00");
        free(d);
        timeline_free(&t);

        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 2021, 2, 1, 28, 12, 0, 0);
        CHECK_OK(lb_duration_parse("2w", &p.within)); /* 02-28 minus 14 days = 02-14 */
        d = apply(&p, &t, NOW);
        check_kept_from(&t, d, "2021-02-15");
        check_reasons(&p, &t, d, "2021-02-15", "within 14d");
        free(d);

        /* A snapshot from the future does not move the reference: now is
         * 2021-02-28 13:00, one snapshot claims 2021-06-01. It is kept. */
        LbSnapshot *future = add_snap(&t, 2021, 6, 1, 12, 0, 0);
        int64_t now = future->time_ns - INT64_C(93) * 86400 * NS + 3600 * NS; /* 2021-02-28 13:00Z */
        CHECK_OK(lb_duration_parse("7d", &p.within));
        d = apply(&p, &t, now);
        check_kept_from(&t, d, "2021-02-22");
        free(d);
        /* Everything in the future: all kept. */
        d = apply(&p, &t, INT64_C(0));
        for (size_t i = 0; i < t.n; i++)
                CHECK(d[i].keep);
        free(d);
        timeline_free(&t);

        /* A duration longer than time itself keeps everything. */
        t = (Timeline) { .label_mode = LABEL_DATE };
        add_daily(&t, 1971, 1, 1, 3, 0, 0, 0);
        CHECK_OK(lb_duration_parse("100000y", &p.within));
        d = apply(&p, &t, NOW);
        for (size_t i = 0; i < t.n; i++)
                CHECK(d[i].keep);
        free(d);
        timeline_free(&t);
}

TEST(test_keep_tag) {
        Timeline t = { .label_mode = LABEL_DATE };
        add_snap(&t, 2024, 6, 1, 0, 0, 0); /* no tags */
        LbSnapshot *s2 = add_snap(&t, 2024, 6, 2, 0, 0, 0);
        push_str(&s2->tags, &s2->n_tags, "monthly");
        LbSnapshot *s3 = add_snap(&t, 2024, 6, 3, 0, 0, 0);
        push_str(&s3->tags, &s3->n_tags, "audit");
        push_str(&s3->tags, &s3->n_tags, "monthly");
        LbSnapshot *s4 = add_snap(&t, 2024, 6, 4, 0, 0, 0);
        push_str(&s4->tags, &s4->n_tags, "audit");
        add_snap(&t, 2024, 6, 5, 0, 0, 0); /* no tags */

        char *monthly[] = { (char *) "monthly" };
        LbPolicy p = { .keep_tags = monthly, .n_keep_tags = 1 };
        LbPolicyDecision *d = apply(&p, &t, NOW);
        check_kept(&t, d, "2024-06-02", "2024-06-03");
        check_reasons(&p, &t, d, "2024-06-03", "has tags [monthly]");
        free(d);

        char *both[] = { (char *) "monthly,audit" };
        p = (LbPolicy) { .keep_tags = both, .n_keep_tags = 1 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2024-06-03");
        check_reasons(&p, &t, d, "2024-06-03", "has tags [monthly, audit]");
        free(d);

        char *untagged[] = { (char *) "" };
        p = (LbPolicy) { .keep_tags = untagged, .n_keep_tags = 1 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2024-06-01", "2024-06-05");
        check_reasons(&p, &t, d, "2024-06-01", "has no tags");
        free(d);

        /* Several lists are ORed; with keep-last, all reasons listed. */
        char *two[] = { (char *) "audit", (char *) "monthly" };
        p = (LbPolicy) { .last = 1, .keep_tags = two, .n_keep_tags = 2 };
        d = apply(&p, &t, NOW);
        check_kept(&t, d, "2024-06-02", "2024-06-03", "2024-06-04", "2024-06-05");
        check_reasons(&p, &t, d, "2024-06-03", "has tags [audit], has tags [monthly]");
        check_reasons(&p, &t, d, "2024-06-05", "last snapshot");
        CHECK_EQ_INT(d[2].tags, 3);
        CHECK_EQ_INT(d[3].tags, 1);
        free(d);

        /* Tags alone can keep nothing (the CLI refuses that). */
        char *none[] = { (char *) "nosuchtag" };
        p = (LbPolicy) { .keep_tags = none, .n_keep_tags = 1 };
        d = apply(&p, &t, NOW);
        for (size_t i = 0; i < t.n; i++)
                CHECK(!d[i].keep && d[i].rules == 0);
        free(d);
        timeline_free(&t);
}

/* ---- grouping ---------------------------------------------------------------------- */

static LbSnapshot *add_source(Timeline *t, int day, const char *host, const char *db, const char *paths,
                              const char *tag) {
        LbSnapshot *s = add_snap(t, 2024, 7, day, 1, 0, CEST);
        free(s->hostname);
        s->hostname = xstrdup(host);
        for (size_t i = 0; i < s->n_paths; i++)
                free(s->paths[i]);
        free(s->paths);
        s->paths = NULL;
        s->n_paths = 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", paths);
        for (char *save = NULL, *p = strtok_r(buf, " ", &save); p; p = strtok_r(NULL, " ", &save))
                push_str(&s->paths, &s->n_paths, p);
        if (db) {
                free(s->source);
                s->source = xstrdup("postgresql");
                LbMeta *m = calloc(2, sizeof *m);
                CHECK(m);
                m[0] = (LbMeta) { .key = xstrdup("pg.server_version"), .value = xstrdup("15.4") };
                m[1] = (LbMeta) { .key = xstrdup("pg.database"), .value = xstrdup(db) };
                s->meta = m;
                s->n_meta = 2;
        }
        if (tag)
                push_str(&s->tags, &s->n_tags, tag);
        return s;
}

static char *key_of(const LbSnapshot *s, unsigned flags) {
        char *k = NULL;
        CHECK_OK(lb_policy_group_key(s, flags, &k));
        return k;
}

#define CHECK_KEY(s, flags, want)                                                               \
        do {                                                                                    \
                char *_k = key_of(s, flags);                                                    \
                if (strcmp(_k, want) != 0) {                                                    \
                        fprintf(stderr, "%s:%d: key '%s', expected '%s'\n", __FILE__, __LINE__, _k, want); \
                        exit(1);                                                                \
                }                                                                               \
                free(_k);                                                                       \
        } while (0)

TEST(test_grouping) {
        Timeline t = { .label_mode = LABEL_DATE };
        /* host a, database shop: the config files were not always readable,
         * so the paths differ; the database is the same. */
        add_source(&t, 1, "a", "shop", "/shop /config", NULL);            /* 0 */
        add_source(&t, 2, "a", "shop", "/shop", NULL);                    /* 1 */
        add_source(&t, 3, "a", "shop", "/shop /config", NULL);            /* 2 */
        add_source(&t, 4, "a", "crm", "/crm /config", NULL);              /* 3 */
        add_source(&t, 5, "a", "crm", "/crm /config", NULL);              /* 4 */
        add_source(&t, 6, "b", "shop", "/shop /config", NULL);            /* 5 */
        add_source(&t, 7, "b", "shop", "/shop /config", NULL);            /* 6 */
        add_source(&t, 8, "a", NULL, "/etc /home", "nightly");            /* 7 files */
        add_source(&t, 9, "a", NULL, "/home /etc", "manual");             /* 8 same paths, other order */
        add_source(&t, 10, "a", NULL, "/etc /home", "nightly");           /* 9 */
        add_source(&t, 11, "b", NULL, "/etc /home", "nightly");           /* 10 */

        CHECK_KEY(t.v[0], LB_POLICY_GROUP_DEFAULT, "host=a database=shop");
        CHECK_KEY(t.v[1], LB_POLICY_GROUP_DEFAULT, "host=a database=shop");
        CHECK_KEY(t.v[8], LB_POLICY_GROUP_DEFAULT, "host=a paths=/etc,/home");
        CHECK_KEY(t.v[0], LB_POLICY_GROUP_PATHS, "paths=/config,/shop");
        CHECK_KEY(t.v[1], LB_POLICY_GROUP_PATHS, "paths=/shop");
        CHECK_KEY(t.v[0], LB_POLICY_GROUP_HOST | LB_POLICY_GROUP_PATHS | LB_POLICY_GROUP_DATABASE,
                  "host=a database=shop paths=/config,/shop");
        CHECK_KEY(t.v[8], LB_POLICY_GROUP_PATHS | LB_POLICY_GROUP_DATABASE, "paths=/etc,/home");
        CHECK_KEY(t.v[8], LB_POLICY_GROUP_TAGS, "tags=manual");
        CHECK_KEY(t.v[0], LB_POLICY_GROUP_TAGS, "tags=");
        CHECK_KEY(t.v[0], 0, "");

        LbPolicyGroup *g = NULL;
        size_t ng = 0;
        CHECK_OK(lb_policy_group(t.v, t.n, LB_POLICY_GROUP_DEFAULT, &g, &ng));
        const struct {
                const char *key;
                size_t members[4];
                size_t n;
        } want[] = {
                { "host=a database=crm", { 3, 4 }, 2 },
                { "host=a database=shop", { 0, 1, 2 }, 3 },
                { "host=a paths=/etc,/home", { 7, 8, 9 }, 3 },
                { "host=b database=shop", { 5, 6 }, 2 },
                { "host=b paths=/etc,/home", { 10 }, 1 },
        };
        CHECK_EQ_INT(ng, LB_ARRAY_SIZE(want));
        for (size_t i = 0; i < ng; i++) {
                CHECK(strcmp(g[i].key, want[i].key) == 0);
                CHECK_EQ_INT(g[i].n_members, want[i].n);
                for (size_t j = 0; j < want[i].n; j++)
                        CHECK_EQ_INT(g[i].members[j], want[i].members[j]);
        }

        /* keep-last 1 in every group: the newest of each, untouched by the
         * others' newer snapshots. */
        LbPolicy p = { .last = 1 };
        bool kept[11] = {};
        for (size_t i = 0; i < ng; i++) {
                LbSnapshot *m[4];
                LbPolicyDecision d[4];
                for (size_t j = 0; j < g[i].n_members; j++)
                        m[j] = t.v[g[i].members[j]];
                CHECK_OK(lb_policy_apply(&p, m, g[i].n_members, NOW, d));
                for (size_t j = 0; j < g[i].n_members; j++)
                        kept[g[i].members[j]] = d[j].keep;
        }
        const bool kept_want[11] = { false, false, true, false, true, false, true, false, false, true, true };
        for (size_t i = 0; i < 11; i++)
                CHECK(kept[i] == kept_want[i]);
        lb_policy_groups_free(g, ng);

        /* By host only; by nothing; by tags. */
        CHECK_OK(lb_policy_group(t.v, t.n, LB_POLICY_GROUP_HOST, &g, &ng));
        CHECK_EQ_INT(ng, 2);
        CHECK(strcmp(g[0].key, "host=a") == 0 && g[0].n_members == 8);
        CHECK(strcmp(g[1].key, "host=b") == 0 && g[1].n_members == 3);
        lb_policy_groups_free(g, ng);
        CHECK_OK(lb_policy_group(t.v, t.n, 0, &g, &ng));
        CHECK(ng == 1 && g[0].n_members == 11 && strcmp(g[0].key, "") == 0);
        lb_policy_groups_free(g, ng);
        CHECK_OK(lb_policy_group(t.v, t.n, LB_POLICY_GROUP_TAGS, &g, &ng));
        CHECK(ng == 3 && strcmp(g[0].key, "tags=") == 0 && g[0].n_members == 7);
        CHECK(strcmp(g[1].key, "tags=manual") == 0 && strcmp(g[2].key, "tags=nightly") == 0);
        lb_policy_groups_free(g, ng);
        CHECK_OK(lb_policy_group(NULL, 0, LB_POLICY_GROUP_DEFAULT, &g, &ng));
        CHECK_EQ_INT(ng, 0);
        lb_policy_groups_free(g, ng);

        /* Keys are unambiguous: separators inside values are escaped. */
        LbSnapshot *odd = add_source(&t, 12, "my host,1=x\\", NULL, "/a,b /c", NULL);
        push_str(&odd->tags, &odd->n_tags, "t\tab");
        CHECK_KEY(odd, LB_POLICY_GROUP_HOST | LB_POLICY_GROUP_PATHS | LB_POLICY_GROUP_TAGS,
                  "host=my\\ host\\,1\\=x\\\\ paths=/a\\,b,/c tags=t\\x09ab");
        free(odd->hostname);
        odd->hostname = NULL;
        CHECK_KEY(odd, LB_POLICY_GROUP_HOST, "host=");
        timeline_free(&t);

        unsigned f = 99;
        CHECK_OK(lb_policy_group_parse("host,paths", &f));
        CHECK_EQ_INT(f, LB_POLICY_GROUP_HOST | LB_POLICY_GROUP_PATHS);
        CHECK_OK(lb_policy_group_parse("", &f));
        CHECK_EQ_INT(f, 0);
        CHECK_OK(lb_policy_group_parse("source,tags", &f));
        CHECK_EQ_INT(f, LB_POLICY_GROUP_DATABASE | LB_POLICY_GROUP_TAGS);
        CHECK_OK(lb_policy_group_parse("host,database", &f));
        CHECK_EQ_INT(f, LB_POLICY_GROUP_DEFAULT);
        f = 99;
        CHECK_EQ_INT(lb_policy_group_parse("hosts", &f), -EINVAL);
        CHECK_EQ_INT(lb_policy_group_parse("host,", &f), -EINVAL);
        CHECK_EQ_INT(lb_policy_group_parse(",host", &f), -EINVAL);
        CHECK_EQ_INT(lb_policy_group_parse("host,,paths", &f), -EINVAL);
        CHECK_EQ_INT(lb_policy_group_parse("Host", &f), -EINVAL);
        CHECK_EQ_INT(f, 99);
}

int main(void) {
        RUN(test_duration_parse);
        RUN(test_empty_policy_refused);
        RUN(test_500_days);
        RUN(test_iso_weeks);
        RUN(test_dst);
        RUN(test_default_policy);
        RUN(test_keep_last_and_unlimited);
        RUN(test_keep_within);
        RUN(test_keep_tag);
        RUN(test_grouping);
        return 0;
}
