/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a whole pack in memory. Parses footer and TOC with the fixed
 * test master (32 x 0x42, as in tests/data/pack-v1.pack) and, when that
 * succeeds, decodes every blob. Checks the parser's promises: every entry
 * lies inside the blob area and a decoded blob has exactly raw_len bytes.
 *
 * Mutated packs rarely get past the TOC's AEAD tag, so the input is also
 * sealed as a TOC plaintext and parsed with lb_pack_parse_toc: that reaches
 * the count, entry, bounds and overlap checks behind the tag.
 */
#include <stdio.h>

#include "store/crypto.h"
#include "store/pack.h"

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

/* The blob area assumed for a sealed fuzz input: small enough that entries
 * fall both inside and outside it. */
#define TOC_BLOBS_END 65536

static void fuzz_toc_plaintext(const LbKeys *k, const uint8_t *data, size_t size) {
        if (size > LB_PACK_MAX_ENTRIES * (size_t) LB_RECORD_MAX_SIZE + 8)
                return;
        LbBuf sealed = {};
        if (lb_seal_buf(k->meta_key, LB_TOC_AD, data, size, &sealed) < 0)
                abort();
        LbPackEntry *e = NULL;
        size_t n = 0;
        if (lb_pack_parse_toc(k, sealed.data, sealed.len, TOC_BLOBS_END, &e, &n) >= 0) {
                size_t records = 0;
                for (size_t i = 0; i < n; i++)
                        records += lb_entry_record_size(&e[i]);
                if (size != 8 + records)
                        abort();
                uint64_t used = 0;
                for (size_t i = 0; i < n; i++) {
                        if (e[i].offset > TOC_BLOBS_END || e[i].stored_len > TOC_BLOBS_END - e[i].offset)
                                abort();
                        used += e[i].stored_len;
                }
                if (used > TOC_BLOBS_END) /* disjoint entries cannot add up to more */
                        abort();
                free(e);
        } else if (e)
                abort();
        lb_buf_free(&sealed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const LbKeys *k = test_keys();
        fuzz_toc_plaintext(k, data, size);

        LbPackEntry *e = NULL;
        size_t n = 0;
        if (lb_pack_parse(k, data, size, &e, &n) < 0) {
                if (e)
                        abort(); /* ret_ outputs are written only on success */
                return 0;
        }
        uint64_t toc_len = lb_get_le32(data + size - LB_PACK_FOOTER_SIZE);
        uint64_t blobs_end = size - LB_PACK_FOOTER_SIZE - toc_len;
        LbBuf out = {};
        for (size_t i = 0; i < n; i++) {
                if (e[i].offset > blobs_end || e[i].stored_len > blobs_end - e[i].offset)
                        abort();
                if (lb_blob_decode(k, &e[i], data + e[i].offset, e[i].stored_len, &out) >= 0 &&
                    out.len != e[i].raw_len)
                        abort();
        }
        lb_buf_free(&out);
        free(e);
        return 0;
}
