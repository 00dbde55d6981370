/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: lb_entry_decode over each 56-byte window of the input. An
 * accepted entry must satisfy the documented relations and encode back to
 * exactly the same bytes (the format has no slack).
 */
#include "store/crypto.h"
#include "store/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        for (size_t off = 0; size - off >= LB_ENTRY_SIZE; off += LB_ENTRY_SIZE) {
                LbPackEntry e;
                if (lb_entry_decode(data + off, &e) < 0)
                        continue;
                if (e.type < LB_BLOB_DATA || e.type > LB_BLOB_CHUNKLIST)
                        abort();
                if (e.codec != LB_CODEC_RAW && e.codec != LB_CODEC_ZSTD && e.codec != LB_CODEC_DELTA)
                        abort();
                if (e.codec == LB_CODEC_DELTA && e.type != LB_BLOB_DATA)
                        abort();
                if (e.raw_len > LB_BLOB_RAW_MAX)
                        abort();
                if ((uint64_t) lb_pad_length(e.payload_len) + LB_SEAL_OVERHEAD != e.stored_len)
                        abort();
                if (e.codec == LB_CODEC_RAW && e.payload_len != e.raw_len)
                        abort();
                uint8_t again[LB_RECORD_MAX_SIZE]; /* a delta's record adds its base */
                lb_entry_encode(&e, again);
                if (memcmp(again, data + off, LB_ENTRY_SIZE) != 0)
                        abort();
        }
        return 0;
}
