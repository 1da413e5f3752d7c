/*
 * lib/crypto/luks-header.c on hand-built LUKS1 headers: a valid one, then
 * one damage at a time (truncation, magic, version, strings, key slot
 * placement, algorithm names), each refused with the message qemu-img 7.2
 * gives for it (tests/compat/qcow2-luks-info.sh compares the same damages
 * live), and random damage that must never crash.
 */
#include <stdint.h>
#include <string.h>

#include "core/internal.h"
#include "crypto/luks-header.h"
#include "test.h"
#include "util/endian.h"

/* What qemu-img 7.2 writes by default: aes-256 xts-plain64, sha256, 64 key bytes. */
static void
build_valid(uint8_t *b)
{
    memset(b, 0, LUKS_PHDR_SIZE);
    memcpy(b, "LUKS\xba\xbe", 6);
    store_be16(b + 6, 1);
    strcpy((char *)b + 8, "aes");
    strcpy((char *)b + 40, "xts-plain64");
    strcpy((char *)b + 72, "sha256");
    store_be32(b + 104, 4040);
    store_be32(b + 108, 64);
    store_be32(b + 164, 8864);
    memcpy(b + 168, "3e2e99e8-9916-4c4e-9e6e-8abf483e3a11", 36);
    for (int i = 0; i < LUKS_KEY_SLOTS; i++) {
        uint8_t *k = b + 208 + i * 48;
        store_be32(k, i == 0 ? 0x00ac71f3 : 0x0000dead);
        store_be32(k + 4, i == 0 ? 38235 : 0);
        store_be32(k + 40, 8 + 504 * (uint32_t)i);
        store_be32(k + 44, 4000);
    }
}

static uint8_t *
slot(uint8_t *b, int i)
{
    return b + 208 + i * 48;
}

static void
set_str(uint8_t *b, size_t off, const char *s)
{
    memset(b + off, 0, 32);
    memcpy(b + off, s, strlen(s) < 32 ? strlen(s) : 32);
}

/* Parsing b must fail with exactly this message. */
static void
expect_error(const uint8_t *b, size_t len, const char *msg, int line)
{
    struct luks_header h;
    dimg_error_clear();
    int r = luks_header_parse(b, len, &h);
    if (r >= 0 || strcmp(dimg_get_error(), msg) != 0) {
        fprintf(stderr, "line %d: r=%d error \"%s\", expected \"%s\"\n", line, r,
                dimg_get_error(), msg);
        exit(1);
    }
}
#define EXPECT_ERROR(b, msg) expect_error(b, LUKS_PHDR_SIZE, msg, __LINE__)

static const struct dimg_value *
find(const struct dimg_value *o, const char *key)
{
    for (const struct dimg_value *c = o->child; c; c = c->next)
        if (c->key && !strcmp(c->key, key))
            return c;
    return NULL;
}

/* dimg_info_free releases the value tree it is handed. */
static void
free_value(struct dimg_value *v)
{
    struct dimg_info info;
    memset(&info, 0, sizeof info);
    info.format_specific = v;
    dimg_info_free(&info);
}

static void
test_valid(void)
{
    uint8_t b[LUKS_PHDR_SIZE];
    struct luks_header h;
    build_valid(b);
    CHECK(luks_header_parse(b, sizeof b, &h) == 0);
    CHECK_STR(h.cipher_alg, "aes-256");
    CHECK_STR(h.cipher_mode, "xts");
    CHECK_STR(h.ivgen_alg, "plain64");
    CHECK(h.ivgen_hash_alg == NULL);
    CHECK_STR(h.hash_alg, "sha256");
    CHECK_STR(h.uuid, "3e2e99e8-9916-4c4e-9e6e-8abf483e3a11");
    CHECK_EQ_U64(h.payload_offset, 4040);
    CHECK(h.slots[0].active && !h.slots[1].active);
    CHECK_EQ_U64(h.slots[7].key_offset, 3536);

    struct dimg_value *e = luks_header_describe(&h, "encrypt");
    CHECK(e && e->type == DIMG_VALUE_OBJECT);
    static const char *const order[] = { "ivgen-alg", "hash-alg", "cipher-alg", "uuid",
                                         "format", "cipher-mode", "slots", "payload-offset",
                                         "master-key-iters" };
    const struct dimg_value *c = e->child;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++, c = c->next) {
        CHECK(c != NULL);
        CHECK_STR(c->key, order[i]);
    }
    CHECK(c == NULL);
    CHECK_EQ_U64(find(e, "payload-offset")->v.u, 4040ull * 512);
    const struct dimg_value *s0 = find(e, "slots")->child, *s1 = s0->next;
    CHECK_EQ_U64(find(s0, "iters")->v.u, 38235);
    CHECK_EQ_U64(find(s0, "stripes")->v.u, 4000);
    CHECK(find(s1, "iters") == NULL && find(s1, "stripes") == NULL);
    CHECK_EQ_U64(find(s1, "key-offset")->v.u, 512ull * 512);
    free_value(e);

    /* ESSIV carries its hash; a 40-byte uuid has no terminator of its own. */
    set_str(b, 40, "cbc-essiv:sha256");
    store_be32(b + 108, 32); /* cbc: one aes-256 key; slots now 256 sectors */
    memset(b + 168, 'u', 40);
    CHECK(luks_header_parse(b, sizeof b, &h) == 0);
    CHECK_STR(h.cipher_alg, "aes-256");
    CHECK_STR(h.ivgen_hash_alg, "sha256");
    CHECK_EQ_U64(strlen(h.uuid), 40);
    e = luks_header_describe(&h, "encrypt");
    CHECK_STR(find(e, "ivgen-hash-alg")->v.s, "sha256");
    CHECK_STR(e->child->next->next->next->next->key, "ivgen-hash-alg"); /* after uuid */
    free_value(e);
}

static void
test_fixed_fields(void)
{
    uint8_t b[LUKS_PHDR_SIZE];
    build_valid(b);
    expect_error(b, LUKS_PHDR_SIZE - 1, "Volume is not in LUKS format", __LINE__);
    expect_error(b, 0, "Volume is not in LUKS format", __LINE__);
    b[5] = 0xbf;
    EXPECT_ERROR(b, "Volume is not in LUKS format");
    build_valid(b);
    store_be16(b + 6, 2);
    EXPECT_ERROR(b, "LUKS version 2 is not supported");
    store_be16(b + 6, 0xffff);
    EXPECT_ERROR(b, "LUKS version 65535 is not supported");
    build_valid(b);
    memset(b + 8, 'a', 32);
    EXPECT_ERROR(b, "LUKS header cipher name is not NUL terminated");
    build_valid(b);
    memset(b + 40, 'a', 32);
    EXPECT_ERROR(b, "LUKS header cipher mode is not NUL terminated");
    build_valid(b);
    memset(b + 72, 'a', 32);
    store_be32(b + 104, 0); /* the strings are checked first */
    EXPECT_ERROR(b, "LUKS header hash spec is not NUL terminated");
    build_valid(b);
    store_be32(b + 104, 7);
    EXPECT_ERROR(b, "LUKS payload is overlapping with the header");
    build_valid(b);
    store_be32(b + 164, 0);
    EXPECT_ERROR(b, "LUKS key iteration count is zero");
}

static void
test_key_slots(void)
{
    uint8_t b[LUKS_PHDR_SIZE];
    struct luks_header h;
    build_valid(b);
    store_be32(slot(b, 1), 0x12345678);
    EXPECT_ERROR(b, "Keyslot 1 state (active/disable) is corrupted");
    /* Slots are checked in turn: slot 0's problem comes first. */
    store_be32(slot(b, 0) + 44, 0);
    EXPECT_ERROR(b, "Keyslot 0 is corrupted (stripes 0 != 4000)");
    build_valid(b);
    store_be32(slot(b, 3) + 44, 0xffffffff);
    EXPECT_ERROR(b, "Keyslot 3 is corrupted (stripes -1 != 4000)");
    build_valid(b);
    store_be32(slot(b, 0) + 4, 0);
    EXPECT_ERROR(b, "Keyslot 0 iteration count is zero");
    build_valid(b);
    store_be32(slot(b, 1) + 4, 0); /* disabled slots need no iterations */
    CHECK(luks_header_parse(b, sizeof b, &h) == 0);
    store_be32(slot(b, 0) + 40, 7);
    EXPECT_ERROR(b, "Keyslot 0 is overlapping with the LUKS header");
    build_valid(b);
    store_be32(slot(b, 7) + 40, 3537);
    EXPECT_ERROR(b, "Keyslot 7 is overlapping with the encrypted payload");
    build_valid(b);
    store_be32(slot(b, 1) + 40, 507);
    EXPECT_ERROR(b, "Keyslots 0 and 1 are overlapping in the header");
    build_valid(b);
    store_be32(slot(b, 3) + 40, 8);
    store_be32(slot(b, 2) + 40, 512);
    EXPECT_ERROR(b, "Keyslots 0 and 3 are overlapping in the header");
    /* Absurd key material sizes */
    build_valid(b);
    store_be32(b + 108, 0x100000);
    EXPECT_ERROR(b, "Keyslot 0 is overlapping with the encrypted payload");
    store_be32(b + 108, 18253611); /* x 4000 = 0xffffffe0 */
    EXPECT_ERROR(b, "Keyslot 0 is overlapping with the encrypted payload");
    /* 32-bit wrap-around, as qemu-img computes it: accepted there too. */
    build_valid(b);
    store_be32(slot(b, 0) + 40, 0xffffff00);
    CHECK(luks_header_parse(b, sizeof b, &h) == 0);
    build_valid(b);
    store_be32(b + 108, 0x10000000);
    EXPECT_ERROR(b, "Algorithm 'aes' with key size 134217728 bytes not supported");
    build_valid(b);
    store_be32(b + 104, 0xffffffff);
    CHECK(luks_header_parse(b, sizeof b, &h) == 0);
}

static void
test_algorithms(void)
{
    uint8_t b[LUKS_PHDR_SIZE];
    struct luks_header h;
    build_valid(b);
    set_str(b, 40, "xts");
    set_str(b, 8, "foo");
    EXPECT_ERROR(b, "Unexpected cipher mode string format 'xts'");
    set_str(b, 40, "foo-plain64");
    EXPECT_ERROR(b, "Cipher mode 'foo' not supported");
    set_str(b, 40, "xts-benbi:md4");
    EXPECT_ERROR(b, "Hash algorithm 'md4' not supported");
    set_str(b, 40, "xts-benbi");
    EXPECT_ERROR(b, "Algorithm 'foo' with key size 32 bytes not supported");
    set_str(b, 8, "aes");
    set_str(b, 72, "SHA256");
    EXPECT_ERROR(b, "Hash algorithm 'SHA256' not supported");
    set_str(b, 72, "sha1");
    EXPECT_ERROR(b, "IV generator 'benbi' not supported");
    set_str(b, 40, "cbc-essiv");
    store_be32(b + 108, 32);
    EXPECT_ERROR(b, "Missing IV generator hash specification");
    set_str(b, 40, "cbc-essiv:sha1");
    EXPECT_ERROR(b, "No AES cipher with key size 20 available");
    set_str(b, 8, "twofish");
    set_str(b, 40, "cbc-essiv:sha512");
    EXPECT_ERROR(b, "No Twofish cipher with key size 64 available");
    set_str(b, 8, "cast5");
    set_str(b, 40, "cbc-essiv:md5");
    EXPECT_ERROR(b, "Algorithm 'cast5' with key size 32 bytes not supported");
    store_be32(b + 108, 16);
    EXPECT_ERROR(b, "Cipher cast5-128 not supported with essiv");
    set_str(b, 40, "ctr-plain:sha1"); /* a hash after plain is checked, not kept */
    CHECK(luks_header_parse(b, sizeof b, &h) == 0);
    CHECK_STR(h.cipher_alg, "cast5-128");
    CHECK(h.ivgen_hash_alg == NULL);
    set_str(b, 8, "serpent");
    store_be32(b + 108, 48);
    set_str(b, 40, "xts-plain64");
    set_str(b, 72, "ripemd160");
    CHECK(luks_header_parse(b, sizeof b, &h) == 0);
    CHECK_STR(h.cipher_alg, "serpent-192");
    CHECK_STR(h.hash_alg, "ripemd160");
    store_be32(b + 108, 0x80000000);
    set_str(b, 40, "cbc-plain");
    EXPECT_ERROR(b, "Algorithm 'serpent' with key size -2147483648 bytes not supported");
}

/* Random damage: any outcome but a crash or an unterminated result. */
static void
test_random(void)
{
    uint8_t b[LUKS_PHDR_SIZE];
    uint64_t x = 88172645463325252ull;
    for (int n = 0; n < 20000; n++) {
        build_valid(b);
        for (int k = 0; k < 1 + n % 8; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[x % LUKS_PHDR_SIZE] = (uint8_t)(x >> 32);
        }
        struct luks_header h;
        if (luks_header_parse(b, sizeof b, &h) == 0) {
            CHECK(h.cipher_alg && h.cipher_mode && h.ivgen_alg && h.hash_alg);
            CHECK(strlen(h.uuid) <= 40);
            free_value(luks_header_describe(&h, "encrypt"));
        }
    }
}

int
main(void)
{
    test_valid();
    test_fixed_fields();
    test_key_slots();
    test_algorithms();
    test_random();
    return 0;
}
