/* SPDX-License-Identifier: MIT */
/*
 * The schedule of a whole-database restore (load.h "the schedule of a
 * whole-database restore"): which post-data blocks run beside the table
 * data, what each item waits for, and which relations it locks. Pure:
 * the graph is planned from the snapshot's layout and post-data.sql
 * alone, and run by load.c.
 *
 * Safety rules, each erring towards the final script (which runs after
 * every item, in pg_dump's order, as before):
 *  - an INDEX or CONSTRAINT block on a table with rows waits for that
 *    table's COPY; one on any other relation (a materialized view, a
 *    partitioned table) or whose relation cannot be read waits for every
 *    COPY;
 *  - a FK CONSTRAINT block runs as an item only when it is "ALTER TABLE
 *    ONLY a ... REFERENCES b" with both a and b tables with rows, and no
 *    INDEX or CONSTRAINT block had a relation that could not be read (the
 *    unique index a foreign key needs is then surely one of the blocks it
 *    waits for); it waits for both COPYs and every INDEX and CONSTRAINT
 *    block of a and b;
 *  - ANALYZE of a table waits for its COPY and its own INDEX and
 *    CONSTRAINT blocks (expression indexes have statistics); none runs
 *    early when post-data creates extended statistics (CREATE STATISTICS,
 *    in the final script) or has an unreadable INDEX or CONSTRAINT
 *    block, nor for the tables the caller names (inheritance parents).
 */
#include "store/pg/load.h"

#define CLASS_SHIFT 60
#define PRIO(class, size) (((uint64_t) (class) << CLASS_SHIFT) | LB_MIN((uint64_t) (size), ((uint64_t) 1 << CLASS_SHIFT) - 1))

/* Priority classes: setup first, then the work by size, ANALYZE to fill. */
enum { CLASS_ANALYZE, CLASS_WORK, CLASS_SETUP };

void lb_pg_schedule_clear(LbPgSchedule *s) {
        for (size_t i = 0; s->items && i < s->n_items; i++)
                free(s->items[i].deps);
        free(s->items);
        free(s->rest);
        free(s->analyzed);
        *s = (LbPgSchedule) {};
}

/* Relations without rows of their own (in the layout), by name. */
typedef struct Others {
        char **schema, **name;
        size_t n, cap;
} Others;

static void others_clear(Others *o) {
        for (size_t i = 0; i < o->n; i++) {
                free(o->schema[i]);
                free(o->name[i]);
        }
        free(o->schema);
        free(o->name);
}

/* The relation id of schema.name: its layout index, or n_tables + its
 * place among the others. */
static int rel_id(const LbPgLayout *l, Others *o, const char *schema, const char *name, size_t *ret) {
        const LbPgTableFile *t = lb_pg_layout_find_table(l, schema, name);
        if (t) {
                *ret = (size_t) (t - l->tables);
                return 0;
        }
        for (size_t i = 0; i < o->n; i++)
                if (strcmp(o->schema[i], schema) == 0 && strcmp(o->name[i], name) == 0) {
                        *ret = l->n_tables + i;
                        return 0;
                }
        if (o->n == o->cap) {
                size_t nc = o->cap ? 2 * o->cap : 16;
                char **ns = realloc(o->schema, nc * sizeof *ns);
                if (!ns)
                        return -ENOMEM;
                o->schema = ns;
                char **nn = realloc(o->name, nc * sizeof *nn);
                if (!nn)
                        return -ENOMEM;
                o->name = nn;
                o->cap = nc;
        }
        char *s = strdup(schema), *n = strdup(name);
        if (!s || !n) {
                free(s);
                free(n);
                return -ENOMEM;
        }
        o->schema[o->n] = s;
        o->name[o->n] = n;
        *ret = l->n_tables + o->n++;
        return 0;
}

typedef struct Builder {
        LbPgSchedule s;
        size_t cap;
} Builder;

static int add_item(Builder *b, LbPgItem it, size_t *ret) {
        if (b->s.n_items == b->cap) {
                size_t nc = b->cap ? 2 * b->cap : 64;
                LbPgItem *ni = realloc(b->s.items, nc * sizeof *ni);
                if (!ni)
                        return -ENOMEM;
                b->s.items = ni;
                b->cap = nc;
        }
        if (it.n_deps > 0 && !it.deps)
                return -ENOMEM;
        b->s.items[b->s.n_items] = it;
        if (ret)
                *ret = b->s.n_items;
        b->s.n_items++;
        return 0;
}

static bool is_build(const LbPgSqlBlock *b) {
        return strcmp(b->type, "INDEX") == 0 || strcmp(b->type, "CONSTRAINT") == 0;
}

int lb_pg_schedule_new(const LbPgLayout *l, const char *post, size_t post_len, const LbPgSqlScript *sc,
                       const bool *no_analyze, bool with_sequences, bool with_los, LbPgSchedule *ret) {
        const size_t nt = l->n_tables, nb = sc->n_blocks;
        Builder b = {};
        Others others = {};
        LbPgBlockTarget *targets = calloc(nb ? nb : 1, sizeof *targets);
        bool *parsed = calloc(nb ? nb : 1, sizeof *parsed);
        size_t *copy = calloc(nt ? nt : 1, sizeof *copy);
        size_t *build_rel = calloc(nb ? nb : 1, sizeof *build_rel);   /* per block; LB_PG_NO_REL if none */
        size_t *per_table = calloc(nt + 1, sizeof *per_table);       /* CSR offsets of builds per table */
        size_t *by_table = calloc(nb ? nb : 1, sizeof *by_table);     /* build item ids, grouped by table */
        b.s.rest = calloc(nb ? nb : 1, sizeof *b.s.rest);
        b.s.analyzed = calloc(nt ? nt : 1, sizeof *b.s.analyzed);
        int k = targets && parsed && copy && build_rel && per_table && by_table && b.s.rest && b.s.analyzed
                ? 0 : -ENOMEM;
        bool unknown = false, statistics = false;

        /* What each block acts on. */
        for (size_t i = 0; i < nb && k == 0; i++) {
                const LbPgSqlBlock *bl = &sc->blocks[i];
                build_rel[i] = LB_PG_NO_REL;
                b.s.rest[i] = true;
                if (strcmp(bl->type, "STATISTICS") == 0)
                        statistics = true;
                if (!is_build(bl) && strcmp(bl->type, "FK CONSTRAINT") != 0)
                        continue;
                k = lb_pg_block_target(post + bl->offset, LB_MIN(bl->len, post_len - bl->offset), &targets[i]);
                if (k == -EINVAL) {
                        k = 0;
                        unknown |= is_build(bl);
                        continue;
                }
                if (k < 0)
                        break;
                parsed[i] = true;
                if (is_build(bl))
                        k = rel_id(l, &others, targets[i].schema, targets[i].name, &build_rel[i]);
        }

        /* Setup items, then one COPY per table and the barrier after them. */
        if (k == 0 && with_sequences)
                k = add_item(&b, (LbPgItem) { .kind = LB_PG_ITEM_SEQUENCES, .rel = { LB_PG_NO_REL, LB_PG_NO_REL },
                                              .priority = PRIO(CLASS_SETUP, 0) }, NULL);
        if (k == 0 && with_los) {
                uint64_t bytes = 0;
                for (size_t i = 0; i < l->n_los; i++)
                        bytes += l->los[i].node.size;
                k = add_item(&b, (LbPgItem) { .kind = LB_PG_ITEM_LOS, .rel = { LB_PG_NO_REL, LB_PG_NO_REL },
                                              .priority = PRIO(CLASS_WORK, bytes) }, NULL);
        }
        for (size_t t = 0; t < nt && k == 0; t++)
                k = add_item(&b, (LbPgItem) { .kind = LB_PG_ITEM_COPY, .table = t, .rel = { t, LB_PG_NO_REL },
                                              .priority = PRIO(CLASS_WORK, l->tables[t].node.size) }, &copy[t]);
        size_t barrier = 0;
        if (k == 0) {
                LbPgItem it = { .kind = LB_PG_ITEM_BARRIER, .rel = { LB_PG_NO_REL, LB_PG_NO_REL },
                                .priority = PRIO(CLASS_SETUP, 0), .n_deps = nt,
                                .deps = nt ? malloc(nt * sizeof(size_t)) : NULL };
                if (it.deps)
                        memcpy(it.deps, copy, nt * sizeof(size_t));
                k = add_item(&b, it, &barrier);
                if (k < 0)
                        free(it.deps);
        }

        /* Index and constraint builds. */
        for (size_t i = 0; i < nb && k == 0; i++) {
                const LbPgSqlBlock *bl = &sc->blocks[i];
                if (!is_build(bl))
                        continue;
                size_t rel = build_rel[i];
                bool has_rows = rel < nt;
                LbPgItem it = { .kind = LB_PG_ITEM_BUILD, .block = i, .rel = { rel, LB_PG_NO_REL },
                                .shared = strcmp(bl->type, "INDEX") == 0,
                                .priority = PRIO(CLASS_WORK, has_rows ? l->tables[rel].node.size : 0),
                                .n_deps = 1, .deps = malloc(sizeof(size_t)) };
                if (it.deps)
                        it.deps[0] = has_rows ? copy[rel] : barrier;
                size_t id;
                if ((k = add_item(&b, it, &id)) < 0) {
                        free(it.deps);
                        break;
                }
                b.s.rest[i] = false;
                if (has_rows)
                        per_table[rel + 1]++;
        }
        /* The builds of each table with rows, grouped (CSR). */
        for (size_t t = 0; t < nt; t++)
                per_table[t + 1] += per_table[t];
        if (k == 0) {
                _cleanup_free_ size_t *fill = calloc(nt ? nt : 1, sizeof *fill);
                if (!fill)
                        k = -ENOMEM;
                for (size_t i = 0; i < b.s.n_items && k == 0; i++) {
                        const LbPgItem *it = &b.s.items[i];
                        if (it->kind == LB_PG_ITEM_BUILD && it->rel[0] < nt)
                                by_table[per_table[it->rel[0]] + fill[it->rel[0]]++] = i;
                }
        }

        /* Foreign keys between tables with rows. */
        for (size_t i = 0; i < nb && k == 0 && !unknown; i++) {
                const LbPgSqlBlock *bl = &sc->blocks[i];
                const LbPgBlockTarget *x = &targets[i];
                if (strcmp(bl->type, "FK CONSTRAINT") != 0 || !parsed[i] || !x->only || !x->ref_schema)
                        continue;
                const LbPgTableFile *ta = lb_pg_layout_find_table(l, x->schema, x->name);
                const LbPgTableFile *tb = lb_pg_layout_find_table(l, x->ref_schema, x->ref_name);
                if (!ta || !tb)
                        continue;
                size_t a = (size_t) (ta - l->tables), r = (size_t) (tb - l->tables);
                size_t na = per_table[a + 1] - per_table[a], nr = a == r ? 0 : per_table[r + 1] - per_table[r];
                LbPgItem it = { .kind = LB_PG_ITEM_FK, .block = i, .rel = { a, a == r ? LB_PG_NO_REL : r },
                                .priority = PRIO(CLASS_WORK, ta->node.size + (a == r ? 0 : tb->node.size)),
                                .n_deps = 2 + na + nr };
                it.deps = malloc(it.n_deps * sizeof(size_t));
                if (it.deps) {
                        it.deps[0] = copy[a];
                        it.deps[1] = copy[r];
                        memcpy(it.deps + 2, by_table + per_table[a], na * sizeof(size_t));
                        memcpy(it.deps + 2 + na, by_table + per_table[r], nr * sizeof(size_t));
                }
                if ((k = add_item(&b, it, NULL)) < 0) {
                        free(it.deps);
                        break;
                }
                b.s.rest[i] = false;
        }

        /* ANALYZE per table, as soon as its indexes are built. */
        for (size_t t = 0; t < nt && k == 0 && !unknown && !statistics; t++) {
                if (no_analyze && no_analyze[t])
                        continue;
                size_t n = per_table[t + 1] - per_table[t];
                LbPgItem it = { .kind = LB_PG_ITEM_ANALYZE, .table = t, .rel = { t, LB_PG_NO_REL },
                                .priority = PRIO(CLASS_ANALYZE, l->tables[t].node.size), .n_deps = 1 + n };
                it.deps = malloc(it.n_deps * sizeof(size_t));
                if (it.deps) {
                        it.deps[0] = copy[t];
                        memcpy(it.deps + 1, by_table + per_table[t], n * sizeof(size_t));
                }
                if ((k = add_item(&b, it, NULL)) < 0) {
                        free(it.deps);
                        break;
                }
                b.s.analyzed[t] = true;
        }

        for (size_t i = 0; targets && i < nb; i++)
                lb_pg_block_target_clear(&targets[i]);
        free(targets);
        free(parsed);
        free(copy);
        free(build_rel);
        free(per_table);
        free(by_table);
        others_clear(&others);
        if (k < 0) {
                lb_pg_schedule_clear(&b.s);
                return k;
        }
        *ret = b.s;
        return 0;
}
