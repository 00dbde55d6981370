/* SPDX-License-Identifier: MIT */
/*
 * A PostgreSQL snapshot as one plain SQL script (lb_pg_restore_sql).
 *
 * The script is planned first as a list of segments (literal text, a
 * table's COPY data, a large object's lowrite statements) whose lengths
 * are known from the layout alone, then written. So its size is known
 * before any data is read (a mount can show it), and the bytes are a
 * function of the snapshot: restore --sql and a mount's restore.sql agree.
 * Both go through the same plan: lb_pg_restore_sql streams its segments in
 * order, lb_pg_sql_plan_read serves any byte range of them; a large
 * object's lowrite lines are rendered by one function for both.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <xxhash.h>

#include "store/fileread.h"
#include "store/pg/load.h"
#include "store/walk.h"

/* Bytes of large-object data per lowrite statement (pg_dump's LOBBUFSIZE). */
#define LO_SQL_CHUNK 16384
#define OUT_FLUSH (1u << 20)

static const char lowrite_head[] = "SELECT pg_catalog.lowrite(0, '\\x";
static const char lowrite_tail[] = "');\n";

typedef enum SegKind {
        SEG_TEXT,
        SEG_TABLE,
        SEG_LO,
} SegKind;

typedef struct Seg {
        SegKind kind;
        const char *text;         /* SEG_TEXT: borrowed from the plan */
        size_t len;
        const LbPgTableFile *t;   /* SEG_TABLE */
        const LbPgLargeObject *lo;/* SEG_LO */
        uint64_t size;
} Seg;

struct LbPgSqlPlan {
        LbPgLayout *l;
        LbBuf pre, post, seq;
        LbPgSqlScript pre_script;
        char **texts;             /* owned texts the segments point into */
        size_t n_texts, cap_texts;
        Seg *segs;
        size_t n_segs, cap_segs;
        uint64_t size;
        /* Random access (lb_pg_sql_plan_read): segment start offsets
         * (n_segs + 1 prefix sums) and a reader per data segment, opened
         * on first use. */
        uint64_t *offs;
        LbFileReader **readers;
        pthread_mutex_t lock;
};
typedef struct LbPgSqlPlan Plan;

static void plan_clear(Plan *p) {
        lb_pg_layout_free(p->l);
        lb_buf_free(&p->pre);
        lb_buf_free(&p->post);
        lb_buf_free(&p->seq);
        lb_pg_sql_script_clear(&p->pre_script);
        lb_pg_strv_free(p->texts, p->n_texts);
        if (p->readers)
                for (size_t i = 0; i < p->n_segs; i++)
                        lb_file_reader_free(p->readers[i]);
        free(p->readers);
        free(p->offs);
        free(p->segs);
        *p = (Plan) {};
}

static int set_error(char **ret_error, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_error(char **ret_error, int k, const char *fmt, ...) {
        if (ret_error && !*ret_error) {
                va_list ap;
                va_start(ap, fmt);
                char *m = lb_strdup_vprintf(fmt, ap);
                va_end(ap);
                *ret_error = m;
        }
        return k;
}

static Seg *add_seg(Plan *p, SegKind kind, uint64_t size) {
        if (p->n_segs == p->cap_segs) {
                size_t nc = p->cap_segs ? p->cap_segs * 2 : 64;
                Seg *ns = realloc(p->segs, nc * sizeof *ns);
                if (!ns)
                        return NULL;
                p->segs = ns;
                p->cap_segs = nc;
        }
        Seg *s = &p->segs[p->n_segs++];
        *s = (Seg) { .kind = kind, .size = size };
        p->size += size;
        return s;
}

static int add_borrowed(Plan *p, const void *text, size_t len) {
        if (len == 0)
                return 0;
        Seg *s = add_seg(p, SEG_TEXT, len);
        if (!s)
                return -ENOMEM;
        s->text = text;
        s->len = len;
        return 0;
}

static int add_text(Plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_text(Plan *p, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *m = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        if (!m)
                return -ENOMEM;
        if (p->n_texts == p->cap_texts) {
                size_t nc = p->cap_texts ? p->cap_texts * 2 : 64;
                char **nt = realloc(p->texts, nc * sizeof *nt);
                if (!nt) {
                        free(m);
                        return -ENOMEM;
                }
                p->texts = nt;
                p->cap_texts = nc;
        }
        p->texts[p->n_texts++] = m;
        return add_borrowed(p, m, strlen(m));
}

/* A name for a "--" comment line: newlines would end the comment. */
static char *comment_safe(const char *s) {
        char *c = strdup(s);
        for (char *q = c; q && *q; q++)
                if (*q == '\n' || *q == '\r')
                        *q = ' ';
        return c;
}

#define LO_LINE_MAX (sizeof lowrite_head - 1 + 2 * LO_SQL_CHUNK + sizeof lowrite_tail - 1)

static uint64_t lo_sql_size(uint64_t size) {
        uint64_t n = (size + LO_SQL_CHUNK - 1) / LO_SQL_CHUNK;
        return n * (sizeof lowrite_head - 1 + sizeof lowrite_tail - 1) + 2 * size;
}

/* One lowrite statement for n <= LO_SQL_CHUNK bytes of a large object:
 * the only place its text is made (restore --sql and random reads). */
static size_t lo_render(const uint8_t *p, size_t n, char out[LO_LINE_MAX]) {
        static const char hex[] = "0123456789abcdef";
        size_t j = 0;
        memcpy(out, lowrite_head, sizeof lowrite_head - 1);
        j += sizeof lowrite_head - 1;
        for (size_t i = 0; i < n; i++) {
                out[j++] = hex[p[i] >> 4];
                out[j++] = hex[p[i] & 15];
        }
        memcpy(out + j, lowrite_tail, sizeof lowrite_tail - 1);
        return j + sizeof lowrite_tail - 1;
}

static int read_file(LbRepo *r, const LbNode *n, const char *name, LbBuf *ret, char **ret_error) {
        int k = lb_pg_layout_read(r, n, LB_PG_SCHEMA_FILE_MAX, ret);
        if (k == -EFBIG)
                return set_error(ret_error, k, "%s is larger than %u MiB", name, LB_PG_SCHEMA_FILE_MAX >> 20);
        if (k < 0)
                return set_error(ret_error, k, "reading %s from the repository failed: %s", name, strerror(-k));
        return 0;
}

static int plan_build(LbRepo *r, const LbSnapshot *s, Plan *p, char **ret_error) {
        int k = lb_pg_layout_load(r, s, &p->l, ret_error);
        if (k < 0)
                return k;
        const LbPgLayout *l = p->l;
        if ((k = read_file(r, &l->pre_data, "pre-data.sql", &p->pre, ret_error)) < 0 ||
            (k = read_file(r, &l->post_data, "post-data.sql", &p->post, ret_error)) < 0)
                return k;
        if (l->has_sequences && (k = read_file(r, &l->sequences, "sequences.sql", &p->seq, ret_error)) < 0)
                return k;
        if ((k = lb_pg_sql_split((const char *) p->pre.data, p->pre.len, &p->pre_script)) < 0)
                return k;

        char id[2 * LB_ID_SIZE + 1];
        lb_hex_encode(s->id.b, LB_ID_SIZE, id);
        _cleanup_free_ char *db = comment_safe(l->database);
        if (!db)
                return -ENOMEM;
        if ((k = add_text(p,
                          "--\n"
                          "-- longbox restore script of snapshot %s, database %s\n"
                          "-- Load it into an empty database: psql -X -v ON_ERROR_STOP=1 -d DBNAME -f FILE\n"
                          "--\n\n",
                          id, db)) < 0 ||
            (k = add_borrowed(p, p->pre.data, p->pre.len)) < 0)
                return k;

        for (size_t i = 0; i < l->n_tables; i++) {
                const LbPgTableFile *t = &l->tables[i];
                _cleanup_free_ char *q = lb_pg_ident_qualified(t->schema, t->table);
                _cleanup_free_ char *cs = comment_safe(t->schema), *ct = comment_safe(t->table);
                if (!q || !cs || !ct)
                        return -ENOMEM;
                if ((k = add_text(p,
                                  "\n--\n-- Data for Name: %s; Type: TABLE DATA; Schema: %s\n--\n\n"
                                  "COPY %s %s%s%sFROM stdin;\n",
                                  ct, cs, q, *t->columns ? "(" : "", t->columns, *t->columns ? ") " : "")) < 0)
                        return k;
                Seg *sg = add_seg(p, SEG_TABLE, t->node.size);
                if (!sg)
                        return -ENOMEM;
                sg->t = t;
                if ((k = add_text(p, "\\.\n\n")) < 0)
                        return k;
        }

        if (p->seq.len > 0 &&
            ((k = add_text(p, "\n--\n-- Sequence values\n--\n\n")) < 0 ||
             (k = add_borrowed(p, p->seq.data, p->seq.len)) < 0))
                return k;

        if (l->n_los > 0) {
                if ((k = add_text(p, "\n--\n-- Large objects\n--\n\nBEGIN;\n\n")) < 0)
                        return k;
                for (size_t i = 0; i < l->n_los; i++) {
                        const LbPgLargeObject *lo = &l->los[i];
                        char probe[32];
                        snprintf(probe, sizeof probe, "lo_create('%" PRIu32 "')", lo->oid);
                        bool created = memmem(p->pre.data, p->pre.len, probe, strlen(probe)) != NULL;
                        if (!created && (k = add_text(p, "SELECT pg_catalog.lo_create('%" PRIu32 "');\n", lo->oid)) < 0)
                                return k;
                        if ((k = add_text(p, "SELECT pg_catalog.lo_open('%" PRIu32 "', 131072);\n", lo->oid)) < 0)
                                return k;
                        Seg *sg = add_seg(p, SEG_LO, lo_sql_size(lo->node.size));
                        if (!sg)
                                return -ENOMEM;
                        sg->lo = lo;
                        if ((k = add_text(p, "SELECT pg_catalog.lo_close(0);\n\n")) < 0)
                                return k;
                }
                if ((k = add_text(p, "COMMIT;\n")) < 0)
                        return k;
        }

        if ((k = add_text(p, "\n")) < 0 || (k = add_borrowed(p, p->post.data, p->post.len)) < 0)
                return k;

        /* pg_dump --schema-only leaves out the REFRESH of materialized
         * views: refresh those pre-data creates, in its order. */
        if (!memmem(p->post.data, p->post.len, "REFRESH MATERIALIZED VIEW", 25)) {
                bool first = true;
                for (size_t i = 0; i < p->pre_script.n_blocks; i++) {
                        const LbPgSqlBlock *b = &p->pre_script.blocks[i];
                        if (strcmp(b->type, "MATERIALIZED VIEW") != 0)
                                continue;
                        _cleanup_free_ char *q = lb_pg_ident_qualified(b->schema, b->name);
                        if (!q)
                                return -ENOMEM;
                        if (first && (k = add_text(p, "\n--\n-- Materialized view data\n--\n\n")) < 0)
                                return k;
                        first = false;
                        if ((k = add_text(p, "REFRESH MATERIALIZED VIEW %s;\n", q)) < 0)
                                return k;
                }
        }
        return 0;
}

int lb_pg_restore_sql_size(LbRepo *r, const LbSnapshot *s, uint64_t *ret_size, char **ret_error) {
        Plan p = {};
        int k = plan_build(r, s, &p, ret_error);
        if (k == 0)
                *ret_size = p.size;
        plan_clear(&p);
        return k;
}

int lb_pg_sql_plan_new(LbRepo *r, const LbSnapshot *s, LbPgSqlPlan **ret, char **ret_error) {
        Plan *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        int k = plan_build(r, s, p, ret_error);
        if (k == 0) {
                p->offs = calloc(p->n_segs + 1, sizeof *p->offs);
                p->readers = calloc(p->n_segs + 1, sizeof *p->readers);
                if (!p->offs || !p->readers)
                        k = -ENOMEM;
        }
        if (k < 0) {
                plan_clear(p);
                free(p);
                return k;
        }
        for (size_t i = 0; i < p->n_segs; i++)
                p->offs[i + 1] = p->offs[i] + p->segs[i].size;
        pthread_mutex_init(&p->lock, NULL);
        *ret = p;
        return 0;
}

LbPgSqlPlan *lb_pg_sql_plan_free(LbPgSqlPlan *p) {
        if (!p)
                return NULL;
        pthread_mutex_destroy(&p->lock);
        plan_clear(p);
        free(p);
        return NULL;
}

uint64_t lb_pg_sql_plan_size(const LbPgSqlPlan *p) {
        return p->size;
}

static int seg_reader(Plan *p, size_t i, LbChunkCache *cache, LbFileReader **ret) {
        pthread_mutex_lock(&p->lock);
        int k = 0;
        if (!p->readers[i]) {
                const LbNode *n = p->segs[i].kind == SEG_TABLE ? &p->segs[i].t->node : &p->segs[i].lo->node;
                k = lb_file_reader_new(cache, n, &p->readers[i]);
                if (k == 0)
                        lb_file_reader_set_readahead(p->readers[i], 8u << 20);
        }
        if (k == 0)
                *ret = p->readers[i];
        pthread_mutex_unlock(&p->lock);
        return k;
}

/* Bytes [from, to) of a large object's segment: whole lowrite lines are
 * rendered from the object's bytes and the wanted part copied out. */
static int read_lo(LbFileReader *fr, uint64_t data_size, uint64_t from, uint64_t to, uint8_t *out,
                   LbContentFailure *failure) {
        const uint64_t full = sizeof lowrite_head - 1 + 2 * LO_SQL_CHUNK + sizeof lowrite_tail - 1;
        _cleanup_free_ uint8_t *data = malloc(LO_SQL_CHUNK);
        _cleanup_free_ char *line = malloc(LO_LINE_MAX);
        if (!data || !line)
                return -ENOMEM;
        while (from < to) {
                uint64_t li = from / full, at = li * LO_SQL_CHUNK;
                size_t n = (size_t) LB_MIN((uint64_t) LO_SQL_CHUNK, data_size - at), got = 0;
                int k = lb_file_reader_read(fr, at, data, n, &got, failure);
                if (k < 0)
                        return k;
                if (got != n)
                        return -EBADMSG;
                size_t len = lo_render(data, n, line);
                uint64_t in = from - li * full;
                size_t m = (size_t) LB_MIN(to - from, (uint64_t) len - in);
                memcpy(out, line + in, m);
                out += m;
                from += m;
        }
        return 0;
}

int lb_pg_sql_plan_read(LbPgSqlPlan *p, LbChunkCache *cache, uint64_t off, void *buf, size_t len, size_t *ret_n,
                        LbContentFailure *failure) {
        if (off >= p->size || len == 0) {
                *ret_n = 0;
                return 0;
        }
        uint64_t end = off + LB_MIN((uint64_t) len, p->size - off), pos = off;
        /* The segment holding off: binary search over the start offsets. */
        size_t lo = 0, hi = p->n_segs;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (p->offs[mid] <= pos)
                        lo = mid;
                else
                        hi = mid;
        }
        uint8_t *out = buf;
        for (size_t i = lo; i < p->n_segs && pos < end; i++) {
                const Seg *sg = &p->segs[i];
                uint64_t from = pos - p->offs[i], to = LB_MIN(end - p->offs[i], sg->size);
                if (from >= to)
                        continue;
                int k = 0;
                size_t got = 0;
                LbFileReader *fr = NULL;
                switch (sg->kind) {
                case SEG_TEXT:
                        memcpy(out, sg->text + from, (size_t) (to - from));
                        break;
                case SEG_TABLE:
                        k = seg_reader(p, i, cache, &fr);
                        if (k == 0)
                                k = lb_file_reader_read(fr, from, out, (size_t) (to - from), &got, failure);
                        if (k == 0 && got != to - from)
                                k = -EBADMSG;
                        break;
                case SEG_LO:
                        k = seg_reader(p, i, cache, &fr);
                        if (k == 0)
                                k = read_lo(fr, sg->lo->node.size, from, to, out, failure);
                        break;
                }
                if (k < 0)
                        return k;
                out += to - from;
                pos += to - from;
        }
        *ret_n = (size_t) (end - off);
        return 0;
}

/* ---- writing ---- */

typedef struct Out {
        int fd;
        LbBuf buf;
        uint64_t written;
} Out;

static int out_flush(Out *o) {
        if (o->buf.len == 0)
                return 0;
        int k = lb_write_all(o->fd, o->buf.data, o->buf.len);
        o->written += o->buf.len;
        lb_buf_clear(&o->buf);
        return k;
}

static int out_put(Out *o, const void *p, size_t n) {
        int k = lb_buf_append(&o->buf, p, n);
        if (k < 0)
                return k;
        return o->buf.len >= OUT_FLUSH ? out_flush(o) : 0;
}

typedef struct TableStream {
        Out *o;
        XXH3_state_t *h;
        uint64_t rows;
        int line_state;           /* 0 at a line start, 1 after a leading '\', 2 inside a line */
        bool marker;              /* a line starts with "\." */
        uint8_t last;
} TableStream;

static int table_chunk(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        TableStream *ts = userdata;
        (void) XXH3_64bits_update(ts->h, p, n);
        /* Count rows and refuse a line that starts with "\.": psql would
         * take it for the end of the data. COPY text never has one (a
         * backslash in a value is written as "\\"). */
        const uint8_t *q = p, *end = p + n;
        while (q < end) {
                if (ts->line_state == 2) {
                        const uint8_t *nl = memchr(q, '\n', (size_t) (end - q));
                        if (!nl)
                                break;
                        ts->rows++;
                        ts->line_state = 0;
                        q = nl + 1;
                        continue;
                }
                uint8_t c = *q++;
                if (c == '\n') {
                        ts->rows++;
                        ts->line_state = 0;
                } else if (ts->line_state == 0)
                        ts->line_state = c == '\\' ? 1 : 2;
                else {
                        if (c == '.')
                                ts->marker = true;
                        ts->line_state = 2;
                }
        }
        ts->last = p[n - 1];
        if (ts->marker)
                return -EBADMSG;
        return out_put(ts->o, p, n);
}

static int write_table(LbRepo *r, const Seg *sg, Out *o, char **ret_error) {
        const LbPgTableFile *t = sg->t;
        if (t->node.size == 0) {
                if (t->rows != 0)
                        return set_error(ret_error, -EBADMSG,
                                         "%s.%s: row count mismatch: the snapshot records %" PRIu64
                                         " rows, its data has 0",
                                         t->schema, t->table, t->rows);
                return 0;
        }
        TableStream ts = { .o = o, .h = XXH3_createState() };
        if (!ts.h || XXH3_64bits_reset(ts.h) != XXH_OK) {
                XXH3_freeState(ts.h);
                return -ENOMEM;
        }
        int k = lb_content_foreach(r, &t->node, table_chunk, &ts);
        uint64_t digest = XXH3_64bits_digest(ts.h);
        XXH3_freeState(ts.h);
        if (k < 0 && ts.marker)
                return set_error(ret_error, -EBADMSG, "%s.%s: the data has a line starting with \"\\.\"", t->schema,
                                 t->table);
        if (k < 0)
                return set_error(ret_error, k, "writing the data of %s.%s failed: %s", t->schema, t->table,
                                 strerror(-k));
        if (ts.rows != t->rows)
                return set_error(ret_error, -EBADMSG,
                                 "%s.%s: row count mismatch: the snapshot records %" PRIu64 " rows, its data has %"
                                 PRIu64,
                                 t->schema, t->table, t->rows, ts.rows);
        if (digest != t->node.xxh3)
                return set_error(ret_error, -EBADMSG,
                                 "%s.%s: checksum mismatch: the data's XXH3 is %016" PRIx64
                                 ", the snapshot records %016" PRIx64,
                                 t->schema, t->table, digest, t->node.xxh3);
        if (ts.last != '\n')
                return set_error(ret_error, -EBADMSG, "%s.%s: the data does not end with a newline", t->schema,
                                 t->table);
        return 0;
}

typedef struct LoStream {
        Out *o;
        XXH3_state_t *h;
        uint8_t pending[LO_SQL_CHUNK];
        size_t n_pending;
        char line[LO_LINE_MAX];
} LoStream;

static int lo_emit(LoStream *ls, const uint8_t *p, size_t n) {
        size_t len = lo_render(p, n, ls->line);
        return out_put(ls->o, ls->line, len);
}

static int lo_chunk(const uint8_t *p, size_t n, uint64_t offset, void *userdata) {
        LoStream *ls = userdata;
        (void) XXH3_64bits_update(ls->h, p, n);
        while (n > 0) {
                size_t m = LB_MIN(n, LO_SQL_CHUNK - ls->n_pending);
                memcpy(ls->pending + ls->n_pending, p, m);
                ls->n_pending += m;
                p += m;
                n -= m;
                if (ls->n_pending == LO_SQL_CHUNK) {
                        int k = lo_emit(ls, ls->pending, ls->n_pending);
                        if (k < 0)
                                return k;
                        ls->n_pending = 0;
                }
        }
        return 0;
}

static int write_lo(LbRepo *r, const Seg *sg, Out *o, char **ret_error) {
        const LbPgLargeObject *lo = sg->lo;
        if (lo->node.size == 0)
                return 0;
        LoStream *ls = calloc(1, sizeof *ls);
        if (!ls)
                return -ENOMEM;
        ls->o = o;
        ls->h = XXH3_createState();
        int k = ls->h && XXH3_64bits_reset(ls->h) == XXH_OK ? 0 : -ENOMEM;
        if (k == 0)
                k = lb_content_foreach(r, &lo->node, lo_chunk, ls);
        if (k == 0 && ls->n_pending > 0)
                k = lo_emit(ls, ls->pending, ls->n_pending);
        uint64_t digest = ls->h ? XXH3_64bits_digest(ls->h) : 0;
        XXH3_freeState(ls->h);
        free(ls);
        if (k < 0)
                return set_error(ret_error, k, "writing large object %" PRIu32 " failed: %s", lo->oid, strerror(-k));
        if (lo->node.has_xxh3 && digest != lo->node.xxh3)
                return set_error(ret_error, -EBADMSG,
                                 "large object %" PRIu32 ": checksum mismatch: the data's XXH3 is %016" PRIx64
                                 ", the snapshot records %016" PRIx64,
                                 lo->oid, digest, lo->node.xxh3);
        return 0;
}

int lb_pg_restore_sql(LbRepo *r, const LbSnapshot *s, int fd, char **ret_error) {
        if (ret_error)
                *ret_error = NULL;
        Plan p = {};
        Out o = { .fd = fd };
        int k = plan_build(r, s, &p, ret_error);
        for (size_t i = 0; k == 0 && i < p.n_segs; i++) {
                const Seg *sg = &p.segs[i];
                uint64_t before = o.written + o.buf.len;
                switch (sg->kind) {
                case SEG_TEXT:
                        k = out_put(&o, sg->text, sg->len);
                        break;
                case SEG_TABLE:
                        k = write_table(r, sg, &o, ret_error);
                        break;
                case SEG_LO:
                        k = write_lo(r, sg, &o, ret_error);
                        break;
                }
                /* The plan promised a size; a mount relies on it. */
                if (k == 0 && o.written + o.buf.len - before != sg->size)
                        k = set_error(ret_error, -EBADMSG, "a section of the script has %" PRIu64
                                      " bytes where the snapshot says %" PRIu64,
                                      o.written + o.buf.len - before, sg->size);
        }
        /* On a failure the buffered rest is dropped: the script is
         * incomplete either way, and the caller must say so. */
        if (k == 0)
                k = out_flush(&o);
        if (k < 0 && ret_error && !*ret_error && k != -ENOMEM)
                *ret_error = lb_strdup_printf("writing the script failed: %s", strerror(-k));
        if (k < 0 && o.written > 0 && ret_error && *ret_error) {
                char *m = lb_strdup_printf("%s; the script written so far is incomplete", *ret_error);
                if (m) {
                        free(*ret_error);
                        *ret_error = m;
                }
        }
        lb_buf_free(&o.buf);
        plan_clear(&p);
        return k;
}
