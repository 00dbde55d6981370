/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Keys and primitives. The only place that calls libsodium (besides the
 * key slot KDF in keyslot.c); its conventions are translated here.
 *
 * One random 32-byte master secret per repository; every working key is
 * derived from it with crypto_kdf (BLAKE2b) under context "longbox1":
 *   subkey 1: chunk id key (keyed BLAKE2b-256)
 *   subkey 2: data key (XChaCha20-Poly1305 for blobs)
 *   subkey 3: metadata key (TOCs, index files, snapshots, locks)
 *   subkey 4: gear seed (chunker table)
 *   subkey 5: config MAC key
 */

#include "store/format.h"
#include "store/util.h"

typedef struct LbKeys {
        uint8_t master[LB_KEY_SIZE];
        uint8_t id_key[LB_KEY_SIZE];
        uint8_t data_key[LB_KEY_SIZE];
        uint8_t meta_key[LB_KEY_SIZE];
        uint8_t gear_seed[LB_KEY_SIZE];
        uint8_t config_key[LB_KEY_SIZE];
} LbKeys;

/* sodium_init(); safe to call repeatedly. -EIO if libsodium cannot start. */
int lb_crypto_init(void) _warn_unused_;

void lb_keys_derive(LbKeys *k, const uint8_t master[LB_KEY_SIZE]);
void lb_keys_wipe(LbKeys *k);

void lb_random(void *p, size_t n);
/* Uniform integer in [0, upper). One system call per number: for many
 * numbers at once (shuffles), use an LbRng. */
uint32_t lb_random_uniform(uint32_t upper);

/* A stream of random numbers for one task (a pack's shuffle): ChaCha20
 * keyed once from the system's generator, so a million draws cost no
 * system call each. Not for keys or nonces. Wipe when done. */
typedef struct LbRng {
        uint8_t key[LB_KEY_SIZE];
        uint64_t block;         /* nonce of the next refill */
        uint8_t buf[256];
        size_t pos;             /* bytes of buf used */
} LbRng;
void lb_rng_init(LbRng *g);
/* Uniform integer in [0, upper), upper > 0 (rejection sampling: no bias). */
uint32_t lb_rng_uniform(LbRng *g, uint32_t upper);
void lb_rng_wipe(LbRng *g);

/* Chunk id: keyed BLAKE2b-256 of the raw bytes. */
void lb_chunk_id(const LbKeys *k, const void *p, size_t n, LbId *ret);
/* Unkeyed BLAKE2b-256, used to name stored objects by their (ciphertext) bytes. */
void lb_object_id(const void *p, size_t n, LbId *ret);
/* Incremental unkeyed BLAKE2b-256, for objects written in pieces. */
typedef struct LbHasher {
        _Alignas(64) uint8_t state[384];
} LbHasher;
void lb_hasher_init(LbHasher *h);
void lb_hasher_update(LbHasher *h, const void *p, size_t n);
void lb_hasher_final(LbHasher *h, LbId *ret);
/* Keyed BLAKE2b-256 MAC. */
void lb_mac(const uint8_t key[LB_KEY_SIZE], const void *p, size_t n, uint8_t out[32]);

/* Seal: out (n + LB_SEAL_OVERHEAD bytes) = nonce || XChaCha20-Poly1305(key, ad, in).
 * in may be out + LB_NONCE_SIZE (sealing in place), else must not overlap out. */
void lb_seal(const uint8_t key[LB_KEY_SIZE], const void *ad, size_t ad_len, const void *in, size_t n, uint8_t *out);
/* Open: out (n - LB_SEAL_OVERHEAD bytes). -EBADMSG when too short or not authentic. */
int lb_unseal(const uint8_t key[LB_KEY_SIZE], const void *ad, size_t ad_len, const uint8_t *in, size_t n, uint8_t *out) _warn_unused_;
/* Checks a sealed object's tag without decrypting it (as lb_unseal, minus
 * the plaintext): 0 when authentic, -EBADMSG when too short or not. */
int lb_unseal_verify(const uint8_t key[LB_KEY_SIZE], const void *ad, size_t ad_len, const uint8_t *in, size_t n) _warn_unused_;
/* Convenience: seal into a buffer (replacing its contents) / open into one. */
int lb_seal_buf(const uint8_t key[LB_KEY_SIZE], const char *ad, const void *in, size_t n, LbBuf *out) _warn_unused_;
int lb_unseal_buf(const uint8_t key[LB_KEY_SIZE], const char *ad, const uint8_t *in, size_t n, LbBuf *out) _warn_unused_;

/* Constant-time comparison; true when equal. */
bool lb_memeq(const void *a, const void *b, size_t n);

/* Padmé padding (PURBs, Nikitin et al. 2019): the padded length of a
 * payload of n bytes. At most ~12% overhead; leaks O(log log n) bits. */
uint32_t lb_pad_length(uint32_t n);

/* Gear table for the chunker: 256 x u64 from the gear seed (XChaCha20 keystream). */
void lb_gear_table(const LbKeys *k, uint64_t table[256]);

void lb_id_hex(const LbId *id, char out[2 * LB_ID_SIZE + 1]);
int lb_id_from_hex(const char *s, LbId *ret) _warn_unused_;
static inline int lb_id_cmp(const LbId *a, const LbId *b) {
        return memcmp(a->b, b->b, LB_ID_SIZE);
}
