/* SPDX-License-Identifier: MIT */
/*
 * Reading the layout of a PostgreSQL snapshot (docs/design.md "PostgreSQL
 * snapshots"): which directory holds the database, its schema files, and
 * the data and large-object files with their metadata. File names are
 * for people; the metadata is what counts.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "store/pg/dump.h"
#include "store/pg/load.h"
#include "store/walk.h"

static int set_error(char **ret_error, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_error(char **ret_error, int k, const char *fmt, ...) {
        if (ret_error) {
                va_list ap;
                va_start(ap, fmt);
                char *m = lb_strdup_vprintf(fmt, ap);
                va_end(ap);
                free(*ret_error);
                *ret_error = m;
        }
        return k;
}

static const char *node_meta(const LbNode *n, const char *key) {
        return lb_meta_get(n->meta, n->n_meta, key);
}

static bool parse_u64(const char *s, uint64_t *ret) {
        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return false;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end)
                return false;
        *ret = v;
        return true;
}

LbPgLayout *lb_pg_layout_free(LbPgLayout *l) {
        if (!l)
                return NULL;
        free(l->database);
        free(l->dir);
        lb_node_clear(&l->pre_data);
        lb_node_clear(&l->post_data);
        lb_node_clear(&l->sequences);
        lb_node_clear(&l->database_sql);
        lb_node_clear(&l->globals);
        for (size_t i = 0; i < l->n_tables; i++) {
                free(l->tables[i].schema);
                free(l->tables[i].table);
                free(l->tables[i].columns);
                lb_node_clear(&l->tables[i].node);
        }
        free(l->tables);
        for (size_t i = 0; i < l->n_los; i++)
                lb_node_clear(&l->los[i].node);
        free(l->los);
        free(l);
        return NULL;
}

static void layout_freep(LbPgLayout **l) {
        lb_pg_layout_free(*l);
}

static int cmp_table(const void *a, const void *b) {
        const LbPgTableFile *x = a, *y = b;
        int c = strcmp(x->schema, y->schema);
        return c ? c : strcmp(x->table, y->table);
}

static int cmp_lo(const void *a, const void *b) {
        const LbPgLargeObject *x = a, *y = b;
        return x->oid < y->oid ? -1 : x->oid > y->oid;
}

/* An optional regular file of the database directory. */
static int schema_file(const LbTree *t, const char *dir, const char *name, bool required, bool *has, LbNode *ret,
                       char **ret_error) {
        const LbNode *n = lb_tree_find(t, name);
        if (!n) {
                if (required)
                        return set_error(ret_error, -EBADMSG, "the snapshot has no %s/%s", dir, name);
                if (has)
                        *has = false;
                return 0;
        }
        if (n->type != LB_NODE_FILE)
                return set_error(ret_error, -EBADMSG, "%s/%s in the snapshot is not a regular file", dir, name);
        int k = lb_node_copy(n, ret);
        if (k < 0)
                return k;
        if (has)
                *has = true;
        return 0;
}

static int load_subdir(LbRepo *r, const LbTree *t, const char *name, LbTree **ret) {
        const LbNode *n = lb_tree_find(t, name);
        *ret = NULL;
        if (!n || n->type != LB_NODE_DIR || !n->has_subtree)
                return 0;
        return lb_repo_load_tree(r, &n->subtree, ret);
}

static int load_tables(LbPgLayout *l, const LbTree *data, char **ret_error) {
        if (!data || data->n == 0)
                return 0;
        l->tables = calloc(data->n, sizeof *l->tables);
        if (!l->tables)
                return -ENOMEM;
        for (size_t i = 0; i < data->n; i++) {
                const LbNode *n = &data->nodes[i];
                if (n->type != LB_NODE_FILE)
                        return set_error(ret_error, -EBADMSG, "%s/data/%s in the snapshot is not a regular file",
                                         l->dir, n->name);
                const char *schema = node_meta(n, "pg.schema"), *table = node_meta(n, "pg.table"),
                           *columns = node_meta(n, "pg.columns"), *rows = node_meta(n, "pg.rows");
                const char *missing = !schema ? "pg.schema" : !table ? "pg.table" : !columns ? "pg.columns"
                                    : !rows ? "pg.rows" : !n->has_xxh3 ? "its checksum (XXH3)" : NULL;
                if (missing)
                        return set_error(ret_error, -EBADMSG, "%s/data/%s in the snapshot lacks %s", l->dir,
                                         n->name, missing);
                LbPgTableFile *tf = &l->tables[l->n_tables];
                if (!parse_u64(rows, &tf->rows))
                        return set_error(ret_error, -EBADMSG, "%s/data/%s in the snapshot has a bad pg.rows \"%s\"",
                                         l->dir, n->name, rows);
                if (!lb_pg_columns_valid(columns))
                        return set_error(ret_error, -EBADMSG,
                                         "%s/data/%s in the snapshot has a malformed column list (pg.columns)",
                                         l->dir, n->name);
                tf->schema = strdup(schema);
                tf->table = strdup(table);
                tf->columns = strdup(columns);
                if (!tf->schema || !tf->table || !tf->columns) {
                        free(tf->schema);
                        free(tf->table);
                        free(tf->columns);
                        return -ENOMEM;
                }
                l->n_tables++;
                int k = lb_node_copy(n, &tf->node);
                if (k < 0)
                        return k;
        }
        lb_qsort(l->tables, l->n_tables, sizeof *l->tables, cmp_table);
        for (size_t i = 1; i < l->n_tables; i++)
                if (cmp_table(&l->tables[i - 1], &l->tables[i]) == 0)
                        return set_error(ret_error, -EBADMSG, "the snapshot has two data files for %s.%s",
                                         l->tables[i].schema, l->tables[i].table);
        return 0;
}

static int load_los(LbPgLayout *l, const LbTree *los, char **ret_error) {
        if (!los || los->n == 0)
                return 0;
        l->los = calloc(los->n, sizeof *l->los);
        if (!l->los)
                return -ENOMEM;
        for (size_t i = 0; i < los->n; i++) {
                const LbNode *n = &los->nodes[i];
                const char *oid = node_meta(n, "pg.oid");
                uint64_t v;
                if (n->type != LB_NODE_FILE)
                        return set_error(ret_error, -EBADMSG,
                                         "%s/large-objects/%s in the snapshot is not a regular file", l->dir, n->name);
                if (!parse_u64(oid ? oid : n->name, &v) || v == 0 || v > UINT32_MAX)
                        return set_error(ret_error, -EBADMSG,
                                         "%s/large-objects/%s in the snapshot has no valid oid", l->dir, n->name);
                LbPgLargeObject *lo = &l->los[l->n_los++];
                lo->oid = (uint32_t) v;
                int k = lb_node_copy(n, &lo->node);
                if (k < 0)
                        return k;
        }
        lb_qsort(l->los, l->n_los, sizeof *l->los, cmp_lo);
        for (size_t i = 1; i < l->n_los; i++)
                if (l->los[i - 1].oid == l->los[i].oid)
                        return set_error(ret_error, -EBADMSG, "the snapshot has large object %" PRIu32 " twice",
                                         l->los[i].oid);
        return 0;
}

int lb_pg_layout_load(LbRepo *r, const LbSnapshot *s, LbPgLayout **ret, char **ret_error) {
        char sid[9];
        lb_hex_encode(s->id.b, 4, sid);
        if (!s->source || strcmp(s->source, "postgresql") != 0)
                return set_error(ret_error, -EMEDIUMTYPE,
                                 "snapshot %s is not a PostgreSQL snapshot (its source is \"%s\"); restore its files "
                                 "with --target DIR",
                                 sid, s->source ? s->source : "files");

        _cleanup_tree_ LbTree *root = NULL;
        int k = lb_repo_load_tree(r, &s->tree, &root);
        if (k < 0)
                return set_error(ret_error, k, "reading the root of snapshot %s failed: %s", sid, strerror(-k));

        /* The directory pg.database names (escaped as the backup names
         * files), else the only top-level directory but /config. */
        const LbNode *dbdir = NULL;
        const char *dbname = lb_snapshot_meta(s, "pg.database");
        if (dbname) {
                _cleanup_free_ char *esc = lb_pg_file_name(dbname, NULL);
                if (!esc)
                        return -ENOMEM;
                dbdir = lb_tree_find(root, esc);
                if (dbdir && dbdir->type != LB_NODE_DIR)
                        dbdir = NULL;
        }
        if (!dbdir) {
                for (size_t i = 0; i < root->n; i++) {
                        const LbNode *n = &root->nodes[i];
                        if (n->type != LB_NODE_DIR || strcmp(n->name, "config") == 0)
                                continue;
                        if (dbdir)
                                return set_error(ret_error, -EBADMSG,
                                                 "snapshot %s holds two database directories (/%s and /%s) and no "
                                                 "pg.database to choose",
                                                 sid, dbdir->name, n->name);
                        dbdir = n;
                }
                if (!dbdir && dbname)
                        return set_error(ret_error, -EBADMSG, "snapshot %s has no directory for database %s", sid,
                                         dbname);
                if (!dbdir)
                        return set_error(ret_error, -EBADMSG, "snapshot %s holds no database directory", sid);
        }
        if (!dbdir->has_subtree)
                return set_error(ret_error, -EBADMSG, "/%s in snapshot %s is empty", dbdir->name, sid);

        _cleanup_(layout_freep) LbPgLayout *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->dir = lb_strdup_printf("/%s", dbdir->name);
        l->database = strdup(dbname ? dbname : dbdir->name);
        if (!l->dir || !l->database)
                return -ENOMEM;

        _cleanup_tree_ LbTree *db = NULL;
        k = lb_repo_load_tree(r, &dbdir->subtree, &db);
        if (k < 0)
                return set_error(ret_error, k, "reading %s of snapshot %s failed: %s", l->dir, sid, strerror(-k));
        if ((k = schema_file(db, l->dir, "pre-data.sql", true, NULL, &l->pre_data, ret_error)) < 0 ||
            (k = schema_file(db, l->dir, "post-data.sql", true, NULL, &l->post_data, ret_error)) < 0 ||
            (k = schema_file(db, l->dir, "sequences.sql", false, &l->has_sequences, &l->sequences, ret_error)) < 0 ||
            (k = schema_file(db, l->dir, "database.sql", false, &l->has_database_sql, &l->database_sql, ret_error)) <
                    0 ||
            (k = schema_file(db, l->dir, "globals.sql", false, &l->has_globals, &l->globals, ret_error)) < 0)
                return k;

        _cleanup_tree_ LbTree *data = NULL;
        k = load_subdir(r, db, "data", &data);
        if (k < 0)
                return set_error(ret_error, k, "reading %s/data of snapshot %s failed: %s", l->dir, sid, strerror(-k));
        if ((k = load_tables(l, data, ret_error)) < 0)
                return k;
        _cleanup_tree_ LbTree *los = NULL;
        k = load_subdir(r, db, "large-objects", &los);
        if (k < 0)
                return set_error(ret_error, k, "reading %s/large-objects of snapshot %s failed: %s", l->dir, sid,
                                 strerror(-k));
        if ((k = load_los(l, los, ret_error)) < 0)
                return k;

        *ret = LB_TAKE_PTR(l);
        return 0;
}

typedef struct Collect {
        LbBuf *b;
        size_t max;
} Collect;

static int collect(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        Collect *c = userdata;
        if (c->b->len + n > c->max)
                return -EFBIG;
        return lb_buf_append(c->b, p, n);
}

int lb_pg_layout_read(LbRepo *r, const LbNode *file, size_t max, LbBuf *ret) {
        if (file->size > max)
                return -EFBIG;
        LbBuf b = {};
        Collect c = { &b, max };
        int k = file->size > 0 ? lb_content_foreach(r, file, collect, &c) : 0;
        if (k < 0) {
                lb_buf_free(&b);
                return k;
        }
        lb_buf_free(ret);
        *ret = b;
        return 0;
}

const LbPgTableFile *lb_pg_layout_find_table(const LbPgLayout *l, const char *schema, const char *table) {
        LbPgTableFile key = { .schema = (char *) schema, .table = (char *) table };
        return lb_bsearch(&key, l->tables, l->n_tables, sizeof *l->tables, cmp_table);
}
