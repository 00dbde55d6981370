/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: key slot parsing. An accepted slot with cheap KDF limits is
 * also opened with a fixed passphrase (which must fail or succeed cleanly).
 */
#include "store/repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (lb_crypto_init() < 0)
                return 0;
        LbKeySlot s;
        if (lb_keyslot_parse(data, size, &s) < 0)
                return 0;
        /* A parsed slot always has limits inside the hard bounds. */
        if (s.opslimit > LB_KDF_OPSLIMIT_MAX || s.memlimit > LB_KDF_MEMLIMIT_MAX || !s.label)
                __builtin_trap();
        bool cheap = s.opslimit <= 2 && s.memlimit <= (64u << 10);
        lb_keyslot_clear(&s);
        if (cheap) {
                uint8_t master[LB_KEY_SIZE];
                int r = lb_keyslot_open(data, size, "fuzz", master);
                if (r != 0 && r != -EKEYREJECTED)
                        __builtin_trap();
        }
        return 0;
}
