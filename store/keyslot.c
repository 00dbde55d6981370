/* SPDX-License-Identifier: MIT */
/* Key slots: the master secret wrapped by Argon2id(passphrase) (docs/design.md "Key slots"). */
#include <sodium.h>

#include "store/repo.h"

#define SLOT_FIXED_SIZE (8 + 4 + 4 + 8 + 8 + 16 + 8 + LB_REPO_ID_SIZE + 2)

_Static_assert(crypto_pwhash_SALTBYTES == 16, "salt size");

static int derive_kek(const char *passphrase, const LbKeySlot *s, uint8_t kek[LB_KEY_SIZE]) {
        if (s->opslimit < crypto_pwhash_OPSLIMIT_MIN || s->opslimit > LB_KDF_OPSLIMIT_MAX ||
            s->memlimit < crypto_pwhash_MEMLIMIT_MIN || s->memlimit > LB_KDF_MEMLIMIT_MAX)
                return -EBADMSG;
        if (crypto_pwhash(kek, LB_KEY_SIZE, passphrase, strlen(passphrase), s->salt, s->opslimit,
                          (size_t) s->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
                return -ENOMEM; /* libsodium fails only when it cannot allocate */
        return 0;
}

int lb_keyslot_create(const uint8_t master[LB_KEY_SIZE], const uint8_t repo_id[LB_REPO_ID_SIZE],
                      const char *passphrase, uint64_t opslimit, uint64_t memlimit, const char *label,
                      LbBuf *out) {
        size_t label_len = label ? strlen(label) : 0;
        if (label_len > LB_KEYSLOT_LABEL_MAX)
                return -EINVAL;
        LbKeySlot s = { .opslimit = opslimit, .memlimit = memlimit, .created_ns = lb_now_ns() };
        lb_random(s.salt, sizeof s.salt);

        lb_buf_clear(out);
        uint8_t *p;
        int r = lb_buf_grow(out, SLOT_FIXED_SIZE + label_len, &p);
        if (r < 0)
                return r;
        memcpy(p, LB_KEYSLOT_MAGIC, 8);
        lb_put_le32(p + 8, LB_KDF_ARGON2ID13);
        lb_put_le32(p + 12, 0);
        lb_put_le64(p + 16, opslimit);
        lb_put_le64(p + 24, memlimit);
        memcpy(p + 32, s.salt, 16);
        lb_put_le64(p + 48, (uint64_t) s.created_ns);
        memcpy(p + 56, repo_id, LB_REPO_ID_SIZE);
        lb_put_le16(p + 56 + LB_REPO_ID_SIZE, (uint16_t) label_len);
        if (label_len)
                memcpy(p + SLOT_FIXED_SIZE, label, label_len);

        uint8_t kek[LB_KEY_SIZE];
        r = derive_kek(passphrase, &s, kek);
        if (r < 0)
                return r;
        size_t ad_len = out->len;
        uint8_t *sealed;
        r = lb_buf_grow(out, LB_KEY_SIZE + LB_SEAL_OVERHEAD, &sealed);
        if (r < 0) {
                sodium_memzero(kek, sizeof kek);
                return r;
        }
        lb_seal(kek, out->data, ad_len, master, LB_KEY_SIZE, sealed);
        sodium_memzero(kek, sizeof kek);
        return 0;
}

static int parse(const uint8_t *p, size_t n, LbKeySlot *ret, size_t *ret_ad_len) {
        if (n < SLOT_FIXED_SIZE || n > LB_KEYSLOT_MAX_SIZE || memcmp(p, LB_KEYSLOT_MAGIC, 8) != 0)
                return -EBADMSG;
        if (lb_get_le32(p + 8) != LB_KDF_ARGON2ID13 || lb_get_le32(p + 12) != 0)
                return -EBADMSG;
        size_t label_len = lb_get_le16(p + 56 + LB_REPO_ID_SIZE);
        if (label_len > LB_KEYSLOT_LABEL_MAX || n != SLOT_FIXED_SIZE + label_len + LB_KEY_SIZE + LB_SEAL_OVERHEAD)
                return -EBADMSG;
        if (memchr(p + SLOT_FIXED_SIZE, 0, label_len))
                return -EBADMSG;
        LbKeySlot s = {
                .opslimit = lb_get_le64(p + 16),
                .memlimit = lb_get_le64(p + 24),
                .created_ns = (int64_t) lb_get_le64(p + 48),
        };
        if (s.opslimit < crypto_pwhash_OPSLIMIT_MIN || s.opslimit > LB_KDF_OPSLIMIT_MAX ||
            s.memlimit < crypto_pwhash_MEMLIMIT_MIN || s.memlimit > LB_KDF_MEMLIMIT_MAX)
                return -EBADMSG;
        memcpy(s.salt, p + 32, 16);
        memcpy(s.repo_id, p + 56, LB_REPO_ID_SIZE);
        s.label = strndup((const char *) p + SLOT_FIXED_SIZE, label_len);
        if (!s.label)
                return -ENOMEM;
        *ret = s;
        *ret_ad_len = SLOT_FIXED_SIZE + label_len;
        return 0;
}

int lb_keyslot_parse(const uint8_t *p, size_t n, LbKeySlot *ret) {
        size_t ad_len;
        return parse(p, n, ret, &ad_len);
}

void lb_keyslot_clear(LbKeySlot *s) {
        free(s->label);
        *s = (LbKeySlot) {};
}

int lb_keyslot_open(const uint8_t *p, size_t n, const char *passphrase, uint8_t master[LB_KEY_SIZE]) {
        LbKeySlot s;
        size_t ad_len;
        int r = parse(p, n, &s, &ad_len);
        if (r < 0)
                return r;
        uint8_t kek[LB_KEY_SIZE];
        r = derive_kek(passphrase, &s, kek);
        lb_keyslot_clear(&s);
        if (r < 0)
                return r;
        r = lb_unseal(kek, p, ad_len, p + ad_len, n - ad_len, master);
        sodium_memzero(kek, sizeof kek);
        return r == -EBADMSG ? -EKEYREJECTED : r;
}
