#!/bin/bash
# qemu-img check on vdi: clean images, and block maps damaged by hand
# (duplicate physical indexes, indexes past the map, a wrong allocation
# count, entries past the end of the file), human and JSON, and -r.
. "$(dirname "$0")/vdi-common.inc"
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f vdi w.vdi 16M
"$QEMU_IO" -f vdi -c "write -P 0x11 3M 4k" -c "write -P 0x22 512 1k" -c "write -z 10M 64k" \
    -c "write -P 0x33 15M 1M" w.vdi >/dev/null || fail "qemu-io"
"$QEMU_IMG" create -q -f vdi -o static=on s.vdi 3M
"$QEMU_IMG" create -q -f vdi e.vdi 0
for f in w.vdi s.vdi e.vdi; do
    both "clean-$f" check "$f"; same "clean-$f"
    both "cleanj-$f" check --output=json "$f"; same "cleanj-$f"
done
# The map (0x200) of w.vdi is 1, -1, -1, 0, -1 x6, 2, -1 x4, 3; the count (0x184) is 4.
n=0
while read -r fields; do
    n=$((n + 1))
    cp w.vdi c.vdi
    # shellcheck disable=SC2086
    poke c.vdi $fields
    both "bad$n" check c.vdi; same "bad$n"
    both "badj$n" check --output=json c.vdi; same "badj$n"
done <<'LIST'
0x204 I 1
0x204 I 100
0x184 I 7
0x204 I 0xfffffffe
0x204 I 0x7ffffff0
0x204 I 3 0x208 I 3 0x184 I 2
0x214 I 0
0x204 I 16 0x208 I 15
0x204 I 1 0x208 I 1 0x20c I 1 0x220 I 40
LIST
both repair check -r all c.vdi; same repair
both leaks check -r leaks c.vdi; same leaks
# A map the file does not hold (header claims more blocks): the missing
# entries read as zero bytes, i.e. all physical block 0.
head -c 600 w.vdi >short.vdi
both short check short.vdi; same short
finish
