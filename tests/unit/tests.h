/* SPDX-License-Identifier: MIT */
#pragma once

/* Minimal assertion helpers for unit tests: a failed check prints where and
 * exits 1, so meson reports the test as failed. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
        do {                                                                          \
                if (!(cond)) {                                                        \
                        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
                        exit(1);                                                      \
                }                                                                     \
        } while (0)

#define CHECK_EQ_INT(a, b)                                                            \
        do {                                                                          \
                long long _a = (long long) (a), _b = (long long) (b);                 \
                if (_a != _b) {                                                       \
                        fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, _a, #b, _b); \
                        exit(1);                                                      \
                }                                                                     \
        } while (0)

#define CHECK_OK(expr)                                                                \
        do {                                                                          \
                int _r = (expr);                                                      \
                if (_r < 0) {                                                         \
                        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, strerror(-_r)); \
                        exit(1);                                                      \
                }                                                                     \
        } while (0)

#define TEST(name) static void name(void)
#define RUN(name)                                        \
        do {                                             \
                name();                                  \
                printf("ok - %s\n", #name);              \
        } while (0)
