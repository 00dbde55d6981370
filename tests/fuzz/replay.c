/* SPDX-License-Identifier: MIT */
/*
 * Corpus replay driver: runs LLVMFuzzerTestOneInput on every file in the
 * directories (or files) given on the command line. Linked into each fuzz
 * target in ordinary builds so the corpora run in every `meson test`,
 * under ASan+UBSan in the sanitizer build.
 */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        _cleanup_buf_ LbBuf b = {};
        int r = lb_read_file(path, 64u << 20, &b);
        if (r < 0) {
                fprintf(stderr, "Failed to read %s: %s\n", path, strerror(-r));
                return r;
        }
        /* Copy into an exact-size allocation so ASan catches over-reads. */
        uint8_t *exact = malloc(b.len ? b.len : 1);
        if (!exact)
                return -ENOMEM;
        if (b.len)
                memcpy(exact, b.data, b.len);
        LLVMFuzzerTestOneInput(exact, b.len);
        free(exact);
        return 0;
}

int main(int argc, char **argv) {
        unsigned count = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "Failed to stat %s: %m\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        count++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                if (!d) {
                        fprintf(stderr, "Failed to open %s: %m\n", argv[i]);
                        return 1;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        _cleanup_free_ char *p = lb_path_join(argv[i], de->d_name);
                        if (!p || run_file(p) < 0) {
                                closedir(d);
                                return 1;
                        }
                        count++;
                }
                closedir(d);
        }
        if (count == 0) {
                fprintf(stderr, "No corpus inputs found: a fuzz replay that runs nothing proves nothing.\n");
                return 1;
        }
        printf("replayed %u inputs\n", count);
        return 0;
}
