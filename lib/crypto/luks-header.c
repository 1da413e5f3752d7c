/*
 * LUKS1 header parsing (see luks-header.h).  The checks and their order
 * follow what qemu-img 7.2 reports for damaged headers (observed by running
 * it on patched images): first the fixed fields, then every key slot's
 * placement, then the algorithm names.  Key slot arithmetic wraps at 32 bits
 * as qemu-img's does, so the same headers are accepted and refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "crypto/luks-header.h"
#include "util/endian.h"

/* phdr field offsets */
#define PHDR_VERSION      6
#define PHDR_CIPHER_NAME  8
#define PHDR_CIPHER_MODE  40
#define PHDR_HASH_SPEC    72
#define PHDR_NAME_LEN     32
#define PHDR_PAYLOAD      104
#define PHDR_KEY_BYTES    108
#define PHDR_MK_ITER      164
#define PHDR_UUID         168
#define PHDR_UUID_LEN     40
#define PHDR_SLOTS        208
#define SLOT_SIZE         48

#define SLOT_ACTIVE   0x00ac71f3u
#define SLOT_DISABLED 0x0000deadu

/* The phdr rounded up to the 4096-byte key slot alignment, in sectors. */
#define HEADER_SECTORS 8u
#define SLOT_ALIGN_SECTORS 8u

static const uint8_t luks_magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

struct cipher_family {
    const char *luks_name;   /* cipher-name in the phdr */
    const char *essiv_name;  /* how qemu names the family in essiv errors; NULL: no essiv */
    const char *by_size[3];  /* qemu's names for 16-, 24- and 32-byte keys */
};

static const struct cipher_family ciphers[] = {
    { "aes", "AES", { "aes-128", "aes-192", "aes-256" } },
    { "cast5", NULL, { "cast5-128", NULL, NULL } },
    { "serpent", "Serpent", { "serpent-128", "serpent-192", "serpent-256" } },
    { "twofish", "Twofish", { "twofish-128", "twofish-192", "twofish-256" } },
};

struct hash_alg {
    const char *name;
    uint32_t digest_len;
};

static const struct hash_alg hashes[] = {
    { "md5", 16 },    { "sha1", 20 },   { "sha224", 28 },    { "sha256", 32 },
    { "sha384", 48 }, { "sha512", 64 }, { "ripemd160", 20 },
};

static const char *const modes[] = { "ecb", "cbc", "xts", "ctr" };
static const char *const ivgens[] = { "plain", "plain64", "essiv" };

static const char *
name_lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return names[i];
    return NULL;
}

static const struct hash_alg *
hash_lookup(const char *s)
{
    for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++)
        if (!strcmp(hashes[i].name, s))
            return &hashes[i];
    dimg_error(ENOTSUP, "Hash algorithm '%s' not supported", s);
    return NULL;
}

/* qemu's name of a family's cipher with this key size, NULL if it has none. */
static const char *
cipher_by_size(const struct cipher_family *f, uint32_t key_size)
{
    if (key_size < 16 || key_size > 32 || key_size % 8)
        return NULL;
    return f->by_size[(key_size - 16) / 8];
}

static const struct cipher_family *
cipher_family(const char *luks_name)
{
    for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++)
        if (!strcmp(ciphers[i].luks_name, luks_name))
            return &ciphers[i];
    return NULL;
}

/* A fixed-size string field, which must end inside its field. */
static int
name_field(const uint8_t *phdr, size_t off, char out[PHDR_NAME_LEN], const char *what)
{
    if (!memchr(phdr + off, 0, PHDR_NAME_LEN))
        return dimg_error(EINVAL, "LUKS header %s is not NUL terminated", what);
    memcpy(out, phdr + off, PHDR_NAME_LEN);
    return 0;
}

/* Sectors a key slot's split key material occupies, aligned as LUKS places slots. */
static uint32_t
slot_sectors(uint32_t key_bytes, uint32_t stripes)
{
    uint32_t bytes = key_bytes * stripes; /* wraps, as qemu-img's does */
    uint32_t sectors = (uint32_t)(((uint64_t)bytes + LUKS_SECTOR_SIZE - 1) / LUKS_SECTOR_SIZE);
    return (sectors + SLOT_ALIGN_SECTORS - 1) / SLOT_ALIGN_SECTORS * SLOT_ALIGN_SECTORS;
}

/* Load the key slots; each is checked in turn, placement against the later ones too. */
static int
load_slots(const uint8_t *buf, struct luks_header *h)
{
    uint32_t state[LUKS_KEY_SLOTS], end[LUKS_KEY_SLOTS];
    for (size_t i = 0; i < LUKS_KEY_SLOTS; i++) {
        const uint8_t *p = buf + PHDR_SLOTS + i * SLOT_SIZE;
        struct luks_keyslot *k = &h->slots[i];
        state[i] = load_be32(p);
        k->active = state[i] == SLOT_ACTIVE;
        k->iterations = load_be32(p + 4);
        k->key_offset = load_be32(p + 40);
        k->stripes = load_be32(p + 44);
        end[i] = k->key_offset + slot_sectors(h->key_bytes, k->stripes);
    }
    for (size_t i = 0; i < LUKS_KEY_SLOTS; i++) {
        const struct luks_keyslot *k = &h->slots[i];
        if (state[i] != SLOT_ACTIVE && state[i] != SLOT_DISABLED)
            return dimg_error(EINVAL, "Keyslot %zu state (active/disable) is corrupted", i);
        if (k->stripes != LUKS_STRIPES)
            return dimg_error(EINVAL, "Keyslot %zu is corrupted (stripes %d != %d)", i,
                              (int)k->stripes, (int)LUKS_STRIPES);
        if (k->active && k->iterations == 0)
            return dimg_error(EINVAL, "Keyslot %zu iteration count is zero", i);
        if (k->key_offset < HEADER_SECTORS)
            return dimg_error(EINVAL, "Keyslot %zu is overlapping with the LUKS header", i);
        if (end[i] > h->payload_offset)
            return dimg_error(EINVAL, "Keyslot %zu is overlapping with the encrypted payload", i);
        for (size_t j = i + 1; j < LUKS_KEY_SLOTS; j++) {
            if (k->key_offset < end[j] && h->slots[j].key_offset < end[i])
                return dimg_error(EINVAL, "Keyslots %zu and %zu are overlapping in the header",
                                  i, j);
        }
    }
    return 0;
}

/*
 * cipher-mode is "<mode>-<ivgen>[:<ivgen hash>]", e.g. "xts-plain64" or
 * "cbc-essiv:sha256"; the XTS key holds two cipher keys.
 */
static int
check_algorithms(struct luks_header *h, const char *cipher_name, char *mode, const char *hash)
{
    char *ivgen = strchr(mode, '-');
    if (!ivgen)
        return dimg_error(EINVAL, "Unexpected cipher mode string format '%s'", mode);
    *ivgen++ = '\0';
    h->cipher_mode = name_lookup(modes, sizeof modes / sizeof modes[0], mode);
    if (!h->cipher_mode)
        return dimg_error(ENOTSUP, "Cipher mode '%s' not supported", mode);
    char *ivhash_name = strchr(ivgen, ':');
    const struct hash_alg *ivhash = NULL;
    if (ivhash_name) {
        *ivhash_name++ = '\0';
        if (!(ivhash = hash_lookup(ivhash_name)))
            return -ENOTSUP;
    }
    uint32_t key_size = h->key_bytes / (strcmp(h->cipher_mode, "xts") ? 1 : 2);
    const struct cipher_family *fam = cipher_family(cipher_name);
    h->cipher_alg = fam ? cipher_by_size(fam, key_size) : NULL;
    if (!h->cipher_alg)
        return dimg_error(ENOTSUP, "Algorithm '%s' with key size %d bytes not supported",
                          cipher_name, (int)key_size);
    const struct hash_alg *ha = hash_lookup(hash);
    if (!ha)
        return -ENOTSUP;
    h->hash_alg = ha->name;
    h->ivgen_alg = name_lookup(ivgens, sizeof ivgens / sizeof ivgens[0], ivgen);
    if (!h->ivgen_alg)
        return dimg_error(ENOTSUP, "IV generator '%s' not supported", ivgen);
    if (strcmp(h->ivgen_alg, "essiv") != 0)
        return 0;
    /* ESSIV encrypts sector numbers with a same-family cipher keyed by the hash digest. */
    if (!ivhash)
        return dimg_error(EINVAL, "Missing IV generator hash specification");
    if (!fam->essiv_name)
        return dimg_error(ENOTSUP, "Cipher %s not supported with essiv", h->cipher_alg);
    if (!cipher_by_size(fam, ivhash->digest_len))
        return dimg_error(ENOTSUP, "No %s cipher with key size %d available", fam->essiv_name,
                          (int)ivhash->digest_len);
    h->ivgen_hash_alg = ivhash->name;
    return 0;
}

int
luks_header_parse(const uint8_t *buf, size_t len, struct luks_header *out)
{
    memset(out, 0, sizeof *out);
    if (len < LUKS_PHDR_SIZE || memcmp(buf, luks_magic, sizeof luks_magic) != 0)
        return dimg_error(EINVAL, "Volume is not in LUKS format");
    uint16_t version = load_be16(buf + PHDR_VERSION);
    if (version != 1)
        return dimg_error(ENOTSUP, "LUKS version %u is not supported", (unsigned)version);
    char cipher_name[PHDR_NAME_LEN], mode[PHDR_NAME_LEN], hash[PHDR_NAME_LEN];
    int r;
    if ((r = name_field(buf, PHDR_CIPHER_NAME, cipher_name, "cipher name")) < 0 ||
        (r = name_field(buf, PHDR_CIPHER_MODE, mode, "cipher mode")) < 0 ||
        (r = name_field(buf, PHDR_HASH_SPEC, hash, "hash spec")) < 0)
        return r;
    out->payload_offset = load_be32(buf + PHDR_PAYLOAD);
    out->key_bytes = load_be32(buf + PHDR_KEY_BYTES);
    out->mk_iterations = load_be32(buf + PHDR_MK_ITER);
    memcpy(out->uuid, buf + PHDR_UUID, PHDR_UUID_LEN);
    out->uuid[PHDR_UUID_LEN] = '\0';
    if (out->payload_offset < HEADER_SECTORS)
        return dimg_error(EINVAL, "LUKS payload is overlapping with the header");
    if (out->mk_iterations == 0)
        return dimg_error(EINVAL, "LUKS key iteration count is zero");
    if ((r = load_slots(buf, out)) < 0 || (r = check_algorithms(out, cipher_name, mode, hash)) < 0)
        return r;
    return 0;
}

static struct dimg_value *
member(struct dimg_value *parent, enum dimg_value_type type, const char *key)
{
    struct dimg_value *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->type = type;
    v->key = key ? strdup(key) : NULL;
    if (parent) {
        struct dimg_value **pp = &parent->child;
        while (*pp)
            pp = &(*pp)->next;
        *pp = v;
    }
    return v;
}

static void
member_string(struct dimg_value *o, const char *key, const char *val)
{
    struct dimg_value *v = member(o, DIMG_VALUE_STRING, key);
    if (v)
        v->v.s = strdup(val);
}

static void
member_uint(struct dimg_value *o, const char *key, uint64_t val)
{
    struct dimg_value *v = member(o, DIMG_VALUE_UINT, key);
    if (v)
        v->v.u = val;
}

struct dimg_value *
luks_header_describe(const struct luks_header *h, const char *key)
{
    struct dimg_value *e = member(NULL, DIMG_VALUE_OBJECT, key);
    if (!e)
        return NULL;
    /* Member order as qemu-img 7.2 prints it. */
    member_string(e, "ivgen-alg", h->ivgen_alg);
    member_string(e, "hash-alg", h->hash_alg);
    member_string(e, "cipher-alg", h->cipher_alg);
    member_string(e, "uuid", h->uuid);
    if (h->ivgen_hash_alg)
        member_string(e, "ivgen-hash-alg", h->ivgen_hash_alg);
    member_string(e, "format", "luks");
    member_string(e, "cipher-mode", h->cipher_mode);
    struct dimg_value *slots = member(e, DIMG_VALUE_ARRAY, "slots");
    for (size_t i = 0; slots && i < LUKS_KEY_SLOTS; i++) {
        const struct luks_keyslot *k = &h->slots[i];
        struct dimg_value *o = member(slots, DIMG_VALUE_OBJECT, NULL);
        if (!o)
            break;
        struct dimg_value *active = member(o, DIMG_VALUE_BOOL, "active");
        if (active)
            active->v.b = k->active;
        if (k->active)
            member_uint(o, "iters", k->iterations);
        member_uint(o, "key-offset", (uint64_t)k->key_offset * LUKS_SECTOR_SIZE);
        if (k->active)
            member_uint(o, "stripes", k->stripes);
    }
    member_uint(e, "payload-offset", (uint64_t)h->payload_offset * LUKS_SECTOR_SIZE);
    member_uint(e, "master-key-iters", h->mk_iterations);
    return e;
}
