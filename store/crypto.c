/* SPDX-License-Identifier: MIT */
#include "store/crypto.h"

#include <sodium.h>

#define KDF_CONTEXT "longbox1"

enum {
        SUBKEY_ID = 1,
        SUBKEY_DATA = 2,
        SUBKEY_META = 3,
        SUBKEY_GEAR = 4,
        SUBKEY_CONFIG = 5,
};

_Static_assert(sizeof(LbHasher) >= sizeof(crypto_generichash_state), "LbHasher too small");
_Static_assert(LB_NONCE_SIZE == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(LB_TAG_SIZE == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(LB_KEY_SIZE == crypto_kdf_KEYBYTES, "kdf key size");

int lb_crypto_init(void) {
        return sodium_init() < 0 ? -EIO : 0;
}

void lb_keys_derive(LbKeys *k, const uint8_t master[LB_KEY_SIZE]) {
        memcpy(k->master, master, LB_KEY_SIZE);
        crypto_kdf_derive_from_key(k->id_key, LB_KEY_SIZE, SUBKEY_ID, KDF_CONTEXT, master);
        crypto_kdf_derive_from_key(k->data_key, LB_KEY_SIZE, SUBKEY_DATA, KDF_CONTEXT, master);
        crypto_kdf_derive_from_key(k->meta_key, LB_KEY_SIZE, SUBKEY_META, KDF_CONTEXT, master);
        crypto_kdf_derive_from_key(k->gear_seed, LB_KEY_SIZE, SUBKEY_GEAR, KDF_CONTEXT, master);
        crypto_kdf_derive_from_key(k->config_key, LB_KEY_SIZE, SUBKEY_CONFIG, KDF_CONTEXT, master);
}

void lb_keys_wipe(LbKeys *k) {
        sodium_memzero(k, sizeof *k);
}

void lb_random(void *p, size_t n) {
        randombytes_buf(p, n);
}

uint32_t lb_random_uniform(uint32_t upper) {
        return randombytes_uniform(upper);
}

void lb_rng_init(LbRng *g) {
        randombytes_buf(g->key, sizeof g->key);
        g->block = 0;
        g->pos = sizeof g->buf;
}

static uint32_t rng_next32(LbRng *g) {
        if (g->pos + 4 > sizeof g->buf) {
                uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
                lb_put_le64(nonce, g->block++);
                crypto_stream_chacha20(g->buf, sizeof g->buf, nonce, g->key);
                g->pos = 0;
        }
        uint32_t v = lb_get_le32(g->buf + g->pos);
        g->pos += 4;
        return v;
}

uint32_t lb_rng_uniform(LbRng *g, uint32_t upper) {
        if (upper < 2)
                return 0;
        /* As randombytes_uniform: reject the low 2^32 mod upper values. */
        uint32_t min = (1u + ~upper) % upper;
        uint32_t r;
        do
                r = rng_next32(g);
        while (r < min);
        return r % upper;
}

void lb_rng_wipe(LbRng *g) {
        sodium_memzero(g, sizeof *g);
}

void lb_chunk_id(const LbKeys *k, const void *p, size_t n, LbId *ret) {
        crypto_generichash(ret->b, LB_ID_SIZE, p, n, k->id_key, LB_KEY_SIZE);
}

void lb_object_id(const void *p, size_t n, LbId *ret) {
        crypto_generichash(ret->b, LB_ID_SIZE, p, n, NULL, 0);
}

void lb_hasher_init(LbHasher *h) {
        crypto_generichash_init((crypto_generichash_state *) h->state, NULL, 0, LB_ID_SIZE);
}

void lb_hasher_update(LbHasher *h, const void *p, size_t n) {
        crypto_generichash_update((crypto_generichash_state *) h->state, p, n);
}

void lb_hasher_final(LbHasher *h, LbId *ret) {
        crypto_generichash_final((crypto_generichash_state *) h->state, ret->b, LB_ID_SIZE);
}

void lb_mac(const uint8_t key[LB_KEY_SIZE], const void *p, size_t n, uint8_t out[32]) {
        crypto_generichash(out, 32, p, n, key, LB_KEY_SIZE);
}

void lb_seal(const uint8_t key[LB_KEY_SIZE], const void *ad, size_t ad_len, const void *in, size_t n, uint8_t *out) {
        randombytes_buf(out, LB_NONCE_SIZE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(out + LB_NONCE_SIZE, NULL, in, n, ad, ad_len, NULL, out, key);
}

int lb_unseal(const uint8_t key[LB_KEY_SIZE], const void *ad, size_t ad_len, const uint8_t *in, size_t n, uint8_t *out) {
        if (n < LB_SEAL_OVERHEAD)
                return -EBADMSG;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in + LB_NONCE_SIZE, n - LB_NONCE_SIZE, ad,
                                                       ad_len, in, key) != 0)
                return -EBADMSG;
        return 0;
}

int lb_unseal_verify(const uint8_t key[LB_KEY_SIZE], const void *ad, size_t ad_len, const uint8_t *in, size_t n) {
        if (n < LB_SEAL_OVERHEAD)
                return -EBADMSG;
        /* With no message buffer libsodium computes and compares the tag only. */
        if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(NULL, NULL, in + LB_NONCE_SIZE, n - LB_SEAL_OVERHEAD,
                                                                in + n - LB_TAG_SIZE, ad, ad_len, in, key) != 0)
                return -EBADMSG;
        return 0;
}

int lb_seal_buf(const uint8_t key[LB_KEY_SIZE], const char *ad, const void *in, size_t n, LbBuf *out) {
        lb_buf_clear(out);
        uint8_t *p;
        int r = lb_buf_grow(out, n + LB_SEAL_OVERHEAD, &p);
        if (r < 0)
                return r;
        lb_seal(key, ad, strlen(ad), in, n, p);
        return 0;
}

int lb_unseal_buf(const uint8_t key[LB_KEY_SIZE], const char *ad, const uint8_t *in, size_t n, LbBuf *out) {
        if (n < LB_SEAL_OVERHEAD)
                return -EBADMSG;
        lb_buf_clear(out);
        uint8_t *p;
        int r = lb_buf_grow(out, n - LB_SEAL_OVERHEAD, &p);
        if (r < 0)
                return r;
        r = lb_unseal(key, ad, strlen(ad), in, n, p);
        if (r < 0)
                lb_buf_clear(out);
        return r;
}

bool lb_memeq(const void *a, const void *b, size_t n) {
        return sodium_memcmp(a, b, n) == 0;
}

uint32_t lb_pad_length(uint32_t n) {
        if (n < 2)
                return n;
        /* E = floor(log2 n), S = floor(log2 E) + 1, zero the low E - S bits, rounding up. */
        unsigned e = 31u - (unsigned) __builtin_clz(n);
        unsigned s = 32u - (unsigned) __builtin_clz(e);
        if (e <= s)
                return n;
        uint64_t mask = (1ull << (e - s)) - 1;
        return (uint32_t) (((uint64_t) n + mask) & ~mask);
}

void lb_gear_table(const LbKeys *k, uint64_t table[256]) {
        static const uint8_t nonce[crypto_stream_xchacha20_NONCEBYTES] = "longbox gear table v1";
        uint8_t stream[256 * 8];
        crypto_stream_xchacha20(stream, sizeof stream, nonce, k->gear_seed);
        for (size_t i = 0; i < 256; i++)
                table[i] = lb_get_le64(stream + 8 * i);
        sodium_memzero(stream, sizeof stream);
}

void lb_id_hex(const LbId *id, char out[2 * LB_ID_SIZE + 1]) {
        lb_hex_encode(id->b, LB_ID_SIZE, out);
}

int lb_id_from_hex(const char *s, LbId *ret) {
        return lb_hex_decode(s, ret->b, LB_ID_SIZE);
}
