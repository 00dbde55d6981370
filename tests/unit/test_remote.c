/* SPDX-License-Identifier: MIT */
/* Location strings and the XML listings of remote servers. */
#include "store/backend.h"
#include "store/location.h"
#include "store/xmllist.h"
#include "tests.h"

TEST(test_location_good) {
        LbLocation l;
        CHECK_OK(lb_location_parse("s3:https://s3.example.com:9000/my-bucket/a/b_c.d?region=eu-west-1", &l));
        CHECK_EQ_INT(l.kind, LB_LOC_S3);
        CHECK(l.https);
        CHECK(strcmp(l.host, "s3.example.com") == 0);
        CHECK_EQ_INT(l.port, 9000);
        CHECK(strcmp(l.bucket, "my-bucket") == 0);
        CHECK(strcmp(l.prefix, "a/b_c.d") == 0);
        CHECK(strcmp(l.region, "eu-west-1") == 0);
        CHECK(!l.virtual_host);
        lb_location_clear(&l);

        CHECK_OK(lb_location_parse("s3:http://127.0.0.1/bkt/?style=virtual", &l));
        CHECK(strcmp(l.prefix, "") == 0 && l.virtual_host && l.port == 0 && !l.https);
        lb_location_clear(&l);

        CHECK_OK(lb_location_parse("webdav:https://us%40r:p%3Ass@[::1]:8080/dav/x%20y/", &l));
        CHECK_EQ_INT(l.kind, LB_LOC_WEBDAV);
        CHECK(strcmp(l.user, "us@r") == 0 && strcmp(l.password, "p:ss") == 0);
        CHECK(strcmp(l.host, "[::1]") == 0 && l.port == 8080);
        CHECK(strcmp(l.prefix, "/dav/x%20y") == 0);
        lb_location_clear(&l);

        CHECK_OK(lb_location_parse("webdav:http://host", &l));
        CHECK(strcmp(l.prefix, "") == 0 && !l.user);
        lb_location_clear(&l);

        CHECK_OK(lb_location_parse("rclone:gdrive:backups/shop", &l));
        CHECK(l.kind == LB_LOC_RCLONE && strcmp(l.path, "gdrive:backups/shop") == 0);
        lb_location_clear(&l);

        CHECK_OK(lb_location_parse("/srv/backup", &l));
        CHECK(l.kind == LB_LOC_DIR && strcmp(l.path, "/srv/backup") == 0);
        lb_location_clear(&l);
        CHECK_OK(lb_location_parse("dir:rel:path", &l));
        CHECK(l.kind == LB_LOC_DIR && strcmp(l.path, "rel:path") == 0);
        lb_location_clear(&l);
        CHECK(lb_location_is_remote("s3:x") && !lb_location_is_remote("/x"));
}

TEST(test_location_bad) {
        static const char *const bad[] = {
                "", "s3:", "s3:ftp://h/b", "s3:http://h", "s3:http://h/", "s3:http://h/UPPER", "s3:http://h/ab",
                "s3:http://h/b-/x", "s3:http://u@h/bkt", "s3:http://h/bkt/a//b", "s3:http://h/bkt/../x",
                "s3:http://h/bkt/a b", "s3:http://h/bkt?region=", "s3:http://h/bkt?foo=1", "s3:http://h/bkt?style=odd",
                "s3:http://h:0/bkt", "s3:http://h:65536/bkt", "s3:http://h:12a/bkt", "s3:http://-h/bkt",
                "s3:http://h/bkt#frag", "webdav:http://h/a/../b", "webdav:http://h/a%2fb", "webdav:http://h/a%00",
                "webdav:http://h/a?x=1", "webdav:http://:pw@h/", "webdav:http://h/%zz", "webdav:http://[::1/x",
                "rclone:", "rclone:-config=x:y", "rclone:nocolon", "dir:", "s3:http://h/bkt\n",
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++) {
                LbLocation l;
                int k = lb_location_parse(bad[i], &l);
                if (k != -EINVAL) {
                        fprintf(stderr, "accepted bad location '%s'\n", bad[i]);
                        exit(1);
                }
        }
}

TEST(test_obj_paths) {
        const char *name;
        char *p = lb_obj_path(LB_OBJ_PACK, "abcdef");
        CHECK(strcmp(p, "packs/ab/abcdef") == 0);
        CHECK(lb_obj_path_parse(LB_OBJ_PACK, p, &name) && strcmp(name, "abcdef") == 0);
        free(p);
        CHECK(!lb_obj_path_parse(LB_OBJ_PACK, "packs/cd/abcdef", &name));
        CHECK(!lb_obj_path_parse(LB_OBJ_PACK, "packs/abcdef", &name));
        CHECK(lb_obj_path_parse(LB_OBJ_INDEX, "index/00ff", &name) && strcmp(name, "00ff") == 0);
        CHECK(!lb_obj_path_parse(LB_OBJ_INDEX, "index/.tmp-1", &name));
        CHECK(!lb_obj_path_parse(LB_OBJ_INDEX, "index/a/b", &name));
        CHECK(!lb_obj_path_parse(LB_OBJ_SNAPSHOT, "index/00ff", &name));
}

static const char s3_page[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>tok/+=</NextContinuationToken>"
        "<Contents><Key>p/packs/ab/abcd</Key><Size>123</Size></Contents>"
        "<Contents><Key>p/a&amp;b</Key><Size> 0 </Size></Contents></ListBucketResult>";

TEST(test_s3_xml) {
        LbRemoteList l;
        CHECK_OK(lb_s3_parse_list(s3_page, sizeof s3_page - 1, &l));
        CHECK_EQ_INT(l.n, 2);
        CHECK(strcmp(l.v[0].name, "p/packs/ab/abcd") == 0 && l.v[0].size == 123);
        CHECK(strcmp(l.v[1].name, "p/a&b") == 0 && l.v[1].size == 0);
        CHECK(l.truncated && strcmp(l.next_token, "tok/+=") == 0);
        lb_remote_list_clear(&l);

        static const char *const bad[] = {
                "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", /* no token */
                "<ListBucketResult><Contents><Key>k</Key></Contents><IsTruncated>false</IsTruncated></ListBucketResult>",
                "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>",
                "<ListBucketResult><Contents><Key>k</Key><Size>99999999999999999999</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>",
                "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
                "<Other/>",
                "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
                "<ListBucketResult>",
                "",
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++)
                CHECK_EQ_INT(lb_s3_parse_list(bad[i], strlen(bad[i]), &l), -EBADMSG);

        char code[32];
        static const char err[] = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>x</Message></Error>";
        CHECK_OK(lb_s3_parse_error(err, sizeof err - 1, code, sizeof code));
        CHECK(strcmp(code, "NoSuchBucket") == 0);
        CHECK_EQ_INT(lb_s3_parse_error(s3_page, sizeof s3_page - 1, code, sizeof code), -EBADMSG);
}

static const char dav[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><D:multistatus xmlns:D=\"DAV:\">"
        "<D:response><D:href>/r/packs/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype>"
        "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        "<D:response><D:href>http://h:1/r/packs/ab/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/>"
        "</D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        "<D:response><D:href>/r/packs/x%20y</D:href><D:propstat><D:prop><D:getcontentlength>42</D:getcontentlength>"
        "<D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        "<D:propstat><D:prop><D:foo/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>"
        "</D:multistatus>";

TEST(test_dav_xml) {
        LbRemoteList l;
        CHECK_OK(lb_webdav_parse_multistatus(dav, sizeof dav - 1, &l));
        CHECK_EQ_INT(l.n, 3);
        CHECK(l.v[0].is_dir && strcmp(l.v[0].name, "packs") == 0 && strcmp(l.v[0].path, "/r/packs") == 0);
        CHECK(l.v[1].is_dir && strcmp(l.v[1].name, "ab") == 0 && strcmp(l.v[1].path, "/r/packs/ab") == 0);
        CHECK(!l.v[2].is_dir && strcmp(l.v[2].name, "x y") == 0 && l.v[2].size == 42);
        lb_remote_list_clear(&l);
        static const char *const bad[] = {
                "<multistatus xmlns=\"DAV:\"><response><href>/a%2Fb</href><propstat><prop/><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>",
                "<multistatus xmlns=\"DAV:\"><response><href>/a%</href><propstat><prop/><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>",
                "<multistatus xmlns=\"DAV:\"><response><propstat><prop/><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>",
                "<multistatus><response/></multistatus>", /* not in the DAV: namespace */
        };
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++)
                CHECK_EQ_INT(lb_webdav_parse_multistatus(bad[i], strlen(bad[i]), &l), -EBADMSG);
}

int main(void) {
        RUN(test_location_good);
        RUN(test_location_bad);
        RUN(test_obj_paths);
        RUN(test_s3_xml);
        RUN(test_dav_xml);
        return 0;
}
