/* SPDX-License-Identifier: MIT */
#include <stdio.h>

int main(void) {
        fprintf(stderr, "longbox: under construction\n");
        return 1;
}
