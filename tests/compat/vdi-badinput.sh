#!/bin/bash
# Hostile or damaged vdi headers and truncated files: dimg must refuse (or
# accept) exactly what qemu-img does, with its message, and read the same bytes.
. "$(dirname "$0")/vdi-common.inc"
. "$TEST_LIB"
requires qemu-img qemu-io

# Damaged headers, with -f vdi and probed (one field at a time, and the
# order qemu checks them in when several are wrong).
"$QEMU_IMG" create -q -f vdi base.vdi 64M
"$QEMU_IO" -f vdi -c "write -P 0x66 1M 4k" base.vdi >/dev/null
n=0
while read -r fields; do
    n=$((n + 1))
    cp base.vdi h.vdi
    # shellcheck disable=SC2086
    poke h.vdi $fields
    both "hdr$n" info -f vdi h.vdi; same "hdr$n"
done <<'LIST'
0x40 I 0x12345678
0x44 I 1
0x154 I 0x300
0x158 I 0x401
0x168 I 4096
0x170 Q 68157440
0x178 I 0x2000000
0x1a8 I 1
0x1b8 I 1
0x180 I 0x20000000
0x180 I 0x20000000 0x170 Q 0x2000000000000
0x170 Q 0xffffffffffffffff
0x170 Q 1000 0x48 I 0 0x4c I 7 0x17c I 4096 0x50 I 3
0x180 I 0
0x170 Q 0x2000000000000 0x40 I 5
0x44 I 1 0x154 I 0x300
0x154 I 0x300 0x158 I 0x401 0x168 I 4096 0x170 Q 0x7000000 0x178 I 0x2000
0x170 Q 0x7000000 0x178 I 0x2000 0x1a8 I 1 0x1b8 I 1
0x180 I 0x20000000 0x1a8 I 1
0x180 I 0x100000
0x204 I 100 0x208 I 15
LIST

# Probed, and when reading.
cp base.vdi h.vdi; poke h.vdi 0x44 I 1
both probed info h.vdi; same probed
cp base.vdi h.vdi; poke h.vdi 0x1b8 I 1
both conv convert -O raw h.vdi h.raw; same conv

# Truncated files: probing needs the signature; missing map entries read as 0.
for len in 67 68 400 600; do
    head -c $len base.vdi >short.vdi
    both "short$len" info short.vdi; same "short$len"
    both "shortc$len" convert -O raw short.vdi short.raw; same "shortc$len"
    if [ -e short.raw ]; then
        "$QEMU_IMG" convert -O raw short.vdi q.raw 2>/dev/null
        cmp -s short.raw q.raw || fail "short$len: guest bytes differ"
        rm -f short.raw
    fi
done
finish
