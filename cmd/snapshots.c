/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"
#include "store/crypto.h"

static const char help[] =
        "Usage: longbox snapshots [--json]\n"
        "\n"
        "Lists the snapshots, oldest first: short id, local time, host, tags and\n"
        "paths. With --json, an array of objects with id, short_id, time (RFC 3339),\n"
        "hostname, username, tags, paths, tree, program_version and summary.\n";

static json_object *string_array(char **v, size_t n) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(v[i]));
        return a;
}

static json_object *optional_string(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

static json_object *snapshot_json(const LbSnapshot *s) {
        char id[2 * LB_ID_SIZE + 1], tree[2 * LB_ID_SIZE + 1], short_id[9], t[48];
        lb_id_hex(&s->id, id);
        lb_id_hex(&s->tree, tree);
        cli_id_short(&s->id, short_id);
        cli_format_rfc3339(s->time_ns, s->tz_offset, t);

        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "short_id", json_object_new_string(short_id));
        json_object_object_add(o, "time", json_object_new_string(t));
        json_object_object_add(o, "hostname", optional_string(s->hostname));
        json_object_object_add(o, "username", optional_string(s->username));
        json_object_object_add(o, "tags", string_array(s->tags, s->n_tags));
        json_object_object_add(o, "paths", string_array(s->paths, s->n_paths));
        json_object_object_add(o, "tree", json_object_new_string(tree));
        json_object_object_add(o, "source", optional_string(s->source));
        json_object_object_add(o, "program_version", optional_string(s->program));
        if (s->has_parent) {
                char parent[2 * LB_ID_SIZE + 1];
                lb_id_hex(&s->parent, parent);
                json_object_object_add(o, "parent", json_object_new_string(parent));
        }

        const LbSnapshotStats *st = &s->stats;
        json_object *sum = json_object_new_object();
        json_object_object_add(sum, "files", json_object_new_uint64(st->files));
        json_object_object_add(sum, "dirs", json_object_new_uint64(st->dirs));
        json_object_object_add(sum, "bytes_read", json_object_new_uint64(st->bytes_read));
        json_object_object_add(sum, "bytes_new", json_object_new_uint64(st->bytes_new));
        json_object_object_add(sum, "bytes_stored", json_object_new_uint64(st->bytes_stored));
        json_object_object_add(sum, "chunks", json_object_new_uint64(st->chunks));
        json_object_object_add(sum, "chunks_new", json_object_new_uint64(st->chunks_new));
        json_object_object_add(sum, "duration_ns", json_object_new_uint64(st->duration_ns));
        json_object_object_add(sum, "errors", json_object_new_uint64(st->errors));
        json_object_object_add(o, "summary", sum);

        if (s->n_meta > 0) {
                json_object *m = json_object_new_object();
                for (size_t i = 0; i < s->n_meta; i++)
                        json_object_object_add(m, s->meta[i].key, optional_string(s->meta[i].value));
                json_object_object_add(o, "meta", m);
        }
        return o;
}

static void join(char **v, size_t n, char *out, size_t size) {
        size_t used = 0;
        out[0] = 0;
        for (size_t i = 0; i < n && used < size; i++) {
                int m = snprintf(out + used, size - used, "%s%s", i ? "," : "", v[i]);
                if (m < 0)
                        break;
                used += (size_t) m;
        }
}

int cmd_snapshots(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                {},
        };
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                int k = cli_global_option(c, argv, help);
                if (k >= 0)
                        return k;
        }
        if (optind < argc)
                return cli_usage_error("unexpected argument '%s'", argv[optind]);

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX, &r);
        if (code)
                return code;

        LbSnapshot **snaps = NULL;
        size_t n = 0;
        int k = lb_repo_snapshot_list(r, &snaps, &n);
        if (k < 0)
                return cli_fail(k, "list the snapshots of %s", cli.repo);

        if (cli.json) {
                _cleanup_json_ json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++)
                        json_object_array_add(a, snapshot_json(snaps[i]));
                cli_json_print(a);
        } else {
                printf("%-8s  %-19s  %-16s  %-20s  %s\n", "ID", "Time", "Host", "Tags", "Paths");
                for (size_t i = 0; i < n; i++) {
                        const LbSnapshot *s = snaps[i];
                        char id[9], t[32], tags[1024], paths[4096];
                        cli_id_short(&s->id, id);
                        cli_format_local_time(s->time_ns, t);
                        join(s->tags, s->n_tags, tags, sizeof tags);
                        join(s->paths, s->n_paths, paths, sizeof paths);
                        printf("%-8s  %-19s  %-16s  %-20s  %s\n", id, t, s->hostname ? s->hostname : "", tags, paths);
                }
                cli_info("%zu snapshot%s\n", n, n == 1 ? "" : "s");
        }
        lb_snapshots_free(snaps, n);
        return CLI_EXIT_OK;
}
