/* SPDX-License-Identifier: MIT */
#include "store/util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

int lb_buf_reserve(LbBuf *b, size_t extra) {
        if (extra > SIZE_MAX - b->len)
                return -ENOMEM;
        size_t need = b->len + extra;
        if (need <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
                return -ENOMEM;
        b->data = d;
        b->cap = cap;
        return 0;
}

int lb_buf_append(LbBuf *b, const void *p, size_t n) {
        int r = lb_buf_reserve(b, n);
        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

int lb_buf_append_u8(LbBuf *b, uint8_t v) {
        return lb_buf_append(b, &v, 1);
}

int lb_buf_append_le32(LbBuf *b, uint32_t v) {
        uint8_t t[4];
        lb_put_le32(t, v);
        return lb_buf_append(b, t, sizeof t);
}

int lb_buf_append_le64(LbBuf *b, uint64_t v) {
        uint8_t t[8];
        lb_put_le64(t, v);
        return lb_buf_append(b, t, sizeof t);
}

int lb_buf_grow(LbBuf *b, size_t n, uint8_t **ret) {
        int r = lb_buf_reserve(b, n);
        if (r < 0)
                return r;
        uint8_t *p = b->data + b->len;
        memset(p, 0, n);
        b->len += n;
        if (ret)
                *ret = p;
        return 0;
}

void lb_buf_clear(LbBuf *b) {
        b->len = 0;
}

void lb_buf_free(LbBuf *b) {
        free(b->data);
        *b = (LbBuf) {};
}

int lb_reader_bytes(LbReader *r, size_t n, const uint8_t **ret) {
        if (n > lb_reader_left(r))
                return -EBADMSG;
        *ret = r->p + r->pos;
        r->pos += n;
        return 0;
}

int lb_reader_copy(LbReader *r, void *out, size_t n) {
        const uint8_t *p;
        int k = lb_reader_bytes(r, n, &p);
        if (k < 0)
                return k;
        if (n)
                memcpy(out, p, n);
        return 0;
}

int lb_reader_u8(LbReader *r, uint8_t *ret) {
        return lb_reader_copy(r, ret, 1);
}

int lb_reader_le16(LbReader *r, uint16_t *ret) {
        const uint8_t *p;
        int k = lb_reader_bytes(r, 2, &p);
        if (k < 0)
                return k;
        *ret = lb_get_le16(p);
        return 0;
}

int lb_reader_le32(LbReader *r, uint32_t *ret) {
        const uint8_t *p;
        int k = lb_reader_bytes(r, 4, &p);
        if (k < 0)
                return k;
        *ret = lb_get_le32(p);
        return 0;
}

int lb_reader_le64(LbReader *r, uint64_t *ret) {
        const uint8_t *p;
        int k = lb_reader_bytes(r, 8, &p);
        if (k < 0)
                return k;
        *ret = lb_get_le64(p);
        return 0;
}

int lb_write_all(int fd, const void *p, size_t n) {
        const uint8_t *c = p;
        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Pieces smaller than a quarter of this are copied together first: the
 * kernel writes a few large buffers much faster than many small segments
 * (a pack is a hundred thousand blobs of a few hundred bytes). */
#define WRITEV_STAGE (256u << 10)

int lb_writev_all(int fd, const struct iovec *iov, size_t n) {
        _cleanup_free_ uint8_t *stage = NULL;
        size_t staged = 0;
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i++) {
                const uint8_t *p = iov[i].iov_base;
                size_t len = iov[i].iov_len;
                if (len >= WRITEV_STAGE / 4 || (staged + len > WRITEV_STAGE && staged > 0)) {
                        r = lb_write_all(fd, stage, staged);
                        staged = 0;
                        if (r < 0)
                                break;
                }
                if (len >= WRITEV_STAGE / 4) {
                        r = lb_write_all(fd, p, len);
                        continue;
                }
                if (!stage) {
                        stage = malloc(WRITEV_STAGE);
                        if (!stage)
                                return -ENOMEM;
                }
                memcpy(stage + staged, p, len);
                staged += len;
        }
        if (r == 0 && staged > 0)
                r = lb_write_all(fd, stage, staged);
        return r;
}

int lb_read_all(int fd, void *p, size_t n, size_t *ret_n) {
        uint8_t *c = p;
        size_t done = 0;
        while (done < n) {
                ssize_t k = read(fd, c + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        *ret_n = done;
        return 0;
}

int lb_pread_all(int fd, void *p, size_t n, uint64_t off) {
        uint8_t *c = p;
        size_t done = 0;
        while (done < n) {
                ssize_t k = pread(fd, c + done, n - done, (off_t) (off + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EBADMSG;
                done += (size_t) k;
        }
        return 0;
}

int lb_read_file(const char *path, size_t max, LbBuf *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        _cleanup_buf_ LbBuf b = {};
        int r = lb_buf_reserve(&b, (size_t) st.st_size + 1);
        if (r < 0)
                return r;
        for (;;) {
                if (b.len > max)
                        return -EFBIG;
                r = lb_buf_reserve(&b, 65536);
                if (r < 0)
                        return r;
                ssize_t k = read(fd, b.data + b.len, b.cap - b.len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                b.len += (size_t) k;
        }
        if (b.len > max)
                return -EFBIG;
        lb_buf_free(ret);
        *ret = b;
        b = (LbBuf) {};
        return 0;
}

int lb_fsync_dir(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int lb_write_file_atomic(const char *dir, const char *name, const void *p, size_t n, int mode) {
        struct iovec one = { (void *) p, n };
        return lb_write_file_atomic_iov(dir, name, &one, 1, mode);
}

int lb_write_file_atomic_iov(const char *dir, const char *name, const struct iovec *iov, size_t n, int mode) {
        _cleanup_free_ char *tmp = lb_strdup_printf("%s/.tmp-%s-XXXXXX", dir, name);
        _cleanup_free_ char *dst = lb_path_join(dir, name);
        if (!tmp || !dst)
                return -ENOMEM;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = 0;
        if (fchmod(fd, (mode_t) mode) < 0)
                r = -errno;
        if (r == 0)
                r = lb_writev_all(fd, iov, n);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, dst) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return lb_fsync_dir(dir);
}

int lb_open_tmpfile(const char *dir) {
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
                _cleanup_free_ char *path = lb_strdup_printf("%s/.tmp-unlinked-XXXXXX", dir);
                if (!path)
                        return -ENOMEM;
                fd = mkostemp(path, O_CLOEXEC);
                if (fd >= 0)
                        (void) unlink(path);
        }
        return fd < 0 ? -errno : fd;
}

int lb_mkdir_p(const char *path, int mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, (mode_t) mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, (mode_t) mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

void lb_hex_encode(const uint8_t *in, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * n] = 0;
}

int lb_hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

bool lb_is_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (lb_hex_digit(s[i]) < 0)
                        return false;
        return s[n] == 0;
}

int lb_hex_decode(const char *in, uint8_t *out, size_t n) {
        if (strlen(in) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int hi = lb_hex_digit(in[2 * i]), lo = lb_hex_digit(in[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

char *lb_path_join(const char *a, const char *b) {
        return lb_strdup_printf("%s/%s", a, b);
}

char *lb_strdup_vprintf(const char *fmt, va_list ap) {
        char *s = NULL;
        return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

char *lb_strdup_printf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = lb_strdup_vprintf(fmt, ap);
        va_end(ap);
        return s;
}

int64_t lb_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lb_mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int32_t lb_local_tz_offset(int64_t time_ns) {
        time_t t = (time_t) (time_ns / 1000000000);
        struct tm tm;
        if (!localtime_r(&t, &tm))
                return 0;
        return (int32_t) tm.tm_gmtoff;
}
