#!/bin/bash
# info on LUKS-encrypted qcow2 images: the "encrypt" block (human and JSON)
# for several cipher/mode/ivgen/hash choices, with and without a secret, and
# the open errors for damaged LUKS headers and crypto extensions, as qemu-img.
. "$TEST_LIB"
requires qemu-img

SECRET="--object secret,id=sec0,data=abc123"
mk() { # name size encrypt-options...
    local f=$1 size=$2 o=encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 i
    [ -n "${3:-}" ] && o=$o,$3
    # qemu-img times PBKDF2 with the thread's CPU clock; on a busy machine that
    # can read 0 ("Unable to get accurate CPU usage"), so try a few times.
    for i in 1 2 3 4 5; do
        # shellcheck disable=SC2086
        "$QEMU_IMG" create -q -f qcow2 $SECRET -o "$o" "$f" "$size" 2>create.err && return 0
        grep -q "accurate CPU usage" create.err || break
    done
    cat create.err >&2
    fail "create $f"
}
mk xts.qcow2 64M
mk essiv.qcow2 16M encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha1
mk twofish.qcow2 1M encrypt.cipher-alg=twofish-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain,encrypt.hash-alg=sha512
"$QEMU_IMG" create -q -f qcow2 $SECRET -o encrypt.format=aes,encrypt.key-secret=sec0 aes.qcow2 1M

n=0
check_info() { # args for info (both outputs)
    local o
    for o in human json; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        both "info$n" info --output=$o "$@"
        same "info$n"
    done
}
for f in xts essiv twofish aes; do
    check_info "$f.qcow2"
done
# info never needs the key: a secret (right, wrong or missing object) changes nothing.
check_info $SECRET "xts.qcow2"
check_info -f qcow2 -U "essiv.qcow2"
# dimg must have printed the block at all (guards against both tools failing alike).
grep -q '"master-key-iters"' d.info2.out || fail "no encrypt block in dimg's JSON"

# Damaged copies of xts.qcow2.  The LUKS header sits where the crypto extension says.
[ "$(od -An -tx1 -j112 -N4 xts.qcow2 | tr -d ' ')" = 0537be77 ] || fail "crypto extension not at 0x70"
H=$(( $(od -An -tu8 -j120 -N8 --endian=big xts.qcow2) ))
bytes() { # hex digits -> file bytes
    local h=$1 i
    for ((i = 0; i < ${#h}; i += 2)); do printf "\\x${h:i:2}"; done
}
put() { # file offset hexbytes
    bytes "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
hex() { od -An -v -tx1 | tr -d ' \n'; }
str() { # printable string -> hex, NUL-terminated
    printf '%s' "$1" | hex
    printf '00'
}
damage() { # name offset hex [offset hex]...
    local f=$1.qcow2
    shift
    cp xts.qcow2 "$f"
    while [ $# -gt 0 ]; do
        put "$f" "$1" "$2"
        shift 2
    done
    check_info "$f"
}
slot() { echo $((H + 208 + $1 * 48 + $2)); }
damage magic $H 4c554b58
damage version $((H + 6)) 0002
damage cipher-name $((H + 8)) "$(str foo)"
damage cipher-twofish $((H + 8)) "$(str twofish)"
damage cipher-unterminated $((H + 8)) "$(printf 'a%.0s' {1..32} | hex)"
damage mode-nodash $((H + 40)) "$(str xts)"
damage mode-unknown $((H + 40)) "$(str foo-plain64)"
damage mode-ivgen $((H + 40)) "$(str xts-benbi)"
damage mode-essiv-nohash $((H + 40)) "$(str cbc-essiv)" $((H + 108)) 00000020
damage mode-essiv-sha1 $((H + 40)) "$(str cbc-essiv:sha1)" $((H + 108)) 00000020
damage mode-essiv-md5 $((H + 40)) "$(str cbc-essiv:md5)" $((H + 108)) 00000020
damage mode-ctr $((H + 40)) "$(str ctr-plain)"
damage hash $((H + 72)) "$(str md4)"
damage hash-sha384 $((H + 72)) "$(str sha384)"
damage payload $((H + 104)) 00000007
damage payload-huge $((H + 104)) ffffffff
damage keybytes $((H + 108)) 10000000
damage keybytes-48 $((H + 108)) 00000030
damage mk-iters $((H + 164)) 00000000
damage uuid-full $((H + 168)) "$(printf 'u%.0s' {1..40} | hex)"
damage slot-state "$(slot 1 0)" 12345678
damage slot-stripes "$(slot 0 44)" 00000f9f
damage slot-iters "$(slot 0 4)" 00000000
damage slot-header "$(slot 0 40)" 00000007
damage slot-payload "$(slot 7 40)" 00000dd1
damage slot-overlap "$(slot 1 40)" 000001fb
damage slot-wrap "$(slot 0 40)" ffffff00
damage slot-order "$(slot 1 40)" 00000008 "$(slot 0 44)" 00000000
# The crypto extension itself (offset at 0x78, length at 0x80).
damage ext-short 128 0000000000000064
damage ext-unaligned 120 0000000000040001
damage ext-beyond-eof 120 0000000004000000
damage ext-offset-huge 120 7fffffffc0000000
damage ext-method-aes 32 00000001
# Reading data needs a key dimg does not take: the error qemu-img gives without one.
for args in "map xts.qcow2" "convert -O raw xts.qcow2 out.raw" "check xts.qcow2" \
    "compare xts.qcow2 xts.qcow2" "map --output=json essiv.qcow2"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    both "r$n" $args
    same "r$n"
done
finish
