/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the longbox.conf parser (cmd/config.c over libinih) on
 * untrusted text. It must either accept the file with no problem listed,
 * or refuse it with at least one, each naming the file.
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
        }
        cli_config_free(c);
        cli_diag_clear(&d);
        return 0;
}
