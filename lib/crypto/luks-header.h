/*
 * LUKS1 partition header (phdr + 8 key slots): parsing and validation of an
 * untrusted 592-byte buffer, and its description as qemu-img prints it.
 * Format: shared/specs/libyal-luks.asciidoc and shared/specs/luks-notes.md.
 * Nothing here needs a passphrase: no key material is read or decrypted.
 */
#ifndef DIMG_CRYPTO_LUKS_HEADER_H
#define DIMG_CRYPTO_LUKS_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dimg/dimg.h"

#define LUKS_PHDR_SIZE   592u
#define LUKS_KEY_SLOTS   8
#define LUKS_STRIPES     4000u
#define LUKS_SECTOR_SIZE 512u

struct luks_keyslot {
    bool active;
    uint32_t iterations;
    uint32_t stripes;
    uint32_t key_offset;      /* in 512-byte sectors */
};

struct luks_header {
    /* qemu's names for the algorithms; point into static tables */
    const char *cipher_alg;   /* "aes-256", "twofish-128", ... */
    const char *cipher_mode;  /* "ecb", "cbc", "xts", "ctr" */
    const char *ivgen_alg;    /* "plain", "plain64", "essiv" */
    const char *ivgen_hash_alg; /* with essiv only, else NULL */
    const char *hash_alg;     /* PBKDF2 / AF diffuser hash */
    char uuid[41];            /* as stored (up to 40 bytes), NUL-terminated */
    uint32_t payload_offset;  /* in 512-byte sectors */
    uint32_t key_bytes;
    uint32_t mk_iterations;
    struct luks_keyslot slots[LUKS_KEY_SLOTS];
};

/*
 * Parse and validate a LUKS1 header from buf (len bytes, at least
 * LUKS_PHDR_SIZE).  Errors (dimg_error) carry qemu-img's messages, checked
 * in qemu-img's order, so that a bad header is reported as qemu-img does.
 */
int luks_header_parse(const uint8_t *buf, size_t len, struct luks_header *out);

/*
 * The header as qemu-img's "encrypt" object ({"ivgen-alg": ..., "slots": [...]}),
 * member order as qemu-img 7.2 prints it; key is the member name to give it.
 * NULL when out of memory.
 */
struct dimg_value *luks_header_describe(const struct luks_header *h, const char *key);

#endif
