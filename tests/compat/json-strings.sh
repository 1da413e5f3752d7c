#!/bin/bash
# JSON strings as qemu-img writes them: file names with control characters,
# quotes, non-ASCII (upper-case \u escapes, surrogate pairs) and malformed
# UTF-8 (one U+FFFD per bad sequence), in info, map and check output.
. "$TEST_LIB"
requires qemu-img

n=0
for seq in 'plain' 'tab\there\\bs"q' '\x01\x1f\x7f' '\xc3\xa9\xf0\x9f\x98\x80' 'a\xffb\xc3.' \
    'x\xe2\x82.' 'o\xc0\xafz\xed\xa0\x80' '\xf8\x88\x80\x80\x80' '\x80\x80' '\xf4\x90\x80\x80' \
    '\xfe\x80' '\xef\xbf\xbf\xf4\x8f\xbf\xbf' '\xef\xb7\x90\xef\xb7\xb0' '\xc0\x80'; do
    f=$(printf "k${seq}.qcow2")
    "$QEMU_IMG" create -q -f qcow2 "$f" 1M || fail "create $seq"
    for cmd in info map check; do
        n=$((n + 1))
        both "s$n" $cmd --output=json "$f"
        same "s$n"
    done
done
finish
