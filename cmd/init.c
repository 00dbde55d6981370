/* SPDX-License-Identifier: MIT */
#include "cmd/common.h"
#include "store/location.h"

static const char help[] =
        "Usage: longbox init [OPTIONS]\n"
        "\n"
        "Creates a repository at --repo (or LONGBOX_REPO): an empty or missing\n"
        "directory. The passphrase comes from --password-file, LONGBOX_PASSWORD_FILE,\n"
        "LONGBOX_PASSWORD or a prompt (asked twice). Prints the repository id.\n"
        "Keep the passphrase safe: without it the backups cannot be read.\n"
        "\n"
        "Options:\n"
        "  --chunk-avg BYTES      average chunk size, a power of two (default 8K);\n"
        "                         minimum and maximum are a quarter and four times it\n"
        "  --pack-size MIB        target pack size in MiB (default 16)\n"
        "  --compression LEVEL    zstd level 1-22, 0 stores uncompressed (default 3)\n"
        "  --insecure-fast-kdf    derive the key with trivial Argon2id limits:\n"
        "                         FOR TESTS ONLY, anyone can guess such a passphrase fast\n";

enum {
        OPT_CHUNK_AVG = OPT_FIRST_LOCAL,
        OPT_PACK_SIZE,
        OPT_COMPRESSION,
        OPT_FAST_KDF,
};

int cmd_init(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "chunk-avg", required_argument, NULL, OPT_CHUNK_AVG },
                { "pack-size", required_argument, NULL, OPT_PACK_SIZE },
                { "compression", required_argument, NULL, OPT_COMPRESSION },
                { "insecure-fast-kdf", no_argument, NULL, OPT_FAST_KDF },
                {},
        };
        LbInitOptions o;
        lb_init_options_default(&o);

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_CHUNK_AVG: {
                        uint64_t v;
                        if (cli_parse_size(optarg, &v) < 0 || v > LB_CHUNK_MAX_LIMIT / 4)
                                return cli_usage_error("--chunk-avg needs a size in bytes (like 16384 or 16K) of at most "
                                                       "4M, got '%s'", optarg);
                        o.chunker = (LbChunkerParams) { .min = (uint32_t) v / 4, .avg = (uint32_t) v, .max = (uint32_t) v * 4 };
                        if (lb_chunker_params_check(&o.chunker) < 0)
                                return cli_usage_error("--chunk-avg %s is not usable: it must be a power of two "
                                                       "between 256 and 4M", optarg);
                        break;
                }
                case OPT_PACK_SIZE: {
                        long long v;
                        if (cli_parse_int(optarg, 1, 1024, &v) < 0)
                                return cli_usage_error("--pack-size needs a number of MiB from 1 to 1024, got '%s'", optarg);
                        o.pack_target = (uint32_t) v << 20;
                        break;
                }
                case OPT_COMPRESSION: {
                        long long v;
                        if (cli_parse_int(optarg, 0, 22, &v) < 0)
                                return cli_usage_error("--compression needs a zstd level from 0 to 22, got '%s'", optarg);
                        o.zstd_level = (int) v;
                        break;
                }
                case OPT_FAST_KDF:
                        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
                        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        if (optind < argc)
                return cli_usage_error("unexpected argument '%s'", argv[optind]);

        const char *loc = cli_repo_location();
        if (!loc)
                return CLI_EXIT_USAGE;
        char *pass = NULL;
        int code = cli_get_passphrase(true, &pass);
        if (code)
                return code;
        if (!*pass) {
                cli_passphrase_free(pass);
                return cli_error(CLI_EXIT_ERROR, "Failed to create repository %s: the passphrase is empty", loc);
        }

        _cleanup_repo_ LbRepo *r = NULL;
        int k = lb_repo_init(loc, pass, &o, &r);
        cli_passphrase_free(pass);
        if (k == -ENOTEMPTY || k == -EEXIST)
                return cli_error(CLI_EXIT_ERROR, "Failed to create repository: %s is not empty; longbox init needs an "
                                 "empty or missing directory", loc);
        if (k == -EACCES && lb_location_is_remote(loc))
                return cli_error(CLI_EXIT_ERROR, "Failed to create repository %s: the server refused the credentials; "
                                 "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the WebDAV user and "
                                 "LONGBOX_WEBDAV_PASSWORD", loc);
        if (k == -EINVAL && lb_location_is_remote(loc))
                return cli_error(CLI_EXIT_USAGE, "Failed to create repository %s: not a valid location; see longbox(1) "
                                 "LOCATIONS", loc);
        if (k < 0)
                return cli_fail(k, "create repository %s", loc);

        char id[2 * LB_REPO_ID_SIZE + 1];
        lb_hex_encode(r->cfg.repo_id, LB_REPO_ID_SIZE, id);
        if (cli.json) {
                _cleanup_json_ json_object *j = json_object_new_object();
                json_object_object_add(j, "message_type", json_object_new_string("initialized"));
                json_object_object_add(j, "id", json_object_new_string(id));
                json_object_object_add(j, "repository", json_object_new_string(loc));
                json_object_object_add(j, "key", json_object_new_string(r->key_name));
                cli_json_print(j);
        } else
                cli_info("created longbox repository %s at %s\n"
                         "Keep the passphrase safe: without it no one can read these backups, not even you.\n",
                         id, loc);
        return CLI_EXIT_OK;
}
