#!/bin/bash
# vdi images made by qemu-img/qemu-io read by dimg: the guest bytes (convert
# -O raw), info, map and compare must be what qemu-img gives (damaged headers:
# vdi-badinput.sh).
. "$TEST_LIB"
requires qemu-img qemu-io

n=0
for opts in "" "static=on"; do
    for size in 16M 1000000; do
        n=$((n + 1))
        rm -f t.vdi
        "$QEMU_IMG" create -q -f vdi ${opts:+-o "$opts"} t.vdi $size
        if [ "$size" = 16M ]; then
            "$QEMU_IO" -f vdi -c "write -P 0x11 3M 4k" -c "write -P 0x22 512 1k" \
                -c "write -z 10M 64k" -c "write -P 0x33 15M 1M" -c "write -P 0x44 1500k 1M" \
                t.vdi >/dev/null || fail "qemu-io on t.vdi"
        else
            "$QEMU_IO" -f vdi -c "write -P 0x55 900k 76800" t.vdi >/dev/null || fail "qemu-io"
        fi
        "$QEMU_IMG" convert -O raw t.vdi q.raw
        "$DIMG" convert -O raw t.vdi d.raw || fail "[$opts $size] dimg convert failed"
        cmp -s q.raw d.raw || fail "[$opts $size] guest bytes differ"
        both "info$n" info --output=json t.vdi; same "info$n"
        both "infoh$n" info t.vdi; same "infoh$n"
        both "map$n" map --output=json t.vdi; same "map$n"
        both "maph$n" map t.vdi; same "maph$n"
        both "cmp$n" compare t.vdi q.raw; same "cmp$n"
    done
done

# A qemu-img convert -O vdi of a sparse raw file.
make_sample_raw s.raw 20M
"$QEMU_IMG" convert -f raw -O vdi s.raw c.vdi
"$DIMG" convert -O raw c.vdi d.raw || fail "conv: dimg convert failed"
cmp -s s.raw d.raw || fail "conv: guest bytes differ"
both convmap map --output=json c.vdi; same convmap
both convq convert -O qcow2 c.vdi c.qcow2; same convq
"$QEMU_IMG" convert -O raw c.qcow2 q.raw
cmp -s q.raw s.raw || fail "vdi->qcow2 content"

finish
