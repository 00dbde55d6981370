/* SPDX-License-Identifier: MIT */
/*
 * SQL text helpers for restore: a small lexer (enough of PostgreSQL's to
 * find statement boundaries, identifiers and keywords while skipping
 * literals and comments), the splitter of pg_dump's plain output into its
 * object blocks, identifier quoting and parsing.
 * Nothing here talks to a server, so tests/unit/test_pgload.c covers it.
 */
#include <ctype.h>
#include <stdio.h>

#include "store/pg/load.h"

/* ---- lexer ---- */

typedef enum TokKind {
        TOK_END,
        TOK_SPACE,
        TOK_COMMENT,
        TOK_STRING,        /* '...', E'...', $tag$...$tag$ */
        TOK_QIDENT,        /* "..." */
        TOK_WORD,          /* unquoted identifier or keyword */
        TOK_SEMI,
        TOK_OTHER,         /* any other single byte (or a run of digits) */
} TokKind;

typedef struct Tok {
        TokKind kind;
        size_t start, end;
} Tok;

static bool is_ident_start(unsigned char c) {
        return isalpha(c) || c == '_' || c >= 0x80;
}
static bool is_ident_cont(unsigned char c) {
        return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Length of a dollar-quote tag at p ("$$" or "$tag$"), 0 if none. */
static size_t dollar_tag(const char *p, size_t n) {
        if (n < 2 || p[0] != '$')
                return 0;
        size_t i = 1;
        if (p[i] != '$') {
                if (!is_ident_start((unsigned char) p[i]))
                        return 0;
                while (i < n && p[i] != '$' && (is_ident_cont((unsigned char) p[i]) && p[i] != '$'))
                        i++;
                if (i >= n || p[i] != '$')
                        return 0;
        }
        return i + 1;
}

/* The token at *pos; an unterminated literal or comment runs to the end. */
/* End of a quoted token whose body starts at i: a doubled quote stands for
 * itself, and with backslash a backslash escapes the next byte. Returns
 * the index after the closing quote (or n when it is missing). */
static size_t quoted_end(const char *p, size_t n, size_t i, char q, bool backslash) {
        while (i < n) {
                if (backslash && p[i] == '\\' && i + 1 < n)
                        i += 2;
                else if (p[i] == q && i + 1 < n && p[i + 1] == q)
                        i += 2;
                else if (p[i] == q)
                        return i + 1;
                else
                        i++;
        }
        return n;
}

static Tok next_tok(const char *s, size_t len, size_t pos) {
        Tok t = { .start = pos };
        if (pos >= len) {
                t.kind = TOK_END;
                t.end = len;
                return t;
        }
        const char *p = s + pos;
        size_t n = len - pos, i = 0;
        unsigned char c = (unsigned char) p[0];
        if (isspace(c)) {
                while (i < n && isspace((unsigned char) p[i]))
                        i++;
                t.kind = TOK_SPACE;
        } else if (c == '-' && n > 1 && p[1] == '-') {
                while (i < n && p[i] != '\n')
                        i++;
                t.kind = TOK_COMMENT;
        } else if (c == '/' && n > 1 && p[1] == '*') {
                unsigned depth = 0;
                while (i < n) {
                        if (i + 1 < n && p[i] == '/' && p[i + 1] == '*') {
                                depth++;
                                i += 2;
                        } else if (i + 1 < n && p[i] == '*' && p[i + 1] == '/') {
                                i += 2;
                                if (--depth == 0)
                                        break;
                        } else
                                i++;
                }
                t.kind = TOK_COMMENT;
        } else if ((c == 'E' || c == 'e') && n > 1 && p[1] == '\'') {
                /* E'...': backslash escapes, and '' */
                i = quoted_end(p, n, 2, '\'', true);
                t.kind = TOK_STRING;
        } else if (c == '\'') {
                i = quoted_end(p, n, 1, '\'', false);
                t.kind = TOK_STRING;
        } else if (c == '"') {
                i = quoted_end(p, n, 1, '"', false);
                t.kind = TOK_QIDENT;
        } else if (c == '$' && dollar_tag(p, n) > 0) {
                size_t tl = dollar_tag(p, n);
                i = tl;
                for (;;) {
                        if (i >= n) {
                                i = n;
                                break;
                        }
                        if (p[i] == '$' && n - i >= tl && memcmp(p + i, p, tl) == 0) {
                                i += tl;
                                break;
                        }
                        i++;
                }
                t.kind = TOK_STRING;
        } else if (is_ident_start(c)) {
                while (i < n && is_ident_cont((unsigned char) p[i]))
                        i++;
                t.kind = TOK_WORD;
        } else if (isdigit(c)) {
                while (i < n && (isalnum((unsigned char) p[i]) || p[i] == '_' || p[i] == '.'))
                        i++;
                t.kind = TOK_OTHER;
        } else if (c == ';') {
                i = 1;
                t.kind = TOK_SEMI;
        } else {
                i = 1;
                t.kind = TOK_OTHER;
        }
        t.end = pos + i;
        return t;
}

static bool tok_is_word(const char *s, const Tok *t, const char *word) {
        size_t n = strlen(word);
        return t->kind == TOK_WORD && t->end - t->start == n && strncasecmp(s + t->start, word, n) == 0;
}

/* The identifier a WORD or QIDENT token stands for, as SQL reads it. */
static char *tok_ident(const char *s, const Tok *t) {
        size_t n = t->end - t->start;
        char *out = malloc(n + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        if (t->kind == TOK_QIDENT) {
                for (size_t i = t->start + 1; i < t->end; i++) {
                        if (s[i] == '"') {
                                if (i + 1 < t->end && s[i + 1] == '"')
                                        i++;
                                else
                                        break;
                        }
                        out[o++] = s[i];
                }
        } else
                for (size_t i = t->start; i < t->end; i++)
                        out[o++] = (char) ((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
        out[o] = 0;
        return out;
}

/* ---- identifiers ---- */

char *lb_pg_ident_quote(const char *ident) {
        size_t n = strlen(ident), q = 0;
        for (size_t i = 0; i < n; i++)
                q += ident[i] == '"';
        char *out = malloc(n + q + 3);
        if (!out)
                return NULL;
        size_t o = 0;
        out[o++] = '"';
        for (size_t i = 0; i < n; i++) {
                if (ident[i] == '"')
                        out[o++] = '"';
                out[o++] = ident[i];
        }
        out[o++] = '"';
        out[o] = 0;
        return out;
}

char *lb_pg_ident_qualified(const char *schema, const char *name) {
        _cleanup_free_ char *a = lb_pg_ident_quote(schema);
        _cleanup_free_ char *b = lb_pg_ident_quote(name);
        if (!a || !b)
                return NULL;
        return lb_strdup_printf("%s.%s", a, b);
}

int lb_pg_parse_qualified(const char *s, const char *default_schema, char **ret_schema, char **ret_name) {
        char *parts[2] = {};
        size_t n = 0;
        const char *p = s;
        int k = -EINVAL;
        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                LbBuf b = {};
                if (*p == '"') {
                        p++;
                        for (;;) {
                                if (!*p) {
                                        lb_buf_free(&b);
                                        goto fail;
                                }
                                if (*p == '"') {
                                        if (p[1] != '"')
                                                break;
                                        p++;
                                }
                                if (lb_buf_append_u8(&b, (uint8_t) *p) < 0) {
                                        lb_buf_free(&b);
                                        k = -ENOMEM;
                                        goto fail;
                                }
                                p++;
                        }
                        p++;   /* closing quote */
                        if (b.len == 0) {
                                lb_buf_free(&b);
                                goto fail;
                        }
                } else {
                        const char *start = p;
                        while (*p && *p != '.' && *p != '"')
                                p++;
                        const char *end = p;
                        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                                end--;
                        if (end == start || *p == '"')
                                goto fail;
                        for (const char *q = start; q < end; q++) {
                                char c = (*q >= 'A' && *q <= 'Z') ? (char) (*q + 32) : *q;
                                if (lb_buf_append_u8(&b, (uint8_t) c) < 0) {
                                        lb_buf_free(&b);
                                        k = -ENOMEM;
                                        goto fail;
                                }
                        }
                }
                if (n == 2) {
                        lb_buf_free(&b);
                        goto fail;
                }
                if (lb_buf_append_u8(&b, 0) < 0) {
                        lb_buf_free(&b);
                        k = -ENOMEM;
                        goto fail;
                }
                parts[n++] = (char *) b.data;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                if (*p != '.')
                        goto fail;
                p++;
        }
        if (n == 1) {
                parts[1] = parts[0];
                parts[0] = strdup(default_schema);
                if (!parts[0]) {
                        k = -ENOMEM;
                        goto fail;
                }
        }
        *ret_schema = parts[0];
        *ret_name = parts[1];
        return 0;
fail:
        free(parts[0]);
        free(parts[1]);
        return k;
}

bool lb_pg_columns_valid(const char *s) {
        const char *p = s;
        while (*p == ' ')
                p++;
        if (!*p)
                return true;
        for (;;) {
                if (*p == '"') {
                        p++;
                        bool any = false;
                        for (;;) {
                                if (!*p)
                                        return false;
                                if (*p == '"') {
                                        if (p[1] != '"')
                                                break;
                                        p++;
                                }
                                any = true;
                                p++;
                        }
                        p++;
                        if (!any)
                                return false;
                } else if (is_ident_start((unsigned char) *p)) {
                        while (is_ident_cont((unsigned char) *p))
                                p++;
                } else
                        return false;
                while (*p == ' ')
                        p++;
                if (!*p)
                        return true;
                if (*p != ',')
                        return false;
                p++;
                while (*p == ' ')
                        p++;
        }
}

/* ---- statements ---- */

void lb_pg_strv_free(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static int push_trimmed(char ***v, size_t *n, size_t *cap, const char *p, size_t len) {
        while (len > 0 && isspace((unsigned char) p[0])) {
                p++;
                len--;
        }
        while (len > 0 && isspace((unsigned char) p[len - 1]))
                len--;
        if (len == 0)
                return 0;
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                char **nv = realloc(*v, nc * sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                *v = nv;
                *cap = nc;
        }
        char *s = strndup(p, len);
        if (!s)
                return -ENOMEM;
        (*v)[(*n)++] = s;
        return 0;
}

int lb_pg_sql_statements(const char *sql, size_t len, char ***ret, size_t *ret_n) {
        char **v = NULL;
        size_t n = 0, cap = 0;
        size_t stmt = 0;          /* start of the current statement */
        bool blank = true;        /* nothing but space and comments since stmt */
        size_t pos = 0;
        int k = 0;
        for (;;) {
                Tok t = next_tok(sql, len, pos);
                if (t.kind == TOK_END)
                        break;
                if (blank && t.kind != TOK_SPACE && t.kind != TOK_COMMENT && sql[t.start] == '\\') {
                        /* A psql meta-command: the rest of the line. */
                        size_t e = t.start;
                        while (e < len && sql[e] != '\n')
                                e++;
                        k = push_trimmed(&v, &n, &cap, sql + t.start, e - t.start);
                        if (k < 0)
                                goto fail;
                        pos = stmt = e;
                        continue;
                }
                if (t.kind == TOK_SEMI) {
                        if (!blank) {
                                k = push_trimmed(&v, &n, &cap, sql + stmt, t.start - stmt);
                                if (k < 0)
                                        goto fail;
                        }
                        stmt = t.end;
                        blank = true;
                } else if (t.kind == TOK_COMMENT && blank) {
                        stmt = t.end;     /* leading comments are not part of a statement */
                } else if (t.kind != TOK_SPACE && t.kind != TOK_COMMENT)
                        blank = false;
                pos = t.end;
        }
        if (!blank) {
                k = push_trimmed(&v, &n, &cap, sql + stmt, len - stmt);
                if (k < 0)
                        goto fail;
        }
        *ret = v;
        *ret_n = n;
        return 0;
fail:
        lb_pg_strv_free(v, n);
        return k;
}

static Tok next_significant(const char *s, size_t len, size_t pos) {
        for (;;) {
                Tok t = next_tok(s, len, pos);
                if (t.kind != TOK_SPACE && t.kind != TOK_COMMENT)
                        return t;
                pos = t.end;
        }
}

int lb_pg_sql_rename_database(const char *stmt, const char *from, const char *to, char **ret, unsigned *ret_count) {
        size_t len = strlen(stmt);
        _cleanup_free_ char *qto = lb_pg_ident_quote(to);
        if (!qto)
                return -ENOMEM;
        LbBuf out = {};
        unsigned count = 0;
        size_t pos = 0, copied = 0;
        int k = 0;
        for (;;) {
                Tok t = next_tok(stmt, len, pos);
                if (t.kind == TOK_END)
                        break;
                pos = t.end;
                if (!tok_is_word(stmt, &t, "database"))
                        continue;
                Tok id = next_significant(stmt, len, t.end);
                if (id.kind != TOK_WORD && id.kind != TOK_QIDENT)
                        continue;
                _cleanup_free_ char *name = tok_ident(stmt, &id);
                if (!name) {
                        k = -ENOMEM;
                        goto fail;
                }
                if (strcmp(name, from) != 0)
                        continue;
                if ((k = lb_buf_append(&out, stmt + copied, id.start - copied)) < 0 ||
                    (k = lb_buf_append(&out, qto, strlen(qto))) < 0)
                        goto fail;
                copied = pos = id.end;
                count++;
        }
        if ((k = lb_buf_append(&out, stmt + copied, len - copied)) < 0 || (k = lb_buf_append_u8(&out, 0)) < 0)
                goto fail;
        *ret = (char *) out.data;
        if (ret_count)
                *ret_count = count;
        return 0;
fail:
        lb_buf_free(&out);
        return k;
}

int lb_pg_setval_target(const char *stmt, char **ret_schema, char **ret_name) {
        size_t len = strlen(stmt);
        Tok t = next_significant(stmt, len, 0);
        if (!tok_is_word(stmt, &t, "select"))
                return -EINVAL;
        t = next_significant(stmt, len, t.end);
        if (tok_is_word(stmt, &t, "pg_catalog")) {
                t = next_significant(stmt, len, t.end);
                if (t.kind != TOK_OTHER || stmt[t.start] != '.')
                        return -EINVAL;
                t = next_significant(stmt, len, t.end);
        }
        if (!tok_is_word(stmt, &t, "setval"))
                return -EINVAL;
        t = next_significant(stmt, len, t.end);
        if (t.kind != TOK_OTHER || stmt[t.start] != '(')
                return -EINVAL;
        t = next_significant(stmt, len, t.end);
        if (t.kind != TOK_STRING || stmt[t.start] != '\'')
                return -EINVAL;
        /* The literal's value: '' stands for '. */
        _cleanup_free_ char *lit = malloc(t.end - t.start);
        if (!lit)
                return -ENOMEM;
        size_t o = 0;
        for (size_t i = t.start + 1; i < t.end; i++) {
                if (stmt[i] == '\'') {
                        if (i + 1 < t.end && stmt[i + 1] == '\'')
                                i++;
                        else
                                break;
                }
                lit[o++] = stmt[i];
        }
        lit[o] = 0;
        return lb_pg_parse_qualified(lit, "public", ret_schema, ret_name);
}

/* ---- the relation of a post-data statement ---- */

void lb_pg_block_target_clear(LbPgBlockTarget *t) {
        free(t->schema);
        free(t->name);
        free(t->ref_schema);
        free(t->ref_name);
        *t = (LbPgBlockTarget) {};
}

static bool tok_is(const char *s, const Tok *t, char c) {
        return t->kind == TOK_OTHER && t->end - t->start == 1 && s[t->start] == c;
}

static bool tok_is_name(const Tok *t) {
        return t->kind == TOK_WORD || t->kind == TOK_QIDENT;
}

/* schema.name at *t; on success *t is the token after it. */
static int parse_qual(const char *s, size_t len, Tok *t, char **ret_schema, char **ret_name) {
        if (!tok_is_name(t))
                return -EINVAL;
        Tok dot = next_tok(s, len, t->end);
        if (!tok_is(s, &dot, '.'))
                return -EINVAL;   /* unqualified: not pg_dump's */
        Tok n = next_tok(s, len, dot.end);
        if (!tok_is_name(&n))
                return -EINVAL;
        char *a = tok_ident(s, t), *b = tok_ident(s, &n);
        if (!a || !b) {
                free(a);
                free(b);
                return -ENOMEM;
        }
        *ret_schema = a;
        *ret_name = b;
        *t = next_significant(s, len, n.end);
        return 0;
}

int lb_pg_block_target(const char *sql, size_t len, LbPgBlockTarget *ret) {
        LbPgBlockTarget x = {};
        Tok t = next_significant(sql, len, 0);
        int k = -EINVAL;
        if (tok_is_word(sql, &t, "create")) {
                t = next_significant(sql, len, t.end);
                if (tok_is_word(sql, &t, "unique"))
                        t = next_significant(sql, len, t.end);
                if (!tok_is_word(sql, &t, "index"))
                        goto fail;
                t = next_significant(sql, len, t.end);
                if (!tok_is_name(&t) || tok_is_word(sql, &t, "on"))
                        goto fail;   /* pg_dump names every index */
                t = next_significant(sql, len, t.end);
                if (!tok_is_word(sql, &t, "on"))
                        goto fail;
                t = next_significant(sql, len, t.end);
                if ((x.only = tok_is_word(sql, &t, "only")))
                        t = next_significant(sql, len, t.end);
                x.index = true;
                if ((k = parse_qual(sql, len, &t, &x.schema, &x.name)) < 0)
                        goto fail;
                *ret = x;
                return 0;
        }
        if (!tok_is_word(sql, &t, "alter"))
                goto fail;
        t = next_significant(sql, len, t.end);
        if (!tok_is_word(sql, &t, "table"))
                goto fail;
        t = next_significant(sql, len, t.end);
        if ((x.only = tok_is_word(sql, &t, "only")))
                t = next_significant(sql, len, t.end);
        if ((k = parse_qual(sql, len, &t, &x.schema, &x.name)) < 0)
                goto fail;
        k = -EINVAL;
        /* ADD CONSTRAINT name FOREIGN KEY (cols) REFERENCES s.t */
        if (!tok_is_word(sql, &t, "add")) {
                *ret = x;
                return 0;
        }
        t = next_significant(sql, len, t.end);
        if (!tok_is_word(sql, &t, "constraint"))
                goto done;
        t = next_significant(sql, len, t.end);
        if (!tok_is_name(&t))
                goto done;
        t = next_significant(sql, len, t.end);
        if (!tok_is_word(sql, &t, "foreign"))
                goto done;
        t = next_significant(sql, len, t.end);
        if (!tok_is_word(sql, &t, "key"))
                goto fail;
        t = next_significant(sql, len, t.end);
        if (!tok_is(sql, &t, '('))
                goto fail;
        for (;;) {
                t = next_significant(sql, len, t.end);
                if (!tok_is_name(&t))
                        goto fail;
                t = next_significant(sql, len, t.end);
                if (tok_is(sql, &t, ')'))
                        break;
                if (!tok_is(sql, &t, ','))
                        goto fail;
        }
        t = next_significant(sql, len, t.end);
        if (!tok_is_word(sql, &t, "references"))
                goto fail;
        t = next_significant(sql, len, t.end);
        if ((k = parse_qual(sql, len, &t, &x.ref_schema, &x.ref_name)) < 0)
                goto fail;
done:
        *ret = x;
        return 0;
fail:
        lb_pg_block_target_clear(&x);
        return k;
}

/* ---- pg_dump script blocks ---- */

void lb_pg_sql_script_clear(LbPgSqlScript *s) {
        for (size_t i = 0; i < s->n_blocks; i++) {
                free(s->blocks[i].name);
                free(s->blocks[i].type);
                free(s->blocks[i].schema);
                free(s->blocks[i].owner);
                free(s->blocks[i].tablespace);
        }
        free(s->blocks);
        *s = (LbPgSqlScript) {};
}

/* The line at pos: its length without the newline, and where the next begins. */
static size_t line_at(const char *s, size_t len, size_t pos, size_t *ret_next) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        size_t e = nl ? (size_t) (nl - s) : len;
        *ret_next = nl ? e + 1 : len;
        return e - pos;
}

static bool line_is(const char *s, size_t n, const char *lit) {
        size_t l = strlen(lit);
        if (n > 0 && s[n - 1] == '\r')
                n--;
        return n == l && memcmp(s, lit, l) == 0;
}

static bool line_starts(const char *s, size_t n, const char *lit) {
        size_t l = strlen(lit);
        return n >= l && memcmp(s, lit, l) == 0;
}

/* Finds "sep" in [p, p+n): its offset, or n. */
static size_t find_sep(const char *p, size_t n, const char *sep) {
        size_t l = strlen(sep);
        for (size_t i = 0; i + l <= n; i++)
                if (memcmp(p + i, sep, l) == 0)
                        return i;
        return n;
}

/* "Name: N; Type: T; Schema: S; Owner: O[; Tablespace: X]" */
static int parse_header(const char *p, size_t n, LbPgSqlBlock *b) {
        if (n > 0 && p[n - 1] == '\r')
                n--;
        static const char *const seps[] = { "; Type: ", "; Schema: ", "; Owner: ", "; Tablespace: " };
        char **fields[] = { &b->name, &b->type, &b->schema, &b->owner };
        for (size_t f = 0; f < 4; f++) {
                size_t e = find_sep(p, n, seps[f]);
                *fields[f] = strndup(p, e);
                if (!*fields[f])
                        return -ENOMEM;
                if (e == n) {
                        p += n;
                        n = 0;
                } else {
                        size_t sl = strlen(seps[f]);
                        p += e + sl;
                        n -= e + sl;
                        /* What follows "; Tablespace: " is the last field. */
                        if (f == 3 && !(b->tablespace = strndup(p, n)))
                                return -ENOMEM;
                }
        }
        return 0;
}

int lb_pg_sql_split(const char *sql, size_t len, LbPgSqlScript *ret) {
        LbPgSqlScript s = { .preamble_len = len, .trailer_offset = len };
        size_t cap = 0;
        size_t prev = 0, prev_len = 0;   /* the previous line */
        bool have_prev = false;
        for (size_t pos = 0; pos < len;) {
                size_t next, n = line_at(sql, len, pos, &next);
                const char *line = sql + pos;
                if (have_prev && line_is(sql + prev, prev_len, "--")) {
                        const char *hdr = NULL;
                        if (line_starts(line, n, "-- Name: "))
                                hdr = line + 9;
                        else if (line_starts(line, n, "-- Data for Name: "))
                                hdr = line + 18;
                        if (hdr) {
                                if (s.n_blocks == cap) {
                                        size_t nc = cap ? cap * 2 : 64;
                                        LbPgSqlBlock *nb = realloc(s.blocks, nc * sizeof *nb);
                                        if (!nb)
                                                goto oom;
                                        s.blocks = nb;
                                        cap = nc;
                                }
                                LbPgSqlBlock *b = &s.blocks[s.n_blocks++];
                                *b = (LbPgSqlBlock) { .offset = prev };
                                if (parse_header(hdr, n - (size_t) (hdr - line), b) < 0)
                                        goto oom;
                                if (s.n_blocks == 1)
                                        s.preamble_len = prev;
                                else
                                        s.blocks[s.n_blocks - 2].len = prev - s.blocks[s.n_blocks - 2].offset;
                        } else if (line_is(line, n, "-- PostgreSQL database dump complete")) {
                                s.trailer_offset = prev;
                                break;
                        }
                }
                prev = pos;
                prev_len = n;
                have_prev = true;
                pos = next;
        }
        if (s.n_blocks > 0) {
                LbPgSqlBlock *last = &s.blocks[s.n_blocks - 1];
                last->len = s.trailer_offset - last->offset;
        } else if (s.trailer_offset < s.preamble_len)
                s.preamble_len = s.trailer_offset;
        *ret = s;
        return 0;
oom:
        lb_pg_sql_script_clear(&s);
        return -ENOMEM;
}
