/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: an index file, decoded with the fixed test master
 * (32 x 0x42, as in tests/data/index-v1.idx). Whatever decodes must
 * encode again and decode to the same records.
 *
 * Mutated files rarely get past the AEAD tag, so the input is also sealed
 * as an index plaintext and decoded: that reaches the count, length and
 * bounds checks behind the tag.
 */
#include "store/crypto.h"
#include "store/indexfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const LbKeys *test_keys(void) {
        static LbKeys k;
        static bool done;
        if (!done) {
                uint8_t m[LB_KEY_SIZE];
                if (lb_crypto_init() < 0)
                        abort();
                memset(m, 0x42, sizeof m);
                lb_keys_derive(&k, m);
                done = true;
        }
        return &k;
}

static bool same(const LbIndexPack *a, const LbIndexPack *b) {
        if (lb_id_cmp(&a->pack_id, &b->pack_id) != 0 || a->pack_size != b->pack_size || a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++) {
                uint8_t x[LB_RECORD_MAX_SIZE], y[LB_RECORD_MAX_SIZE];
                lb_entry_encode(&a->entries[i], x);
                lb_entry_encode(&b->entries[i], y);
                if (lb_entry_record_size(&a->entries[i]) != lb_entry_record_size(&b->entries[i]) ||
                    memcmp(x, y, lb_entry_record_size(&a->entries[i])) != 0 || a->entries[i].offset != b->entries[i].offset)
                        return false;
        }
        return true;
}

static void check_decode(const LbKeys *k, const uint8_t *data, size_t size) {
        LbIndexPack *p = NULL, *q = NULL;
        size_t n = 0, m = 0;
        if (lb_indexfile_decode(k, data, size, &p, &n) < 0) {
                if (p)
                        abort(); /* ret_ outputs are written only on success */
                return;
        }
        LbBuf again = {};
        if (lb_indexfile_encode(k, p, n, &again) < 0)
                abort();
        if (lb_indexfile_decode(k, again.data, again.len, &q, &m) < 0 || m != n)
                abort();
        for (size_t i = 0; i < n; i++)
                if (!same(&p[i], &q[i]))
                        abort();
        lb_buf_free(&again);
        lb_index_packs_free(p, n);
        lb_index_packs_free(q, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const LbKeys *k = test_keys();
        check_decode(k, data, size);

        if (size + LB_SEAL_OVERHEAD > LB_INDEX_MAX_SIZE)
                return 0;
        LbBuf sealed = {};
        if (lb_seal_buf(k->meta_key, LB_INDEX_AD, data, size, &sealed) < 0)
                abort();
        check_decode(k, sealed.data, sealed.len);
        lb_buf_free(&sealed);
        return 0;
}
