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

int main(void) {
        CHECK_OK(lb_crypto_init());
        RUN(test_split);
        RUN(test_idents);
        RUN(test_rename_database);
        RUN(test_statements);

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
