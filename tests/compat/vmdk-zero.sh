#!/bin/bash
# Zero runs written into VMDK images: with zeroed_grain=on a grain zeroed
# whole gets the zeroed-grain table entry (no data written), partial grains
# get zero data; without the flag zeros are data.  The same convert run by
# qemu-img and dimg on identical targets must leave identical allocation
# (map --output=json), identical file sizes, a clean check and the source's
# bytes.
. "$TEST_LIB"
requires qemu-img qemu-io

# data, a zero run ending mid-grain, a small data run inside one grain
truncate -s 8M src.raw
head -c 1M /dev/urandom | dd of=src.raw conv=notrunc status=none
head -c 10000 /dev/urandom | dd of=src.raw bs=1 seek=3000000 conv=notrunc status=none
head -c 5000 /dev/urandom | dd of=src.raw bs=1 seek=5000000 conv=notrunc status=none

# Run "$@" (a convert) with qemu-img into q/ and with dimg into d/, after
# prepare_target DIR has built the same target in each.
compare_runs() { # label convert-args...
    local label=$1; shift
    "$QEMU_IMG" "$@" q/t.vmdk || { fail "$label: qemu-img convert"; return; }
    "$DIMG" "$@" d/t.vmdk || { fail "$label: dimg convert"; return; }
    "$QEMU_IMG" map --output=json q/t.vmdk >q.map
    "$QEMU_IMG" map --output=json d/t.vmdk >d.map
    cmp -s q.map d.map || { fail "$label: allocation differs from qemu-img's"; diff q.map d.map | head -10 >&2; }
    local f
    for f in q/*; do
        [ "$(stat -c %s "$f")" = "$(stat -c %s "d/${f#q/}")" ] || fail "$label: size of ${f#q/} differs"
    done
    "$QEMU_IMG" check -q d/t.vmdk || fail "$label: qemu-img check"
    "$QEMU_IMG" compare -q src.raw d/t.vmdk || fail "$label: guest data differs"
}

fresh() { rm -rf q d && mkdir q d; }

for sub in monolithicSparse twoGbMaxExtentSparse; do
    for zg in on off; do
        fresh
        for x in q d; do
            "$QEMU_IMG" create -q -f vmdk -o subformat=$sub,zeroed_grain=$zg $x/t.vmdk 8M
            "$QEMU_IO" -f vmdk -c "write -P 0xaa 0 8M" $x/t.vmdk >/dev/null
        done
        compare_runs "$sub zeroed_grain=$zg convert -n" convert -n -O vmdk src.raw
    done
done

# zeroed grains over a partly allocated image
fresh
for x in q d; do
    "$QEMU_IMG" create -q -f vmdk -o zeroed_grain=on $x/t.vmdk 8M
    "$QEMU_IO" -f vmdk -c "write -P 0xaa 512k 3M" -c "write -z 6M 64k" $x/t.vmdk >/dev/null
done
compare_runs "partly allocated convert -n" convert -n -O vmdk src.raw

# new images: sparse (zeros skipped) and -S 0 (zeros written as data)
fresh
compare_runs "new zeroed_grain" convert -O vmdk -o zeroed_grain=on src.raw
fresh
compare_runs "new zeroed_grain -S 0" convert -S 0 -O vmdk -o zeroed_grain=on src.raw

# an overlay: zeroed grains must hide the backing file's data
fresh
for x in q d; do
    "$QEMU_IMG" create -q -f vmdk $x/b.vmdk 8M
    "$QEMU_IO" -f vmdk -c "write -P 0xbb 0 8M" $x/b.vmdk >/dev/null
    "$QEMU_IMG" create -q -f vmdk -o zeroed_grain=on -b b.vmdk -F vmdk $x/t.vmdk
    "$QEMU_IO" -f vmdk -c "write -P 0xaa 1M 64k" $x/t.vmdk >/dev/null
done
compare_runs "overlay convert -n" convert -n -O vmdk src.raw

# The zeroed-grain case really used zeroed-grain entries.
fresh
for x in q d; do
    "$QEMU_IMG" create -q -f vmdk -o zeroed_grain=on $x/t.vmdk 8M
    "$QEMU_IO" -f vmdk -c "write -P 0xaa 0 8M" $x/t.vmdk >/dev/null
done
compare_runs "zeroed grains used" convert -n -O vmdk src.raw
grep -q '"present": true, "zero": true, "data": false' d.map || fail "no zeroed-grain entries written"
finish
