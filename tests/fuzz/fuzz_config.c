/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: config parsing. An accepted config must re-encode (with a
 * fixed key) to bytes that decode to the same values and verify.
 */
#include "store/repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (lb_crypto_init() < 0)
                return 0;
        LbRepoConfig c, d;
        if (lb_config_decode(data, size, &c) < 0)
                return 0;
        uint8_t master[LB_KEY_SIZE];
        memset(master, 0x42, sizeof master);
        LbKeys k;
        lb_keys_derive(&k, master);
        int verified = lb_config_verify(data, size, &k);
        (void) verified; // any result is fine: the MAC is over fuzzed bytes
        uint8_t out[LB_CONFIG_SIZE];
        lb_config_encode(&c, &k, out);
        if (lb_config_decode(out, sizeof out, &d) < 0 || memcmp(&c, &d, sizeof c) != 0 ||
            lb_config_verify(out, sizeof out, &k) < 0)
                __builtin_trap();
        return 0;
}
