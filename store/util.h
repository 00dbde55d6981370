/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdarg.h>

/*
 * Small helpers shared by every module: cleanup attributes, little-endian
 * load/store, a growable byte buffer, full reads and writes, hex.
 *
 * Conventions (see docs/design.md "Code conventions"): functions return
 * >= 0 on success and -errno on failure; -EBADMSG means corrupt or
 * unauthenticated data; ret_ outputs are written only on success.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _warn_unused_ __attribute__((warn_unused_result))

#define LB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define LB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LB_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void lb_freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(lb_freep)

static inline void lb_closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_close_ _cleanup_(lb_closep)

/* Takes ownership out of a cleanup variable: returns *p and sets *p = NULL. */
#define LB_TAKE_PTR(p)                          \
        ({                                      \
                __typeof__(p) _tmp_ = (p);      \
                (p) = NULL;                     \
                _tmp_;                          \
        })

static inline void lb_put_le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
static inline void lb_put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline void lb_put_le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static inline uint16_t lb_get_le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}
static inline uint32_t lb_get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static inline uint64_t lb_get_le64(const uint8_t *p) {
        return (uint64_t) lb_get_le32(p) | (uint64_t) lb_get_le32(p + 4) << 32;
}

/* A growable byte buffer. A zero-initialised LbBuf is empty and valid. */
typedef struct LbBuf {
        uint8_t *data;
        size_t len;
        size_t cap;
} LbBuf;

int lb_buf_reserve(LbBuf *b, size_t extra) _warn_unused_;
int lb_buf_append(LbBuf *b, const void *p, size_t n) _warn_unused_;
int lb_buf_append_u8(LbBuf *b, uint8_t v) _warn_unused_;
int lb_buf_append_le32(LbBuf *b, uint32_t v) _warn_unused_;
int lb_buf_append_le64(LbBuf *b, uint64_t v) _warn_unused_;
/* Appends n zero bytes and returns a pointer to them in *ret (valid until the next append). */
int lb_buf_grow(LbBuf *b, size_t n, uint8_t **ret) _warn_unused_;
void lb_buf_clear(LbBuf *b);
void lb_buf_free(LbBuf *b);
static inline void lb_buf_freep(LbBuf *b) {
        lb_buf_free(b);
}
#define _cleanup_buf_ _cleanup_(lb_buf_freep)

/* A bounds-checked reader over borrowed bytes, for parsers of untrusted input.
 * Every getter returns -EBADMSG when the input is too short. */
typedef struct LbReader {
        const uint8_t *p;
        size_t len;
        size_t pos;
} LbReader;

static inline LbReader lb_reader(const void *p, size_t len) {
        return (LbReader) { .p = p, .len = len, .pos = 0 };
}
static inline size_t lb_reader_left(const LbReader *r) {
        return r->len - r->pos;
}
int lb_reader_bytes(LbReader *r, size_t n, const uint8_t **ret) _warn_unused_;
int lb_reader_copy(LbReader *r, void *out, size_t n) _warn_unused_;
int lb_reader_u8(LbReader *r, uint8_t *ret) _warn_unused_;
int lb_reader_le16(LbReader *r, uint16_t *ret) _warn_unused_;
int lb_reader_le32(LbReader *r, uint32_t *ret) _warn_unused_;
int lb_reader_le64(LbReader *r, uint64_t *ret) _warn_unused_;

/* write(2)/pwrite(2) until done; -errno on failure (EINTR retried). */
int lb_write_all(int fd, const void *p, size_t n) _warn_unused_;
/* read(2) until n bytes or EOF; *ret_n gets the count read. */
int lb_read_all(int fd, void *p, size_t n, size_t *ret_n) _warn_unused_;
int lb_pread_all(int fd, void *p, size_t n, uint64_t off) _warn_unused_; /* -EBADMSG on short read */
/* Reads a whole file, at most max bytes (-EFBIG beyond). */
int lb_read_file(const char *path, size_t max, LbBuf *ret) _warn_unused_;

/* writev(2) until every piece is written; -errno on failure (EINTR retried). */
struct iovec;
int lb_writev_all(int fd, const struct iovec *iov, size_t n) _warn_unused_;

/* Writes dir/name atomically: temp file in dir, fsync, rename, fsync dir.
 * mode is the final mode (e.g. 0600). No partial file is ever visible. */
int lb_write_file_atomic(const char *dir, const char *name, const void *p, size_t n, int mode) _warn_unused_;
/* The same for bytes in pieces: the file is their concatenation. */
int lb_write_file_atomic_iov(const char *dir, const char *name, const struct iovec *iov, size_t n, int mode) _warn_unused_;
int lb_fsync_dir(const char *dir) _warn_unused_;
/* A new empty file in dir, already unlinked (O_TMPFILE, else a random
 * name unlinked at once): it goes away with its last descriptor, also
 * when the process is killed. Returns the descriptor or -errno. */
int lb_open_tmpfile(const char *dir) _warn_unused_;
/* mkdir -p with the given mode; existing directories are fine. */
int lb_mkdir_p(const char *path, int mode) _warn_unused_;

void lb_hex_encode(const uint8_t *in, size_t n, char *out /* 2n+1 */);
/* The value of a hex digit (either case), or -1. */
int lb_hex_digit(char c);
int lb_hex_decode(const char *in, uint8_t *out, size_t n) _warn_unused_; /* exactly 2n hex chars */
bool lb_is_hex(const char *s, size_t n);

/* qsort(3)/bsearch(3) that accept (NULL, 0): the libc versions are
 * declared nonnull even for empty arrays. */
static inline void lb_qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
        if (n > 1)
                qsort(base, n, size, cmp);
}
static inline void *lb_bsearch(const void *key, const void *base, size_t n, size_t size,
                               int (*cmp)(const void *, const void *)) {
        return n > 0 ? bsearch(key, base, n, size, cmp) : NULL;
}

/* Formats a path; returns NULL on allocation failure. */
char *lb_path_join(const char *a, const char *b);
char *lb_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with a va_list; NULL on allocation failure. */
char *lb_strdup_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* The local time zone's offset from UTC (seconds east) at time_ns. */
int32_t lb_local_tz_offset(int64_t time_ns);

/* Wall clock in nanoseconds since the epoch. */
int64_t lb_now_ns(void);
/* Monotonic clock in nanoseconds. */
int64_t lb_mono_ns(void);
