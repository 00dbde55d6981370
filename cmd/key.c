/* SPDX-License-Identifier: MIT */
#include "cmd/common.h"

static const char help[] =
        "Usage: longbox key list [--json]\n"
        "       longbox key add [--new-password-file FILE] [--label LABEL] [--insecure-fast-kdf]\n"
        "       longbox key remove ID\n"
        "       longbox key passwd [--new-password-file FILE] [--insecure-fast-kdf]\n"
        "\n"
        "Manages key slots: each slot wraps the repository's master key with one\n"
        "passphrase. The current passphrase (--password-file, LONGBOX_PASSWORD_FILE,\n"
        "LONGBOX_PASSWORD or a prompt) opens the repository; the new one for add and\n"
        "passwd comes from --new-password-file, else LONGBOX_NEW_PASSWORD, else a\n"
        "prompt (asked twice).\n"
        "\n"
        "  list     the slots: id, creation time, label, and which one is in use\n"
        "  add      adds a slot for a new passphrase\n"
        "  remove   removes slot ID (not the last one, not the one in use)\n"
        "  passwd   changes the passphrase in use: adds a new slot, removes the old\n"
        "\n"
        "Options:\n"
        "  --new-password-file FILE  read the new passphrase from FILE\n"
        "  --label LABEL             a note stored with the new slot (add)\n"
        "  --insecure-fast-kdf       trivial Argon2id limits: FOR TESTS ONLY\n";

enum {
        OPT_NEW_PASSWORD_FILE = OPT_FIRST_LOCAL,
        OPT_LABEL,
        OPT_FAST_KDF,
};

typedef struct KeyArgs {
        const char *new_password_file;
        const char *label;
        bool fast_kdf;
} KeyArgs;

static int key_list(void) {
        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(0, &r);
        if (code)
                return code;
        LbKeyInfo *keys = NULL;
        size_t n = 0;
        int k = lb_repo_key_list(r, &keys, &n);
        if (k < 0)
                return cli_fail(k, "list the key slots of %s", cli.repo);

        if (cli.json) {
                _cleanup_json_ json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        char t[48];
                        cli_format_rfc3339_local(keys[i].created_ns, t);
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "id", json_object_new_string(keys[i].id));
                        json_object_object_add(o, "created", json_object_new_string(t));
                        json_object_object_add(o, "label", keys[i].label ? json_object_new_string(keys[i].label) : NULL);
                        json_object_object_add(o, "current", json_object_new_boolean(keys[i].current));
                        json_object_array_add(a, o);
                }
                cli_json_print(a);
        } else {
                printf("%-1s %-16s  %-19s  %s\n", " ", "ID", "Created", "Label");
                for (size_t i = 0; i < n; i++) {
                        char t[32];
                        cli_format_local_time(keys[i].created_ns, t);
                        printf("%-1s %-16s  %-19s  %s\n", keys[i].current ? "*" : " ", keys[i].id, t,
                               keys[i].label ? keys[i].label : "");
                }
                cli_info("(* the key slot in use)\n");
        }
        lb_key_infos_free(keys, n);
        return CLI_EXIT_OK;
}

static int new_passphrase(const KeyArgs *a, char **ret) {
        char *p = NULL;
        int code = cli_get_new_passphrase(a->new_password_file, &p);
        if (code)
                return code;
        if (!*p) {
                cli_passphrase_free(p);
                return cli_error(CLI_EXIT_ERROR, "Failed to add a key slot: the new passphrase is empty");
        }
        *ret = p;
        return 0;
}

static int key_add(const KeyArgs *a) {
        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(0, &r);
        if (code)
                return code;
        char *pass = NULL;
        code = new_passphrase(a, &pass);
        if (code)
                return code;
        char id[17];
        int k = lb_repo_key_add(r, pass, a->label, a->fast_kdf ? LB_KDF_OPS_INSECURE : LB_KDF_OPS_DEFAULT,
                                a->fast_kdf ? LB_KDF_MEM_INSECURE : LB_KDF_MEM_DEFAULT, id);
        cli_passphrase_free(pass);
        if (k < 0)
                return cli_fail(k, "add a key slot to %s", cli.repo);
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_string(id));
                cli_json_print(o);
        } else
                cli_info("added key slot %s\n", id);
        return CLI_EXIT_OK;
}

static int key_remove(const char *id) {
        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(0, &r);
        if (code)
                return code;
        int k = lb_repo_key_remove(r, id);
        switch (k) {
        case 0:
                cli_info("removed key slot %s\n", id);
                return CLI_EXIT_OK;
        case -EPERM:
                return cli_error(CLI_EXIT_ERROR, "Failed to remove key slot %s: refusing to remove the last key slot "
                                 "(it would make the repository unreadable)", id);
        case -EBUSY:
                return cli_error(CLI_EXIT_ERROR, "Failed to remove key slot %s: key %s is the one in use; use key "
                                 "passwd to change the passphrase, or open with another passphrase to remove it", id, id);
        case -ENOENT:
                return cli_error(CLI_EXIT_ERROR, "Failed to remove key slot %s: no key slot %s in %s; 'longbox key "
                                 "list' shows them", id, id, cli.repo);
        default:
                return cli_fail(k, "remove key slot %s", id);
        }
}

static int key_passwd(const KeyArgs *a) {
        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(0, &r);
        if (code)
                return code;
        char *pass = NULL;
        code = new_passphrase(a, &pass);
        if (code)
                return code;
        char old[17], id[17];
        memcpy(old, r->key_name, sizeof old);
        int k = lb_repo_key_passwd(r, pass, a->fast_kdf ? LB_KDF_OPS_INSECURE : LB_KDF_OPS_DEFAULT,
                                   a->fast_kdf ? LB_KDF_MEM_INSECURE : LB_KDF_MEM_DEFAULT, id);
        cli_passphrase_free(pass);
        if (k < 0)
                return cli_fail(k, "change the passphrase of key slot %s", old);
        if (cli.json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_string(id));
                json_object_object_add(o, "removed", json_object_new_string(old));
                cli_json_print(o);
        } else
                cli_info("changed the passphrase: key slot %s replaces %s\n", id, old);
        return CLI_EXIT_OK;
}

int cmd_key(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "new-password-file", required_argument, NULL, OPT_NEW_PASSWORD_FILE },
                { "label", required_argument, NULL, OPT_LABEL },
                { "insecure-fast-kdf", no_argument, NULL, OPT_FAST_KDF },
                {},
        };
        KeyArgs a = {};

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_NEW_PASSWORD_FILE:
                        a.new_password_file = optarg;
                        break;
                case OPT_LABEL:
                        if (strlen(optarg) > LB_KEYSLOT_LABEL_MAX)
                                return cli_usage_error("--label is longer than %d bytes", LB_KEYSLOT_LABEL_MAX);
                        a.label = optarg;
                        break;
                case OPT_FAST_KDF:
                        a.fast_kdf = true;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        if (optind >= argc)
                return cli_usage_error("missing the key command: list, add, remove or passwd");

        const char *sub = argv[optind++];
        int nargs = argc - optind;
        if (strcmp(sub, "list") == 0) {
                cli.command = "key list";
                if (nargs > 0)
                        return cli_usage_error("unexpected argument '%s'", argv[optind]);
                return key_list();
        }
        if (strcmp(sub, "add") == 0) {
                cli.command = "key add";
                if (nargs > 0)
                        return cli_usage_error("unexpected argument '%s'", argv[optind]);
                return key_add(&a);
        }
        if (strcmp(sub, "remove") == 0) {
                cli.command = "key remove";
                if (nargs != 1)
                        return cli_usage_error("%s", nargs ? "too many arguments" : "missing the key slot ID");
                return key_remove(argv[optind]);
        }
        if (strcmp(sub, "passwd") == 0) {
                cli.command = "key passwd";
                if (nargs > 0)
                        return cli_usage_error("unexpected argument '%s'", argv[optind]);
                return key_passwd(&a);
        }
        return cli_usage_error("unknown key command '%s': use list, add, remove or passwd", sub);
}
