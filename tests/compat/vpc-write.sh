#!/bin/bash
# Images dimg writes (convert -O vpc, convert -n into qemu-made images),
# checked with qemu-img: same guest bytes as the source, and the same file
# bytes as qemu-img's own output apart from timestamp, UUID and checksum.
. "$TEST_LIB"
requires qemu-img qemu-io python3

masked() {
    python3 - "$1" <<'PY'
import hashlib, sys
d = bytearray(open(sys.argv[1], 'rb').read())
for base in {0, max(len(d) - 512, 0)}:
    if d[base:base + 8] == b'conectix':
        d[base + 24:base + 28] = bytes(4)   # timestamp
        d[base + 64:base + 84] = bytes(20)  # checksum + UUID
print(len(d), hashlib.sha256(d).hexdigest())
PY
}

make_sample_raw s.raw 12M
for o in subformat=dynamic subformat=fixed force_size=on; do
    rm -f q.vhd d.vhd
    "$QEMU_IMG" convert -f raw -O vpc -o "$o" s.raw q.vhd
    "$DIMG" convert -f raw -O vpc -o "$o" s.raw d.vhd || fail "[$o] dimg convert failed"
    "$QEMU_IMG" compare -q -f vpc -F vpc q.vhd d.vhd || fail "[$o] guest bytes differ"
    [ "$(masked q.vhd)" = "$(masked d.vhd)" ] || fail "[$o] image bytes differ from qemu-img's"
    both "info-$o" info -f vpc --output=json d.vhd; same "info-$o"
done

# dimg writing into images qemu-img made (allocating blocks, partial blocks,
# crossing block boundaries), and qemu-io writing into images dimg made.
head -c 300000 /dev/urandom >p.bin
truncate -s 9M p.bin
dd if=/dev/urandom of=p.bin bs=1k seek=2000 count=200 conv=notrunc status=none
dd if=/dev/urandom of=p.bin bs=1k seek=8190 count=10 conv=notrunc status=none
for sub in dynamic fixed; do
    rm -f q.vhd d.vhd
    "$QEMU_IMG" create -q -f vpc -o subformat=$sub q.vhd 9M
    "$QEMU_IO" -f vpc -c "write -P 0x5a 4M 64k" q.vhd >/dev/null
    cp q.vhd d.vhd
    "$QEMU_IMG" convert -n -f raw -O vpc p.bin q.vhd
    "$DIMG" convert -n -f raw -O vpc p.bin d.vhd || fail "[$sub] dimg convert -n failed"
    "$QEMU_IMG" compare -q -f vpc -F vpc q.vhd d.vhd || fail "[$sub] convert -n: guest bytes differ"
    [ "$(masked q.vhd)" = "$(masked d.vhd)" ] || fail "[$sub] convert -n: image bytes differ"

    rm -f q.vhd d.vhd
    "$QEMU_IMG" create -q -f vpc -o subformat=$sub q.vhd 9M
    "$DIMG" create -q -f vpc -o subformat=$sub d.vhd 9M || fail "[$sub] dimg create failed"
    for img in q.vhd d.vhd; do
        "$QEMU_IO" -f vpc -c "write -P 0x61 1M 5k" -c "write -P 0x62 2047k 3k" \
            -c "write -P 0x63 9000k 16k" "$img" >/dev/null || fail "[$sub] qemu-io on $img"
    done
    "$QEMU_IMG" compare -q -f vpc -F vpc q.vhd d.vhd || fail "[$sub] qemu-io: guest bytes differ"
    [ "$(masked q.vhd)" = "$(masked d.vhd)" ] || fail "[$sub] qemu-io: image bytes differ"
    "$DIMG" convert -f vpc -O raw d.vhd d.raw || fail "[$sub] dimg read-back failed"
    "$QEMU_IMG" convert -f vpc -O raw q.vhd q.raw
    cmp -s q.raw d.raw || fail "[$sub] read-back differs"
done
finish
