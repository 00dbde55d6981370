/* SPDX-License-Identifier: MIT */
/* Restore of PostgreSQL snapshots without a server: the SQL text helpers
 * (pg_dump block splitter, identifiers, database renaming, statements,
 * setval targets), the layout reader, and the plain SQL script of
 * lb_pg_restore_sql with its verification, on snapshots built here. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>

#include "store/builder.h"
#include "store/crypto.h"
#include "store/chunkcache.h"
#include "store/pg/load.h"
#include "store/walk.h"
#include "tests.h"

static const char pre_sql[] =
        "--\n"
        "-- PostgreSQL database dump\n"
        "--\n"
        "\n"
        "\\restrict KEY\n"
        "\n"
        "SET statement_timeout = 0;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\n"
        "\n"
        "--\n"
        "-- Name: shop; Type: SCHEMA; Schema: -; Owner: postgres\n"
        "--\n"
        "\n"
        "CREATE SCHEMA shop;\n"
        "\n"
        "--\n"
        "-- Name: orders; Type: TABLE; Schema: shop; Owner: postgres\n"
        "--\n"
        "\n"
        "CREATE TABLE shop.orders (\n"
        "    id integer NOT NULL,\n"
        "    note text\n"
        ");\n"
        "\n"
        "--\n"
        "-- Name: orders_id_seq; Type: SEQUENCE; Schema: shop; Owner: postgres\n"
        "--\n"
        "\n"
        "CREATE SEQUENCE shop.orders_id_seq;\n"
        "\n"
        "--\n"
        "-- Name: orders_id_seq; Type: SEQUENCE OWNED BY; Schema: shop; Owner: postgres\n"
        "--\n"
        "\n"
        "ALTER SEQUENCE shop.orders_id_seq OWNED BY shop.orders.id;\n"
        "\n"
        "--\n"
        "-- Name: counts; Type: MATERIALIZED VIEW; Schema: shop; Owner: postgres; Tablespace: fast\n"
        "--\n"
        "\n"
        "CREATE MATERIALIZED VIEW shop.counts AS SELECT 1 WITH NO DATA;\n"
        "\n"
        "--\n"
        "-- Name: 4242; Type: BLOB; Schema: -; Owner: postgres\n"
        "--\n"
        "\n"
        "SELECT pg_catalog.lo_create('4242');\n"
        "\n"
        "--\n"
        "-- PostgreSQL database dump complete\n"
        "--\n"
        "\n"
        "\\unrestrict KEY\n"
        "\n";

TEST(test_split) {
        LbPgSqlScript s;
        CHECK_OK(lb_pg_sql_split(pre_sql, strlen(pre_sql), &s));
        CHECK_EQ_INT(s.n_blocks, 6);
        const char *names[] = { "shop", "orders", "orders_id_seq", "orders_id_seq", "counts", "4242" };
        const char *types[] = { "SCHEMA", "TABLE", "SEQUENCE", "SEQUENCE OWNED BY", "MATERIALIZED VIEW", "BLOB" };
        for (size_t i = 0; i < 6; i++) {
                CHECK(strcmp(s.blocks[i].name, names[i]) == 0);
                CHECK(strcmp(s.blocks[i].type, types[i]) == 0);
                /* The Tablespace field (counts) is not part of the owner. */
                CHECK(strcmp(s.blocks[i].owner, "postgres") == 0);
                /* Blocks start at the "--" line and tile the script. */
                CHECK(strncmp(pre_sql + s.blocks[i].offset, "--\n-- Name: ", 12) == 0);
                CHECK(s.blocks[i].offset + s.blocks[i].len ==
                      (i + 1 < 6 ? s.blocks[i + 1].offset : s.trailer_offset));
        }
        CHECK(strcmp(s.blocks[0].schema, "-") == 0 && strcmp(s.blocks[1].schema, "shop") == 0);
        /* The Tablespace field is the header's last one. */
        for (size_t i = 0; i < 6; i++)
                CHECK(i == 4 ? s.blocks[i].tablespace && strcmp(s.blocks[i].tablespace, "fast") == 0
                             : s.blocks[i].tablespace == NULL);
        CHECK(strncmp(pre_sql + s.preamble_len, "--\n-- Name: shop;", 17) == 0);
        CHECK(strncmp(pre_sql + s.trailer_offset, "--\n-- PostgreSQL database dump complete", 39) == 0);
        CHECK(strstr(pre_sql + s.trailer_offset, "\\unrestrict KEY"));
        lb_pg_sql_script_clear(&s);

        /* No headers: all preamble; an empty script. */
        CHECK_OK(lb_pg_sql_split("SELECT 1;\n", 10, &s));
        CHECK(s.n_blocks == 0 && s.preamble_len == 10 && s.trailer_offset == 10);
        lb_pg_sql_script_clear(&s);
        CHECK_OK(lb_pg_sql_split("", 0, &s));
        CHECK(s.n_blocks == 0 && s.preamble_len == 0);
        lb_pg_sql_script_clear(&s);
        /* A header on the last line, without a newline. */
        CHECK_OK(lb_pg_sql_split("--\n-- Name: x; Type: TABLE", 26, &s));
        CHECK(s.n_blocks == 1 && strcmp(s.blocks[0].type, "TABLE") == 0 && strcmp(s.blocks[0].schema, "") == 0);
        CHECK(s.blocks[0].offset == 0 && s.blocks[0].len == 26);
        lb_pg_sql_script_clear(&s);
}

TEST(test_idents) {
        _cleanup_free_ char *a = lb_pg_ident_quote("plain");
        _cleanup_free_ char *b = lb_pg_ident_quote("we\"ird.name");
        _cleanup_free_ char *c = lb_pg_ident_qualified("Odd Schema", "t");
        CHECK(strcmp(a, "\"plain\"") == 0);
        CHECK(strcmp(b, "\"we\"\"ird.name\"") == 0);
        CHECK(strcmp(c, "\"Odd Schema\".\"t\"") == 0);

        struct {
                const char *in, *schema, *name;
        } ok[] = {
                { "orders", "public", "orders" },
                { "Shop.Orders", "shop", "orders" },
                { "\"Shop\".\"Or\"\"ders\"", "Shop", "Or\"ders" },
                { "\"a.b\".c", "a.b", "c" },
                { " shop . orders ", "shop", "orders" },
                { "\"Mixed Case\"", "public", "Mixed Case" },
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(ok); i++) {
                char *s = NULL, *n = NULL;
                CHECK_OK(lb_pg_parse_qualified(ok[i].in, "public", &s, &n));
                CHECK(strcmp(s, ok[i].schema) == 0 && strcmp(n, ok[i].name) == 0);
                free(s);
                free(n);
        }
        const char *bad[] = { "", "a.b.c", "\"unterminated", "a.", ".b", "\"\"", "a\"b\"", "\"a\"b" };
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++) {
                char *s = NULL, *n = NULL;
                CHECK(lb_pg_parse_qualified(bad[i], "public", &s, &n) == -EINVAL);
        }

        CHECK(lb_pg_columns_valid(""));
        CHECK(lb_pg_columns_valid("\"id\", \"name\""));
        CHECK(lb_pg_columns_valid("id, \"we\"\"ird\",x$1"));
        CHECK(!lb_pg_columns_valid("id); DROP TABLE x; --"));
        CHECK(!lb_pg_columns_valid("\"id\" \"name\""));
        CHECK(!lb_pg_columns_valid("\"id\","));
        CHECK(!lb_pg_columns_valid("\"\""));
        CHECK(!lb_pg_columns_valid("\"unterminated"));
        CHECK(!lb_pg_columns_valid("1abc"));
}

TEST(test_rename_database) {
        struct {
                const char *in, *out;
                unsigned count;
        } v[] = {
                { "CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8'",
                  "CREATE DATABASE \"new db\" WITH TEMPLATE = template0 ENCODING = 'UTF8'", 1 },
                { "ALTER DATABASE shop SET search_path TO 'shop'", "ALTER DATABASE \"new db\" SET search_path TO 'shop'",
                  1 },
                { "COMMENT ON DATABASE shop IS 'DATABASE shop'", "COMMENT ON DATABASE \"new db\" IS 'DATABASE shop'", 1 },
                { "GRANT CONNECT ON DATABASE \"shop\" TO app", "GRANT CONNECT ON DATABASE \"new db\" TO app", 1 },
                { "ALTER ROLE app IN DATABASE SHOP SET work_mem TO '1MB'",
                  "ALTER ROLE app IN DATABASE \"new db\" SET work_mem TO '1MB'", 1 },
                { "ALTER DATABASE shopping OWNER TO x", "ALTER DATABASE shopping OWNER TO x", 0 },
                { "ALTER DATABASE \"Shop\" OWNER TO x", "ALTER DATABASE \"Shop\" OWNER TO x", 0 },
                { "UPDATE pg_catalog.pg_database SET datistemplate = true WHERE datname = 'shop'",
                  "UPDATE pg_catalog.pg_database SET datistemplate = true WHERE datname = 'shop'", 0 },
                { "ALTER DATABASE /* c */ shop -- x\n SET a = 1", "ALTER DATABASE /* c */ \"new db\" -- x\n SET a = 1", 1 },
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(v); i++) {
                char *out = NULL;
                unsigned count = 99;
                CHECK_OK(lb_pg_sql_rename_database(v[i].in, "shop", "new db", &out, &count));
                if (strcmp(out, v[i].out) != 0)
                        fprintf(stderr, "got: %s\n", out);
                CHECK(strcmp(out, v[i].out) == 0);
                CHECK_EQ_INT(count, v[i].count);
                free(out);
        }
        /* A quoted source name with a quote in it. */
        char *out = NULL;
        CHECK_OK(lb_pg_sql_rename_database("ALTER DATABASE \"a\"\"b\" SET x = 1", "a\"b", "c", &out, NULL));
        CHECK(strcmp(out, "ALTER DATABASE \"c\" SET x = 1") == 0);
        free(out);
}

TEST(test_statements) {
        static const char sql[] =
                "-- leading comment\n"
                "SET a = 1;\n"
                "\\connect shop\n"
                "SELECT 'x;y', \"q;\", $$a;b$$, $t$c;$t$, E'\\';' ; /* ; */\n"
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n"
                "   \n"
                "; ;\n"
                "SELECT 2";
        char **v = NULL;
        size_t n = 0;
        CHECK_OK(lb_pg_sql_statements(sql, strlen(sql), &v, &n));
        CHECK_EQ_INT(n, 5);
        CHECK(strcmp(v[0], "SET a = 1") == 0);
        CHECK(strcmp(v[1], "\\connect shop") == 0);
        CHECK(strcmp(v[2], "SELECT 'x;y', \"q;\", $$a;b$$, $t$c;$t$, E'\\';'") == 0);
        CHECK(strcmp(v[3], "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$") == 0);
        CHECK(strcmp(v[4], "SELECT 2") == 0);
        lb_pg_strv_free(v, n);

        struct {
                const char *in, *schema, *name;
        } sv[] = {
                { "SELECT pg_catalog.setval('\"shop\".\"orders_id_seq\"', 42, true)", "shop", "orders_id_seq" },
                { "SELECT pg_catalog.setval('shop.orders_id_seq', 1, false)", "shop", "orders_id_seq" },
                { "select setval('plain_seq', 3)", "public", "plain_seq" },
                { "SELECT pg_catalog.setval('\"O''Brien\".\"s\"', 1, true)", "O'Brien", "s" },
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(sv); i++) {
                char *s = NULL, *nm = NULL;
                CHECK_OK(lb_pg_setval_target(sv[i].in, &s, &nm));
                CHECK(strcmp(s, sv[i].schema) == 0 && strcmp(nm, sv[i].name) == 0);
                free(s);
                free(nm);
        }
        char *s = NULL, *nm = NULL;
        CHECK(lb_pg_setval_target("SELECT 1", &s, &nm) == -EINVAL);
        CHECK(lb_pg_setval_target("SELECT pg_catalog.setval(42)", &s, &nm) == -EINVAL);
}

/* ---- snapshots built here ---- */

static char tmpl[] = "/tmp/lb-test-pgload-XXXXXX";
static LbRepo *repo;

typedef struct File {
        const char *path;
        const char *content;
        const char *meta[5][2];
} File;

static void build(const File *files, size_t n, const char *source, LbId *ret_id) {
        LbBuilder *b;
        CHECK_OK(lb_builder_new(repo, &b));
        for (size_t i = 0; i < n; i++) {
                LbBuilderFile *f;
                CHECK_OK(lb_builder_file_open(b, files[i].path, NULL, &f));
                CHECK_OK(lb_builder_file_write(f, files[i].content, strlen(files[i].content)));
                LbMeta meta[5];
                size_t nm = 0;
                for (; nm < 5 && files[i].meta[nm][0]; nm++)
                        meta[nm] = (LbMeta) { (char *) files[i].meta[nm][0], (char *) files[i].meta[nm][1] };
                CHECK_OK(lb_builder_file_close(f, meta, nm));
        }
        LbMeta smeta[] = { { (char *) "pg.database", (char *) "shop" } };
        LbSnapshot s = { .source = (char *) source, .meta = smeta, .n_meta = 1 };
        CHECK_OK(lb_builder_commit(b, &s, ret_id, NULL, NULL));
}

/* The random-access plan (a mount's restore.sql) gives the same bytes as
 * lb_pg_restore_sql at every offset, for reads of every length class. */
static void check_plan_reads(const LbSnapshot *s, const char *script, size_t len) {
        LbPgSqlPlan *p = NULL;
        char *e = NULL;
        CHECK_OK(lb_pg_sql_plan_new(repo, s, &p, &e));
        CHECK_EQ_INT(lb_pg_sql_plan_size(p), len);
        LbChunkCache *c = NULL;
        CHECK_OK(lb_chunk_cache_new(repo, 1 << 20, 1, &c));
        char *buf = malloc(len + 100);
        CHECK(buf);
        static const size_t lens[] = { 1, 2, 7, 100, 4097, 40000, SIZE_MAX };
        size_t step = len > 5000 ? 13 : 1;
        for (size_t off = 0; off <= len + 1; off += step)
                for (size_t i = 0; i < LB_ARRAY_SIZE(lens); i++) {
                        size_t want = LB_MIN(lens[i], len + 50), n = 0;
                        CHECK_OK(lb_pg_sql_plan_read(p, c, off, buf, want, &n, NULL));
                        CHECK_EQ_INT(n, off >= len ? 0 : LB_MIN(want, len - off));
                        CHECK(memcmp(buf, script + off, n) == 0);
                }
        free(buf);
        lb_chunk_cache_free(c);
        lb_pg_sql_plan_free(p);
}

static char *script_of(const LbId *id, int *ret_k, char **ret_error) {
        LbSnapshot *s;
        CHECK_OK(lb_repo_snapshot_load(repo, id, &s));
        int fd = memfd_create("script", 0);
        CHECK(fd >= 0);
        *ret_k = lb_pg_restore_sql(repo, s, fd, ret_error);
        off_t len = lseek(fd, 0, SEEK_CUR);
        char *out = calloc(1, (size_t) len + 1);
        CHECK(pread(fd, out, (size_t) len, 0) == len);
        close(fd);
        if (*ret_k == 0) {
                uint64_t size = 0;
                char *e = NULL;
                CHECK_OK(lb_pg_restore_sql_size(repo, s, &size, &e));
                CHECK_EQ_INT(size, len);
                check_plan_reads(s, out, (size_t) len);
        }
        lb_snapshot_free(s);
        return out;
}

static const char post_sql[] = "--\n-- post\n--\n\nCREATE INDEX i ON shop.orders (id);\n";

TEST(test_script) {
        /* A large object of several lowrite lines (16384 bytes each). */
        static char big_lo[40001];
        for (size_t i = 0; i < sizeof big_lo - 1; i++)
                big_lo[i] = (char) ('!' + (i * 7 + i / 300) % 90);
        File files[] = {
                { "/shop/pre-data.sql", pre_sql, {} },
                { "/shop/post-data.sql", post_sql, {} },
                { "/shop/sequences.sql", "SELECT pg_catalog.setval('\"shop\".\"orders_id_seq\"', 3, true);\n", {} },
                { "/shop/data/shop.orders", "1\tone\n2\t\\N\n3\ttab\\there\n",
                  { { "pg.schema", "shop" }, { "pg.table", "orders" }, { "pg.columns", "\"id\", \"note\"" },
                    { "pg.rows", "3" } } },
                { "/shop/data/shop.empty", "",
                  { { "pg.schema", "shop" }, { "pg.table", "empty" }, { "pg.columns", "" }, { "pg.rows", "0" } } },
                { "/shop/large-objects/4242", "hi", { { "pg.oid", "4242" } } },
                { "/shop/large-objects/77", "", { { "pg.oid", "77" } } },
                { "/shop/large-objects/99", big_lo, { { "pg.oid", "99" } } },
                { "/config/postgresql.conf", "x = 1\n", {} },
        };
        LbId id;
        build(files, LB_ARRAY_SIZE(files), "postgresql", &id);
        int k;
        char *err = NULL;
        char *out = script_of(&id, &k, &err);
        CHECK_OK(k);
        CHECK(err == NULL);
        /* Order: pre-data, data (tables by name), sequences, large objects, post-data, refresh. */
        const char *pre = strstr(out, "CREATE TABLE shop.orders");
        const char *empty = strstr(out, "COPY \"shop\".\"empty\" FROM stdin;\n\\.\n");
        const char *orders = strstr(out, "COPY \"shop\".\"orders\" (\"id\", \"note\") FROM stdin;\n"
                                         "1\tone\n2\t\\N\n3\ttab\\there\n\\.\n");
        const char *seq = strstr(out, "SELECT pg_catalog.setval(");
        const char *lo77 = strstr(out, "SELECT pg_catalog.lo_create('77');\nSELECT pg_catalog.lo_open('77', 131072);\n"
                                       "SELECT pg_catalog.lo_close(0);\n");
        const char *lo = strstr(out, "SELECT pg_catalog.lo_open('4242', 131072);\n"
                                     "SELECT pg_catalog.lowrite(0, '\\x6869');\nSELECT pg_catalog.lo_close(0);\n");
        const char *post = strstr(out, "CREATE INDEX i");
        const char *refresh = strstr(out, "REFRESH MATERIALIZED VIEW \"shop\".\"counts\";\n");
        CHECK(pre && empty && orders && seq && lo77 && lo && post && refresh);
        CHECK(pre < empty && empty < orders && orders < seq && seq < lo77 && lo77 < lo && lo < post && post < refresh);
        /* pre-data created 4242 already. */
        CHECK(!strstr(out, "lo_create('4242');\nSELECT pg_catalog.lo_open"));
        CHECK(strstr(out, "BEGIN;") && strstr(out, "COMMIT;"));
        CHECK(!strstr(out, "x = 1"));

        /* Deterministic. */
        char *again = script_of(&id, &k, &err);
        CHECK_OK(k);
        CHECK(strcmp(out, again) == 0);
        free(again);
        free(out);

        /* The layout as read. */
        LbSnapshot *s;
        CHECK_OK(lb_repo_snapshot_load(repo, &id, &s));
        LbPgLayout *l;
        CHECK_OK(lb_pg_layout_load(repo, s, &l, &err));
        CHECK(strcmp(l->database, "shop") == 0 && strcmp(l->dir, "/shop") == 0);
        CHECK(l->n_tables == 2 && l->n_los == 3 && l->los[0].oid == 77 && l->los[1].oid == 99 && l->los[2].oid == 4242);
        CHECK(l->has_sequences && !l->has_globals && !l->has_database_sql);
        CHECK(lb_pg_layout_find_table(l, "shop", "orders")->rows == 3);
        CHECK(lb_pg_layout_find_table(l, "shop", "nope") == NULL);
        lb_pg_layout_free(l);
        lb_snapshot_free(s);
}

TEST(test_script_mismatch) {
        /* pg.rows says 4: the script stops and names the table. */
        File files[] = {
                { "/shop/pre-data.sql", pre_sql, {} },
                { "/shop/post-data.sql", post_sql, {} },
                { "/shop/data/shop.orders", "1\tone\n2\ttwo\n3\tthree\n",
                  { { "pg.schema", "shop" }, { "pg.table", "orders" }, { "pg.columns", "\"id\", \"note\"" },
                    { "pg.rows", "4" } } },
        };
        LbId id;
        build(files, LB_ARRAY_SIZE(files), "postgresql", &id);
        int k;
        char *err = NULL;
        char *out = script_of(&id, &k, &err);
        CHECK(k == -EBADMSG);
        CHECK(err && strstr(err, "shop.orders") && strstr(err, "row count mismatch"));
        CHECK(!strstr(out, "CREATE INDEX i"));
        free(err);
        free(out);

        /* A line that psql would take for the end of the data. */
        File marker[] = {
                { "/shop/pre-data.sql", pre_sql, {} },
                { "/shop/post-data.sql", post_sql, {} },
                { "/shop/data/shop.orders", "1\tone\n\\.\n\\! echo owned\n",
                  { { "pg.schema", "shop" }, { "pg.table", "orders" }, { "pg.columns", "\"id\", \"note\"" },
                    { "pg.rows", "3" } } },
        };
        build(marker, LB_ARRAY_SIZE(marker), "postgresql", &id);
        err = NULL;
        out = script_of(&id, &k, &err);
        CHECK(k == -EBADMSG && err && strstr(err, "\\."));
        CHECK(!strstr(out, "owned"));
        free(err);
        free(out);

        /* A malformed column list is refused when the layout is read. */
        File cols[] = {
                { "/shop/pre-data.sql", pre_sql, {} },
                { "/shop/post-data.sql", post_sql, {} },
                { "/shop/data/shop.orders", "",
                  { { "pg.schema", "shop" }, { "pg.table", "orders" }, { "pg.columns", "id) TO PROGRAM 'x' --" },
                    { "pg.rows", "0" } } },
        };
        build(cols, LB_ARRAY_SIZE(cols), "postgresql", &id);
        err = NULL;
        out = script_of(&id, &k, &err);
        CHECK(k == -EBADMSG && err && strstr(err, "pg.columns"));
        CHECK(out[0] == 0);
        free(err);
        free(out);

        /* Missing metadata; missing post-data.sql; not a PostgreSQL snapshot. */
        File meta[] = {
                { "/shop/pre-data.sql", pre_sql, {} },
                { "/shop/post-data.sql", post_sql, {} },
                { "/shop/data/shop.orders", "", { { "pg.schema", "shop" }, { "pg.table", "orders" } } },
        };
        build(meta, LB_ARRAY_SIZE(meta), "postgresql", &id);
        err = NULL;
        free(script_of(&id, &k, &err));
        CHECK(k == -EBADMSG && err && strstr(err, "lacks pg.columns"));
        free(err);
        build(meta, 1, "postgresql", &id);
        err = NULL;
        free(script_of(&id, &k, &err));
        CHECK(k == -EBADMSG && err && strstr(err, "post-data.sql"));
        free(err);
        build(meta, 2, "files", &id);
        err = NULL;
        free(script_of(&id, &k, &err));
        CHECK(k == -EMEDIUMTYPE && err && strstr(err, "not a PostgreSQL snapshot"));
        free(err);
}

TEST(test_block_target) {
        struct {
                const char *sql, *schema, *name, *ref_schema, *ref_name;
                bool only, index;
        } ok[] = {
                { "--\n-- Name: t_b; Type: INDEX; Schema: public; Owner: postgres\n--\n\n"
                  "CREATE INDEX t_b ON public.t USING btree (b);\n\n\nSET default_tablespace = ts1;\n",
                  "public", "t", NULL, NULL, false, true },
                { "CREATE UNIQUE INDEX \"Odd Idx\" ON ONLY \"My Schema\".\"T\"\"x\" USING btree (a);",
                  "My Schema", "T\"x", NULL, NULL, true, true },
                { "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (a);\n", "public", "t", NULL, NULL,
                  true, false },
                { "ALTER TABLE ONLY public.t\n    CLUSTER ON t_pkey;", "public", "t", NULL, NULL, true, false },
                { "ALTER TABLE ONLY shop.order_items\n    ADD CONSTRAINT oi_fkey FOREIGN KEY (order_id, \"Line\") "
                  "REFERENCES shop.orders(id, line) ON DELETE CASCADE;",
                  "shop", "order_items", "shop", "orders", true, false },
                { "ALTER TABLE shop.notes\n    ADD CONSTRAINT n_fkey FOREIGN KEY (event_id, at) REFERENCES "
                  "\"Shop\".\"Events\"(id, at);",
                  "shop", "notes", "Shop", "Events", false, false },
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(ok); i++) {
                LbPgBlockTarget t = {};
                CHECK_OK(lb_pg_block_target(ok[i].sql, strlen(ok[i].sql), &t));
                CHECK(strcmp(t.schema, ok[i].schema) == 0 && strcmp(t.name, ok[i].name) == 0);
                CHECK(t.only == ok[i].only && t.index == ok[i].index);
                if (ok[i].ref_schema)
                        CHECK(t.ref_schema && strcmp(t.ref_schema, ok[i].ref_schema) == 0 &&
                              strcmp(t.ref_name, ok[i].ref_name) == 0);
                else
                        CHECK(!t.ref_schema && !t.ref_name);
                lb_pg_block_target_clear(&t);
        }
        const char *bad[] = {
                "",
                "-- only a comment\n",
                "CREATE TRIGGER tr AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f();",
                "CREATE INDEX ON public.t (a);",                    /* no name */
                "CREATE INDEX i ON t USING btree (a);",             /* not qualified */
                "ALTER TABLE t ADD CONSTRAINT c PRIMARY KEY (a);",  /* not qualified */
                "ALTER TABLE ONLY public.t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES orders(id);",
                "ALTER TABLE ONLY public.t ADD CONSTRAINT c FOREIGN KEY (a REFERENCES public.o(id);",
                "ALTER INDEX public.i ATTACH PARTITION public.j;",
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++) {
                LbPgBlockTarget t = {};
                CHECK(lb_pg_block_target(bad[i], strlen(bad[i]), &t) == -EINVAL);
                CHECK(!t.schema && !t.name);
        }
}

/* A post-data script from blocks of (name, type, statement). */
static char *post_script(const char *const (*blocks)[3], size_t n) {
        LbBuf b = {};
        const char *pre = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n";
        CHECK_OK(lb_buf_append(&b, pre, strlen(pre)));
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *x = lb_strdup_printf(
                        "--\n-- Name: %s; Type: %s; Schema: shop; Owner: postgres\n--\n\n%s\n\n\n", blocks[i][0],
                        blocks[i][1], blocks[i][2]);
                CHECK(x);
                CHECK_OK(lb_buf_append(&b, x, strlen(x)));
        }
        const char *trailer = "--\n-- PostgreSQL database dump complete\n--\n\n";
        CHECK_OK(lb_buf_append(&b, trailer, strlen(trailer)));
        CHECK_OK(lb_buf_append_u8(&b, 0));
        return (char *) b.data;
}

static size_t find_item(const LbPgSchedule *s, LbPgItemKind kind, size_t x) {
        for (size_t i = 0; i < s->n_items; i++) {
                const LbPgItem *it = &s->items[i];
                if (it->kind != kind)
                        continue;
                if ((kind == LB_PG_ITEM_COPY || kind == LB_PG_ITEM_ANALYZE) && it->table != x)
                        continue;
                if ((kind == LB_PG_ITEM_BUILD || kind == LB_PG_ITEM_FK) && it->block != x)
                        continue;
                return i;
        }
        return SIZE_MAX;
}

static bool has_dep(const LbPgSchedule *s, size_t item, size_t dep) {
        for (size_t d = 0; d < s->items[item].n_deps; d++)
                if (s->items[item].deps[d] == dep)
                        return true;
        return false;
}

/* Every dependency names an earlier item: the graph has no cycle. */
static void check_dag(const LbPgSchedule *s) {
        for (size_t i = 0; i < s->n_items; i++)
                for (size_t d = 0; d < s->items[i].n_deps; d++)
                        CHECK(s->items[i].deps[d] < i);
}

TEST(test_schedule) {
        /* shop.a, shop.b, shop.c have rows (sorted, as the layout is). */
        LbPgTableFile tables[3] = {
                { .schema = (char *) "shop", .table = (char *) "a", .node = { .size = 300 } },
                { .schema = (char *) "shop", .table = (char *) "b", .node = { .size = 200 } },
                { .schema = (char *) "shop", .table = (char *) "c", .node = { .size = 100 } },
        };
        LbPgLayout l = { .tables = tables, .n_tables = 3 };
#define A_PKEY { "a a_pkey", "CONSTRAINT", "ALTER TABLE ONLY shop.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);" }
#define B_X { "b_x", "INDEX", "CREATE INDEX b_x ON shop.b USING btree (x);" }
#define B_A_FKEY                                                                                                \
        { "b b_a_fkey", "FK CONSTRAINT",                                                                        \
          "ALTER TABLE ONLY shop.b\n    ADD CONSTRAINT b_a_fkey FOREIGN KEY (a_id) REFERENCES shop.a(id);" }
        const char *const blocks[][3] = {
                A_PKEY,
                B_X,
                { "b_y", "INDEX", "CREATE INDEX b_y ON shop.b USING btree (y);" },
                { "mv_i", "INDEX", "CREATE UNIQUE INDEX mv_i ON shop.mv USING btree (id);" },
                B_A_FKEY,
                { "a a_a_fkey", "FK CONSTRAINT",
                  "ALTER TABLE ONLY shop.a\n    ADD CONSTRAINT a_a_fkey FOREIGN KEY (up) REFERENCES shop.a(id);" },
                { "c c_p_fkey", "FK CONSTRAINT",
                  "ALTER TABLE shop.c\n    ADD CONSTRAINT c_p_fkey FOREIGN KEY (p, at) REFERENCES shop.parted(id, at);" },
                { "c c_mv_fkey", "FK CONSTRAINT",
                  "ALTER TABLE ONLY shop.c\n    ADD CONSTRAINT c_mv_fkey FOREIGN KEY (m) REFERENCES shop.other(id);" },
                { "b tr", "TRIGGER", "CREATE TRIGGER tr AFTER INSERT ON shop.b FOR EACH ROW EXECUTE FUNCTION f();" },
        };
        _cleanup_free_ char *post = post_script(blocks, LB_ARRAY_SIZE(blocks));
        LbPgSqlScript sc;
        CHECK_OK(lb_pg_sql_split(post, strlen(post), &sc));
        CHECK_EQ_INT(sc.n_blocks, LB_ARRAY_SIZE(blocks));

        LbPgSchedule s;
        CHECK_OK(lb_pg_schedule_new(&l, post, strlen(post), &sc, NULL, true, false, &s));
        check_dag(&s);
        size_t copy[3];
        for (size_t t = 0; t < 3; t++) {
                copy[t] = find_item(&s, LB_PG_ITEM_COPY, t);
                CHECK(copy[t] != SIZE_MAX && s.items[copy[t]].n_deps == 0 && s.items[copy[t]].rel[0] == t);
        }
        CHECK(find_item(&s, LB_PG_ITEM_SEQUENCES, 0) != SIZE_MAX && find_item(&s, LB_PG_ITEM_LOS, 0) == SIZE_MAX);
        size_t barrier = find_item(&s, LB_PG_ITEM_BARRIER, 0);
        CHECK(barrier != SIZE_MAX && s.items[barrier].n_deps == 3);
        /* Larger tables first. */
        CHECK(s.items[copy[0]].priority > s.items[copy[1]].priority);
        CHECK(s.items[copy[1]].priority > s.items[copy[2]].priority);

        /* Builds wait for their table's rows; one on a relation without
         * rows (a materialized view) for every table's. */
        size_t pk = find_item(&s, LB_PG_ITEM_BUILD, 0), bx = find_item(&s, LB_PG_ITEM_BUILD, 1);
        size_t by = find_item(&s, LB_PG_ITEM_BUILD, 2), mv = find_item(&s, LB_PG_ITEM_BUILD, 3);
        CHECK(pk != SIZE_MAX && bx != SIZE_MAX && by != SIZE_MAX && mv != SIZE_MAX);
        CHECK(s.items[pk].n_deps == 1 && has_dep(&s, pk, copy[0]) && s.items[pk].rel[0] == 0 && !s.items[pk].shared);
        CHECK(s.items[bx].n_deps == 1 && has_dep(&s, bx, copy[1]) && s.items[bx].shared);
        CHECK(s.items[mv].n_deps == 1 && has_dep(&s, mv, barrier) && s.items[mv].rel[0] >= 3 &&
              s.items[mv].rel[0] != LB_PG_NO_REL);

        /* A foreign key between tables with rows waits for both tables'
         * rows and builds, and locks both; a self-reference locks one. */
        size_t fk = find_item(&s, LB_PG_ITEM_FK, 4), self = find_item(&s, LB_PG_ITEM_FK, 5);
        CHECK(fk != SIZE_MAX && self != SIZE_MAX);
        CHECK(has_dep(&s, fk, copy[0]) && has_dep(&s, fk, copy[1]) && has_dep(&s, fk, pk) && has_dep(&s, fk, bx) &&
              has_dep(&s, fk, by));
        CHECK((s.items[fk].rel[0] == 1 && s.items[fk].rel[1] == 0));
        CHECK(has_dep(&s, self, copy[0]) && has_dep(&s, self, pk) && s.items[self].rel[1] == LB_PG_NO_REL);
        /* Not "ALTER TABLE ONLY", or a referenced table without rows: left
         * for the final script, like the trigger. */
        CHECK(find_item(&s, LB_PG_ITEM_FK, 6) == SIZE_MAX && find_item(&s, LB_PG_ITEM_FK, 7) == SIZE_MAX);
        const bool rest[] = { false, false, false, false, false, false, true, true, true };
        for (size_t i = 0; i < LB_ARRAY_SIZE(rest); i++)
                CHECK(s.rest[i] == rest[i]);

        /* ANALYZE after the table's own builds, at the lowest priority. */
        for (size_t t = 0; t < 3; t++) {
                size_t an = find_item(&s, LB_PG_ITEM_ANALYZE, t);
                CHECK(an != SIZE_MAX && s.analyzed[t] && has_dep(&s, an, copy[t]));
                CHECK(s.items[an].priority < s.items[copy[2]].priority);
        }
        CHECK(has_dep(&s, find_item(&s, LB_PG_ITEM_ANALYZE, 1), bx) && has_dep(&s, find_item(&s, LB_PG_ITEM_ANALYZE, 1), by));
        lb_pg_schedule_clear(&s);

        /* Tables the caller names (inheritance parents) are analyzed at the end. */
        bool no_analyze[3] = { false, true, false };
        CHECK_OK(lb_pg_schedule_new(&l, post, strlen(post), &sc, no_analyze, false, true, &s));
        check_dag(&s);
        CHECK(find_item(&s, LB_PG_ITEM_ANALYZE, 1) == SIZE_MAX && !s.analyzed[1] && s.analyzed[0]);
        CHECK(find_item(&s, LB_PG_ITEM_SEQUENCES, 0) == SIZE_MAX && find_item(&s, LB_PG_ITEM_LOS, 0) != SIZE_MAX);
        lb_pg_schedule_clear(&s);
        lb_pg_sql_script_clear(&sc);

        /* Extended statistics (created by the final script): no early ANALYZE. */
        const char *const stats[][3] = {
                A_PKEY, B_X, B_A_FKEY,
                { "a_st", "STATISTICS", "CREATE STATISTICS shop.a_st ON x, y FROM shop.a;" },
        };
        _cleanup_free_ char *post2 = post_script(stats, LB_ARRAY_SIZE(stats));
        CHECK_OK(lb_pg_sql_split(post2, strlen(post2), &sc));
        CHECK_OK(lb_pg_schedule_new(&l, post2, strlen(post2), &sc, NULL, false, false, &s));
        for (size_t t = 0; t < 3; t++)
                CHECK(find_item(&s, LB_PG_ITEM_ANALYZE, t) == SIZE_MAX && !s.analyzed[t]);
        CHECK(find_item(&s, LB_PG_ITEM_FK, 2) != SIZE_MAX && s.rest[3]);
        lb_pg_schedule_clear(&s);
        lb_pg_sql_script_clear(&sc);

        /* An index whose relation cannot be read: it waits for every table,
         * and no foreign key or ANALYZE runs early (the index might be the
         * one a foreign key needs). */
        const char *const odd[][3] = {
                A_PKEY, B_A_FKEY,
                { "odd", "INDEX", "CREATE INDEX odd ON a USING btree (x);" },
        };
        _cleanup_free_ char *post3 = post_script(odd, LB_ARRAY_SIZE(odd));
        CHECK_OK(lb_pg_sql_split(post3, strlen(post3), &sc));
        CHECK_OK(lb_pg_schedule_new(&l, post3, strlen(post3), &sc, NULL, false, false, &s));
        check_dag(&s);
        size_t o = find_item(&s, LB_PG_ITEM_BUILD, 2);
        CHECK(o != SIZE_MAX && has_dep(&s, o, find_item(&s, LB_PG_ITEM_BARRIER, 0)) && s.items[o].rel[0] == LB_PG_NO_REL);
        CHECK(find_item(&s, LB_PG_ITEM_FK, 1) == SIZE_MAX && s.rest[1] && !s.rest[0] && !s.rest[2]);
        CHECK(find_item(&s, LB_PG_ITEM_ANALYZE, 0) == SIZE_MAX);
        lb_pg_schedule_clear(&s);
        lb_pg_sql_script_clear(&sc);
}

int main(void) {
        CHECK_OK(lb_crypto_init());
        RUN(test_split);
        RUN(test_idents);
        RUN(test_rename_database);
        RUN(test_statements);
        RUN(test_block_target);
        RUN(test_schedule);

        char *base = mkdtemp(tmpl);
        CHECK(base);
        _cleanup_free_ char *loc = lb_path_join(base, "repo");
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &repo));
        CHECK_OK(lb_repo_index_update(repo));
        RUN(test_script);
        RUN(test_script_mismatch);
        lb_repo_free(repo);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
        return 0;
}
