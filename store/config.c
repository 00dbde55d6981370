/* SPDX-License-Identifier: MIT */
/* The repository config object (docs/design.md "Config"). */
#include "store/repo.h"

int lb_config_encode(const LbRepoConfig *c, const LbKeys *k, uint8_t out[LB_CONFIG_SIZE]) {
        uint8_t *p = out;
        memcpy(p, LB_CONFIG_MAGIC, 8);
        lb_put_le32(p + 8, c->version);
        lb_put_le32(p + 12, c->mandatory_features);
        lb_put_le32(p + 16, c->optional_features);
        memcpy(p + 20, c->repo_id, LB_REPO_ID_SIZE);
        lb_put_le32(p + 36, c->chunker.min);
        lb_put_le32(p + 40, c->chunker.avg);
        lb_put_le32(p + 44, c->chunker.max);
        lb_put_le32(p + 48, (uint32_t) c->zstd_level);
        lb_put_le32(p + 52, c->pack_target);
        lb_put_le64(p + 56, (uint64_t) c->created_ns);
        memset(p + 64, 0, LB_CONFIG_MAC_OFFSET - 64); /* reserved */
        lb_mac(k->config_key, p, LB_CONFIG_MAC_OFFSET, p + LB_CONFIG_MAC_OFFSET);
        return 0;
}

_Static_assert(LB_CONFIG_MAC_OFFSET + 32 == LB_CONFIG_SIZE, "config layout");

int lb_config_decode(const uint8_t *p, size_t n, LbRepoConfig *ret) {
        if (n != LB_CONFIG_SIZE || memcmp(p, LB_CONFIG_MAGIC, 8) != 0)
                return -EBADMSG;
        LbRepoConfig c = {
                .version = lb_get_le32(p + 8),
                .mandatory_features = lb_get_le32(p + 12),
                .optional_features = lb_get_le32(p + 16),
                .chunker = { lb_get_le32(p + 36), lb_get_le32(p + 40), lb_get_le32(p + 44) },
                .zstd_level = (int32_t) lb_get_le32(p + 48),
                .pack_target = lb_get_le32(p + 52),
                .created_ns = (int64_t) lb_get_le64(p + 56),
        };
        memcpy(c.repo_id, p + 20, LB_REPO_ID_SIZE);
        if (c.version != LB_FORMAT_VERSION || (c.mandatory_features & ~LB_FEATURES_MANDATORY_KNOWN))
                return -EPROTONOSUPPORT;
        if (lb_chunker_params_check(&c.chunker) < 0)
                return -EBADMSG;
        if (c.zstd_level < 0 || c.zstd_level > 22)
                return -EBADMSG;
        if (c.pack_target < (1u << 20) || c.pack_target > (1u << 30))
                return -EBADMSG;
        for (size_t i = 64; i < LB_CONFIG_MAC_OFFSET; i++)
                if (p[i] != 0)
                        return -EBADMSG;
        *ret = c;
        return 0;
}

int lb_config_verify(const uint8_t *p, size_t n, const LbKeys *k) {
        if (n != LB_CONFIG_SIZE)
                return -EBADMSG;
        uint8_t mac[32];
        lb_mac(k->config_key, p, LB_CONFIG_MAC_OFFSET, mac);
        return lb_memeq(mac, p + LB_CONFIG_MAC_OFFSET, 32) ? 0 : -EBADMSG;
}
