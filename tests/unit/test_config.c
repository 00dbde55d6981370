/* SPDX-License-Identifier: MIT */
/*
 * The config parser (cmd/config.c): every good file in tests/data/config
 * parses to the values it holds; every bad file yields exactly the
 * problems its "# expect: " lines list, in order; the shipped example
 * config is valid; permission rules for secrets.
 */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cmd/config.h"
#include "tests.h"

static char *src_path(const char *rel) {
        const char *src = getenv("LB_SRC");
        if (src)
                return lb_strdup_printf("%s/%s", src, rel);
        const char *f = __FILE__;
        int dirlen = (int) (strrchr(f, '/') - f);
        if (f[0] == '/')
                return lb_strdup_printf("%.*s/../../%s", dirlen, f, rel);
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        CHECK(n > 0);
        exe[n] = 0;
        *strrchr(exe, '/') = 0;
        return lb_strdup_printf("%s/../../%.*s/../../%s", exe, dirlen, f, rel);
}

static int parse(const char *rel, CliConfig **ret, CliDiag *d) {
        _cleanup_free_ char *p = src_path(rel);
        _cleanup_buf_ LbBuf b = {};
        CHECK_OK(lb_read_file(p, 1u << 20, &b));
        return cli_config_parse_text("longbox.conf", (const char *) b.data, b.len, ret, d);
}

static void dump_diag(const CliDiag *d) {
        for (size_t i = 0; i < d->n; i++)
                fprintf(stderr, "  diag: %s\n", d->msgs[i]);
}

TEST(test_minimal) {
        CliConfig *c = NULL;
        CliDiag d = {};
        CHECK_OK(parse("tests/data/config/good-minimal.conf", &c, &d));
        CHECK(strcmp(c->repo_location, "/srv/repo") == 0);
        CHECK_EQ_INT(c->max_age_ns, CLI_DEFAULT_MAX_AGE_NS);
        CHECK(!c->has_secrets);
        CHECK(!c->has_retention);
        CHECK_EQ_INT(c->n_dbs, 0);
        cli_config_free(c);
}

TEST(test_several) {
        CliConfig *c = NULL;
        CliDiag d = {};
        int k = parse("tests/data/config/good-several-databases.conf", &c, &d);
        if (k < 0)
                dump_diag(&d);
        CHECK_OK(k);
        CHECK(strcmp(c->repo_location, "/srv/repo") == 0);
        CHECK_EQ_INT(c->n_dbs, 2);
        CHECK(strcmp(c->dbs[0].name, "shop") == 0);
        CHECK(strcmp(c->dbs[0].conninfo, "dbname=shop") == 0);
        CHECK_EQ_INT(c->dbs[0].jobs, 4);
        CHECK_EQ_INT(c->dbs[0].order, -1);
        CHECK(strcmp(c->dbs[1].name, "crm") == 0);
        CHECK_EQ_INT(c->dbs[1].order, 1);
        /* a password in a URI is a secret; this one has none */
        CHECK(!c->has_secrets);
        CHECK(c->has_retention);
        CHECK_EQ_INT(c->retention.last, 3);
        CHECK_EQ_INT(c->retention.yearly, LB_POLICY_UNLIMITED);
        CHECK_EQ_INT(c->retention.within.years, 1);
        CHECK_EQ_INT(c->retention.within.months, 2);
        CHECK(!c->prune);
        CHECK_EQ_INT(c->max_age_ns, 36ll * 3600 * 1000000000);
        cli_config_free(c);
}

TEST(test_bom_crlf) {
        CliConfig *c = NULL;
        CliDiag d = {};
        int k = parse("tests/data/config/good-bom-crlf.conf", &c, &d);
        if (k < 0)
                dump_diag(&d);
        CHECK_OK(k);
        CHECK(strcmp(c->repo_location, "/srv/bom") == 0);
        cli_config_free(c);
}

TEST(test_example) {
        CliConfig *c = NULL;
        CliDiag d = {};
        int k = parse("scripts/longbox.conf.example", &c, &d);
        if (k < 0)
                dump_diag(&d);
        CHECK_OK(k);
        /* The shipped default retention: 7 daily, 5 weekly, 4 monthly. */
        CHECK(c->has_retention);
        CHECK_EQ_INT(c->retention.daily, 7);
        CHECK_EQ_INT(c->retention.weekly, 5);
        CHECK_EQ_INT(c->retention.monthly, 4);
        CHECK_EQ_INT(c->retention.last + c->retention.hourly + c->retention.yearly, 0);
        CHECK(c->has_secrets);
        CHECK(strcmp(c->password_file, "/etc/longbox/passphrase") == 0);
        CHECK_EQ_INT(c->n_dbs, 1);
        CHECK(c->remote_location != NULL);
        CHECK_EQ_INT(c->drill_interval_ns, 92ll * 86400 * 1000000000);
        cli_config_free(c);
}

/* Every bad-*.conf: its problems are exactly its "# expect: " lines. */
TEST(test_bad_files) {
        _cleanup_free_ char *dir = src_path("tests/data/config");
        DIR *dd = opendir(dir);
        CHECK(dd);
        struct dirent *de;
        unsigned files = 0;
        while ((de = readdir(dd))) {
                if (strncmp(de->d_name, "bad-", 4) != 0)
                        continue;
                _cleanup_free_ char *rel = lb_strdup_printf("tests/data/config/%s", de->d_name);
                _cleanup_free_ char *p = src_path(rel);
                _cleanup_buf_ LbBuf b = {};
                CHECK_OK(lb_read_file(p, 1u << 20, &b));
                _cleanup_free_ char *text = strndup((const char *) b.data, b.len);
                /* the expectations */
                char *want[32];
                size_t n_want = 0;
                for (char *l = text; l && *l;) {
                        char *nl = strchr(l, '\n');
                        if (nl)
                                *nl = 0;
                        if (strncmp(l, "# expect: ", 10) == 0 && n_want < 32)
                                want[n_want++] = l + 10;
                        l = nl ? nl + 1 : NULL;
                }
                CHECK(n_want > 0);
                CliConfig *c = NULL;
                CliDiag d = {};
                int k = cli_config_parse_text("longbox.conf", (const char *) b.data, b.len, &c, &d);
                bool ok = k == -EINVAL && c == NULL && d.n == n_want;
                for (size_t i = 0; ok && i < n_want; i++) {
                        bool found = false;
                        for (size_t j = 0; j < d.n && !found; j++)
                                found = strstr(d.msgs[j], want[i]) != NULL;
                        ok = found;
                }
                if (!ok) {
                        fprintf(stderr, "%s: k=%d, %zu problems, expected %zu:\n", de->d_name, k, d.n, n_want);
                        for (size_t i = 0; i < n_want; i++)
                                fprintf(stderr, "  want: %s\n", want[i]);
                        dump_diag(&d);
                        exit(1);
                }
                cli_diag_clear(&d);
                files++;
        }
        closedir(dd);
        CHECK(files >= 10);
}

static void write_file(const char *path, const char *text, int mode) {
        FILE *f = fopen(path, "we");
        CHECK(f);
        fputs(text, f);
        fclose(f);
        CHECK(chmod(path, (mode_t) mode) == 0);
}

static bool has_diag(const CliDiag *d, const char *s) {
        for (size_t i = 0; i < d->n; i++)
                if (strstr(d->msgs[i], s))
                        return true;
        return false;
}

TEST(test_permissions) {
        char tmpl[] = "/tmp/lb-test-config.XXXXXX";
        CHECK(mkdtemp(tmpl));
        _cleanup_free_ char *conf = lb_path_join(tmpl, "longbox.conf");
        _cleanup_free_ char *pw = lb_path_join(tmpl, "pw");
        _cleanup_free_ char *text = lb_strdup_printf("[repository]\nlocation = /srv/r\npassword-file = %s\n", pw);
        write_file(pw, "secret\n", 0600);
        CliConfig *c = NULL;
        CliDiag d = {};

        /* A config naming a secret file, readable by others: refused. */
        write_file(conf, text, 0644);
        CHECK(cli_config_parse_file(conf, true, &c, &d) == -EINVAL);
        CHECK(has_diag(&d, "holds secrets but is readable by group or others (mode 0644); run 'chmod 600"));
        cli_diag_clear(&d);
        /* Without the permission checks it parses. */
        CHECK_OK(cli_config_parse_file(conf, false, &c, &d));
        c = cli_config_free(c);

        /* 0600: fine. */
        CHECK(chmod(conf, 0600) == 0);
        CHECK_OK(cli_config_parse_file(conf, true, &c, &d));
        c = cli_config_free(c);

        /* The secret file itself readable by others. */
        CHECK(chmod(pw, 0640) == 0);
        CHECK(cli_config_parse_file(conf, true, &c, &d) == -EINVAL);
        CHECK(has_diag(&d, "password-file"));
        CHECK(has_diag(&d, "mode 0640"));
        cli_diag_clear(&d);
        CHECK(chmod(pw, 0600) == 0);

        /* A config without secrets may be world-readable, never writable. */
        write_file(conf, "[repository]\nlocation = /srv/r\n", 0644);
        CHECK_OK(cli_config_parse_file(conf, true, &c, &d));
        c = cli_config_free(c);
        CHECK(chmod(conf, 0666) == 0);
        CHECK(cli_config_parse_file(conf, true, &c, &d) == -EINVAL);
        CHECK(has_diag(&d, "writable by group or others"));
        cli_diag_clear(&d);

        /* An inline password or a password in a conninfo is a secret too. */
        write_file(conf, "[database x]\nconninfo = host=h dbname=x password=p\n", 0644);
        CHECK(cli_config_parse_file(conf, true, &c, &d) == -EINVAL);
        CHECK(has_diag(&d, "holds secrets"));
        cli_diag_clear(&d);
        write_file(conf, "[database x]\nconninfo = postgresql://u:p@h/x\n", 0644);
        CHECK(cli_config_parse_file(conf, true, &c, &d) == -EINVAL);
        cli_diag_clear(&d);
        /* So is a location URL with user:password@. */
        write_file(conf, "[remote]\nlocation = webdav:https://u:p@h/r\n", 0644);
        CHECK(cli_config_parse_file(conf, true, &c, &d) == -EINVAL);
        CHECK(has_diag(&d, "holds secrets"));
        cli_diag_clear(&d);

        /* A missing secret file is reported. */
        write_file(conf, "[remote]\ncredentials-file = /nonexistent/creds\n", 0600);
        CHECK(cli_config_parse_file(conf, true, &c, &d) == -EINVAL);
        CHECK(has_diag(&d, "credentials-file /nonexistent/creds"));
        cli_diag_clear(&d);

        /* A missing config file. */
        CHECK(cli_config_parse_file("/nonexistent/longbox.conf", true, &c, &d) == -ENOENT);
        CHECK(has_diag(&d, "cannot open"));
        cli_diag_clear(&d);

        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", tmpl);
        CHECK(system(cmd) == 0);
}

TEST(test_age) {
        int64_t ns;
        CHECK_OK(cli_parse_age("26h", &ns));
        CHECK_EQ_INT(ns, 26ll * 3600 * 1000000000);
        CHECK_OK(cli_parse_age("1d12h", &ns));
        CHECK_EQ_INT(ns, 36ll * 3600 * 1000000000);
        CHECK_OK(cli_parse_age("90", &ns));
        CHECK_EQ_INT(ns, 90ll * 1000000000);
        CHECK_OK(cli_parse_age("2w30m", &ns));
        CHECK_EQ_INT(ns, (14ll * 86400 + 1800) * 1000000000);
        CHECK(cli_parse_age("", &ns) == -EINVAL);
        CHECK(cli_parse_age("1h1h", &ns) == -EINVAL);
        CHECK(cli_parse_age("5x", &ns) == -EINVAL);
        CHECK(cli_parse_age("-1h", &ns) == -EINVAL);
        CHECK(cli_parse_age("1h5", &ns) == -EINVAL);
        CHECK(cli_parse_age("999999999999d", &ns) == -ERANGE);
        char out[32];
        cli_format_age(93 * 60 * 1000000000ll, out);
        CHECK(strcmp(out, "1h33m") == 0);
}

/* cli_config_redact: every value holding a secret inline is replaced to
 * the end of its line; everything else stays byte for byte. */
TEST(test_redact) {
        static const char text[] =
                "; longbox config: password = in a comment stays\n"
                "[repository]\n"
                "location = /srv/repo\n"
                "password = s3cr3t pass ; an inline comment goes too\n"
                "cache-dir = /var/cache/longbox\n"
                "\n"
                "[remote]\n"
                "  location = webdav:https://user:dav-pw@dav.example.com/r\r\n"
                "credentials-file = /etc/longbox/creds\n"
                "[database shop]\n"
                "conninfo = host=db1 dbname=shop password='db pw'\n"
                "jobs = 2\n"
                "[database crm]\n"
                "conninfo = postgresql://u@db2/crm?pass%77ord=uri-pw\n"
                "[database plain]\n"
                "conninfo = postgresql://backup@db3:5433/plain\n"
                "[notify]\n"
                "webhook: https://hooks.example.com/services/T0/B0/tok3n?channel=ops\n"
                "on-success = yes\n"
                "[drill]\n"
                "conninfo=host=db1 user=longbox password=drill-pw";
        static const char want[] =
                "; longbox config: password = in a comment stays\n"
                "[repository]\n"
                "location = /srv/repo\n"
                "password = <redacted>\n"
                "cache-dir = /var/cache/longbox\n"
                "\n"
                "[remote]\n"
                "  location = <redacted>\r\n"
                "credentials-file = /etc/longbox/creds\n"
                "[database shop]\n"
                "conninfo = <redacted>\n"
                "jobs = 2\n"
                "[database crm]\n"
                "conninfo = <redacted>\n"
                "[database plain]\n"
                "conninfo = postgresql://backup@db3:5433/plain\n"
                "[notify]\n"
                "webhook: <redacted>\n"
                "on-success = yes\n"
                "[drill]\n"
                "conninfo=<redacted>";
        CliConfig *c = NULL;
        CliDiag d = {};
        int k = cli_config_parse_text("longbox.conf", text, sizeof text - 1, &c, &d);
        if (k < 0)
                dump_diag(&d);
        CHECK_OK(k);
        CHECK(c->has_secrets);
        CHECK_EQ_INT(c->n_secret_values, 6);
        _cleanup_buf_ LbBuf out = {};
        CHECK_OK(cli_config_redact(c, &out));
        if (out.len != sizeof want - 1 || memcmp(out.data, want, out.len) != 0) {
                fprintf(stderr, "redacted:\n%.*s\n", (int) out.len, (const char *) out.data);
                CHECK(false);
        }
        cli_config_free(c);

        /* No secret: the text unchanged; a BOM kept. */
        static const char plain[] = "\xef\xbb\xbf[repository]\nlocation = /srv/r\npassword-file = /etc/pw\n";
        CHECK_OK(cli_config_parse_text("longbox.conf", plain, sizeof plain - 1, &c, &d));
        CHECK_EQ_INT(c->n_secret_values, 0);
        CHECK_OK(cli_config_redact(c, &out));
        CHECK(out.len == sizeof plain - 1 && memcmp(out.data, plain, out.len) == 0);
        cli_config_free(c);
}

int main(void) {
        RUN(test_minimal);
        RUN(test_several);
        RUN(test_bom_crlf);
        RUN(test_example);
        RUN(test_bad_files);
        RUN(test_permissions);
        RUN(test_age);
        RUN(test_redact);
        return 0;
}
