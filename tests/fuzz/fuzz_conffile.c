/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the longbox.conf parser (cmd/config.c over libinih) on
 * untrusted text. It must either accept the file with no problem listed,
 * or refuse it with at least one, each naming the file; an accepted file's
 * redacted copy keeps its lines.
 */
#include <stdio.h>

#include "cmd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CliConfig *c = NULL;
        CliDiag d = {};
        int r = cli_config_parse_text("f.conf", (const char *) data, size, &c, &d);
        if (r == 0 && (d.n != 0 || !c))
                abort();
        if (r < 0 && (c || (r == -EINVAL && d.n == 0)))
                abort();
        for (size_t i = 0; i < d.n; i++)
                if (strncmp(d.msgs[i], "f.conf", 6) != 0)
                        abort();
        if (c) {
                for (size_t i = 0; i < c->n_dbs; i++)
                        if (!c->dbs[i].conninfo)
                                abort();
                /* The redacted copy: as many lines, never longer than the
                 * text by more than the placeholders. */
                LbBuf out = {};
                if (cli_config_redact(c, &out) < 0)
                        abort();
                size_t nl_in = 0, nl_out = 0;
                for (size_t i = 0; i < size; i++)
                        nl_in += data[i] == '\n';
                for (size_t i = 0; i < out.len; i++)
                        nl_out += out.data[i] == '\n';
                if (nl_in != nl_out || out.len > size + c->n_secret_values * strlen(CLI_CONFIG_REDACTED))
                        abort();
                lb_buf_free(&out);
        }
        cli_config_free(c);
        cli_diag_clear(&d);
        return 0;
}
