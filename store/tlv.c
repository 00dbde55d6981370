/* SPDX-License-Identifier: MIT */
#include "store/tlv.h"

int lb_tlv_put(LbBuf *b, uint16_t tag, const void *v, size_t n) {
        if (n > UINT32_MAX)
                return -E2BIG;
        uint8_t h[LB_TLV_HEADER_SIZE];
        lb_put_le16(h, tag);
        lb_put_le32(h + 2, (uint32_t) n);
        int r = lb_buf_append(b, h, sizeof h);
        if (r < 0)
                return r;
        return lb_buf_append(b, v, n);
}

int lb_tlv_put_u8(LbBuf *b, uint16_t tag, uint8_t v) {
        return lb_tlv_put(b, tag, &v, 1);
}

int lb_tlv_put_u32(LbBuf *b, uint16_t tag, uint32_t v) {
        uint8_t t[4];
        lb_put_le32(t, v);
        return lb_tlv_put(b, tag, t, sizeof t);
}

int lb_tlv_put_u64(LbBuf *b, uint16_t tag, uint64_t v) {
        uint8_t t[8];
        lb_put_le64(t, v);
        return lb_tlv_put(b, tag, t, sizeof t);
}

int lb_tlv_put_str(LbBuf *b, uint16_t tag, const char *s) {
        return lb_tlv_put(b, tag, s, strlen(s));
}

int lb_tlv_next(LbReader *r, uint16_t *ret_tag, const uint8_t **ret_v, uint32_t *ret_n) {
        if (lb_reader_left(r) == 0)
                return 0;
        uint16_t tag;
        uint32_t n;
        const uint8_t *v;
        int k = lb_reader_le16(r, &tag);
        if (k < 0)
                return k;
        k = lb_reader_le32(r, &n);
        if (k < 0)
                return k;
        k = lb_reader_bytes(r, n, &v);
        if (k < 0)
                return k;
        *ret_tag = tag;
        *ret_v = v;
        *ret_n = n;
        return 1;
}

int lb_tlv_u8(const uint8_t *v, uint32_t n, uint8_t *ret) {
        if (n != 1)
                return -EBADMSG;
        *ret = v[0];
        return 0;
}

int lb_tlv_u32(const uint8_t *v, uint32_t n, uint32_t *ret) {
        if (n != 4)
                return -EBADMSG;
        *ret = lb_get_le32(v);
        return 0;
}

int lb_tlv_u64(const uint8_t *v, uint32_t n, uint64_t *ret) {
        if (n != 8)
                return -EBADMSG;
        *ret = lb_get_le64(v);
        return 0;
}

int lb_tlv_str(const uint8_t *v, uint32_t n, size_t max, char **ret) {
        if (n > max || memchr(v, 0, n))
                return -EBADMSG;
        char *s = malloc((size_t) n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, v, n);
        s[n] = 0;
        *ret = s;
        return 0;
}

int lb_tlv_check(uint16_t tag, bool known, bool repeatable, uint32_t *seen) {
        if (!known)
                return tag & LB_TLV_CRITICAL ? -EPROTONOSUPPORT : 1;
        if (repeatable)
                return 0;
        uint32_t bit = 1u << (tag & 0x1f);
        if (*seen & bit)
                return -EBADMSG;
        *seen |= bit;
        return 0;
}

void lb_meta_free(LbMeta *m, size_t n) {
        for (size_t i = 0; m && i < n; i++) {
                free(m[i].key);
                free(m[i].value);
        }
        free(m);
}

const char *lb_meta_get(const LbMeta *m, size_t n, const char *key) {
        for (size_t i = 0; key && i < n; i++)
                if (strcmp(m[i].key, key) == 0)
                        return m[i].value;
        return NULL;
}

int lb_tlv_put_meta(LbBuf *b, LbBuf *scratch, uint16_t tag, const LbMeta *m) {
        size_t kl = strlen(m->key);
        if (kl > UINT16_MAX)
                return -EINVAL;
        uint8_t h[2];
        lb_put_le16(h, (uint16_t) kl);
        lb_buf_clear(scratch);
        int r = lb_buf_append(scratch, h, sizeof h);
        if (r >= 0)
                r = lb_buf_append(scratch, m->key, kl);
        if (r >= 0)
                r = lb_buf_append(scratch, m->value, strlen(m->value));
        if (r >= 0)
                r = lb_tlv_put(b, tag, scratch->data, scratch->len);
        return r;
}

int lb_tlv_meta_append(const uint8_t *v, uint32_t n, size_t max_len, size_t max_count, LbMeta **m, size_t *count) {
        if (*count >= max_count || n < 2)
                return -EBADMSG;
        uint16_t kl = lb_get_le16(v);
        if (kl == 0 || kl > n - 2)
                return -EBADMSG;
        _cleanup_free_ char *key = NULL, *value = NULL;
        int r = lb_tlv_str(v + 2, kl, max_len, &key);
        if (r < 0)
                return r;
        r = lb_tlv_str(v + 2 + kl, n - 2 - kl, max_len, &value);
        if (r < 0)
                return r;
        LbMeta *a = reallocarray(*m, *count + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        *m = a;
        a[(*count)++] = (LbMeta) { .key = LB_TAKE_PTR(key), .value = LB_TAKE_PTR(value) };
        return 0;
}
