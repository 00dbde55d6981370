/* SPDX-License-Identifier: MIT */
/*
 * Index files. Format: store/format.h
 *   seal(meta_key, ad = "LBIDX1", "LBIX" || npacks u32 ||
 *        npacks * (pack_id[32] || pack_size u64 || count u32 || count * record))
 * where a record is a TOC record: the entry, then a delta's base id. 
 */
#include "store/indexfile.h"

/* Bytes of one pack record before its entries. */
#define PACK_HEADER_SIZE (LB_ID_SIZE + 8 + 4)
/* Plaintext header: magic || npacks. */
#define INDEX_HEADER_SIZE 8

/* A pack whose TOC records take records_len bytes has its blobs in
 * [0, blobs_end): the TOC ("LBTC" || count || records, sealed) and the
 * footer follow them. Returns false when pack_size cannot hold even the
 * TOC and footer. */
static bool pack_blobs_end(uint64_t pack_size, uint64_t records_len, uint64_t *ret) {
        uint64_t tail = LB_PACK_FOOTER_SIZE + LB_SEAL_OVERHEAD + 8 + records_len;
        if (pack_size > LB_PACK_MAX_SIZE || pack_size < tail)
                return false;
        *ret = pack_size - tail;
        return true;
}

void lb_index_packs_free(LbIndexPack *p, size_t n) {
        if (!p)
                return;
        for (size_t i = 0; i < n; i++)
                free(p[i].entries);
        free(p);
}

int lb_indexfile_encode(const LbKeys *k, const LbIndexPack *packs, size_t n, LbBuf *out) {
        /* Size and validate everything before writing a byte. */
        uint64_t plain_len = INDEX_HEADER_SIZE;
        for (size_t i = 0; i < n; i++) {
                const LbIndexPack *ip = &packs[i];
                if (ip->n > LB_PACK_MAX_ENTRIES)
                        return -EINVAL;
                uint64_t records_len = 0, blobs_end;
                for (size_t j = 0; j < ip->n; j++)
                        records_len += lb_entry_record_size(&ip->entries[j]);
                if (!pack_blobs_end(ip->pack_size, records_len, &blobs_end))
                        return -EINVAL;
                for (size_t j = 0; j < ip->n; j++) {
                        const LbPackEntry *e = &ip->entries[j];
                        uint8_t raw[LB_RECORD_MAX_SIZE];
                        LbPackEntry check;
                        lb_entry_encode(e, raw);
                        if (lb_entry_decode(raw, &check) < 0)
                                return -EINVAL;
                        if (e->offset > blobs_end || e->stored_len > blobs_end - e->offset)
                                return -EINVAL;
                }
                plain_len += PACK_HEADER_SIZE + records_len;
                if (plain_len + LB_SEAL_OVERHEAD > LB_INDEX_MAX_SIZE)
                        return -EFBIG;
        }

        _cleanup_buf_ LbBuf plain = {};
        int r = lb_buf_reserve(&plain, (size_t) plain_len);
        if (r < 0)
                return r;
        r = lb_buf_append(&plain, LB_INDEX_MAGIC, 4);
        if (r < 0)
                return r;
        r = lb_buf_append_le32(&plain, (uint32_t) n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const LbIndexPack *ip = &packs[i];
                r = lb_buf_append(&plain, ip->pack_id.b, LB_ID_SIZE);
                if (r < 0)
                        return r;
                r = lb_buf_append_le64(&plain, ip->pack_size);
                if (r < 0)
                        return r;
                r = lb_buf_append_le32(&plain, (uint32_t) ip->n);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < ip->n; j++) {
                        uint8_t *p;
                        r = lb_buf_grow(&plain, lb_entry_record_size(&ip->entries[j]), &p);
                        if (r < 0)
                                return r;
                        lb_entry_encode(&ip->entries[j], p);
                }
        }

        _cleanup_buf_ LbBuf sealed = {};
        r = lb_seal_buf(k->meta_key, LB_INDEX_AD, plain.data, plain.len, &sealed);
        if (r < 0)
                return r;
        lb_buf_free(out);
        *out = sealed;
        sealed = (LbBuf) {};
        return 0;
}

static int decode_packs(LbReader *rd, LbIndexPack *packs, uint32_t npacks) {
        for (uint32_t i = 0; i < npacks; i++) {
                LbIndexPack *ip = &packs[i];
                uint32_t count;
                int r = lb_reader_copy(rd, ip->pack_id.b, LB_ID_SIZE);
                if (r < 0)
                        return r;
                r = lb_reader_le64(rd, &ip->pack_size);
                if (r < 0)
                        return r;
                r = lb_reader_le32(rd, &count);
                if (r < 0)
                        return r;
                /* Check the count against the bytes actually present before allocating. */
                if (count > LB_PACK_MAX_ENTRIES || (uint64_t) count * LB_ENTRY_SIZE > lb_reader_left(rd))
                        return -EBADMSG;

                ip->entries = calloc(LB_MAX(count, 1u), sizeof *ip->entries);
                if (!ip->entries)
                        return -ENOMEM;
                size_t before = lb_reader_left(rd);
                for (uint32_t j = 0; j < count; j++) {
                        r = lb_record_read(rd, &ip->entries[j]);
                        if (r < 0)
                                return r;
                }
                uint64_t blobs_end;
                if (!pack_blobs_end(ip->pack_size, before - lb_reader_left(rd), &blobs_end))
                        return -EBADMSG;
                for (uint32_t j = 0; j < count; j++) {
                        const LbPackEntry *e = &ip->entries[j];
                        if (e->offset > blobs_end || e->stored_len > blobs_end - e->offset)
                                return -EBADMSG;
                }
                ip->n = count;
        }
        if (lb_reader_left(rd) != 0)
                return -EBADMSG;
        return 0;
}

int lb_indexfile_decode(const LbKeys *k, const uint8_t *p, size_t n, LbIndexPack **ret, size_t *ret_n) {
        if (n < LB_SEAL_OVERHEAD + INDEX_HEADER_SIZE || n > LB_INDEX_MAX_SIZE)
                return -EBADMSG;
        _cleanup_buf_ LbBuf plain = {};
        int r = lb_unseal_buf(k->meta_key, LB_INDEX_AD, p, n, &plain);
        if (r < 0)
                return r;

        LbReader rd = lb_reader(plain.data, plain.len);
        const uint8_t *magic;
        uint32_t npacks;
        r = lb_reader_bytes(&rd, 4, &magic);
        if (r < 0)
                return r;
        if (memcmp(magic, LB_INDEX_MAGIC, 4) != 0)
                return -EBADMSG;
        r = lb_reader_le32(&rd, &npacks);
        if (r < 0)
                return r;
        /* Every pack record takes at least PACK_HEADER_SIZE bytes. */
        if (npacks > lb_reader_left(&rd) / PACK_HEADER_SIZE)
                return -EBADMSG;

        LbIndexPack *packs = calloc(LB_MAX(npacks, 1u), sizeof *packs);
        if (!packs)
                return -ENOMEM;
        r = decode_packs(&rd, packs, npacks);
        if (r < 0) {
                lb_index_packs_free(packs, npacks);
                return r;
        }
        *ret = packs;
        *ret_n = npacks;
        return 0;
}
