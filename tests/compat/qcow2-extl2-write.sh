#!/bin/bash
# Partial writes into images with extended L2 entries allocate subclusters as
# qemu does: the same writes (qemu-img bench -w, one request each) through
# qemu-img and dimg give the same map (subcluster allocation, zero and
# unallocated runs, host offsets), the same host file layout (what is
# written, what is left sparse because it reads as zeros anyway), the same
# guest bytes, the same file size, and a clean check.  With and without a
# backing file, over zero, compressed, partly allocated and snapshot-shared
# clusters; plain L2 entries take the same copy-on-write path.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f qcow2 base.qcow2 4M
"$QEMU_IO" -c "write -P 0x11 0 4M" base.qcow2 >/dev/null

n=0
# scenario "create options" backing(y/n) "qemu-io setup;..." "snapshot(y/n)" off:len:pattern...
scenario() {
    local copts=$1 back=$2 setup=$3 snap=$4 t w off len pat
    shift 4
    n=$((n + 1))
    for t in q d; do
        local o=$copts
        [[ $o == *extended_l2=* ]] || o=extended_l2=on${o:+,$o}
        o=${o//DATA/$t.$n.data}
        rm -f "$t.$n.qcow2" "$t.$n.data"
        if [ "$back" = y ]; then
            "$QEMU_IMG" create -q -f qcow2 -o "$o" -b base.qcow2 -F qcow2 "$t.$n.qcow2" "${SIZE:-4M}"
        else
            "$QEMU_IMG" create -q -f qcow2 -o "$o" "$t.$n.qcow2" "${SIZE:-4M}"
        fi
        if [ -n "$setup" ]; then
            local args=() c
            IFS=';' read -ra cmds <<<"$setup"
            for c in "${cmds[@]}"; do args+=(-c "$c"); done
            "$QEMU_IO" "${args[@]}" "$t.$n.qcow2" >/dev/null
        fi
        [ "$snap" = y ] && "$QEMU_IMG" snapshot -c s1 "$t.$n.qcow2"
    done
    for w in "$@"; do
        IFS=: read -r off len pat <<<"$w"
        "$QEMU_IMG" bench -w -f qcow2 -c 1 -d 1 -s "$len" -o "$off" --pattern="$pat" \
            "q.$n.qcow2" >/dev/null || fail "[$n] qemu-img bench $w"
        "$DIMG" bench -w -f qcow2 -c 1 -d 1 -s "$len" -o "$off" --pattern="$pat" \
            "d.$n.qcow2" >/dev/null || fail "[$n] dimg bench $w"
    done
    # Maps first: reading guest data would bring zeroed host ranges into the
    # page cache, where they look like data.
    local what
    for what in map raw; do
        local fmt=(-f qcow2)
        [ $what = raw ] && fmt=(-f raw)
        "$QEMU_IMG" map --output=json "${fmt[@]}" "q.$n.qcow2" >"q.$n.$what"
        "$QEMU_IMG" map --output=json "${fmt[@]}" "d.$n.qcow2" >"d.$n.$what"
        if ! cmp -s "q.$n.$what" "d.$n.$what"; then
            fail "[$n] $copts back=$back setup='$setup' writes '$*': $what map differs"
            diff "q.$n.$what" "d.$n.$what" | head -10 >&2
        fi
    done
    "$QEMU_IMG" compare -q "q.$n.qcow2" "d.$n.qcow2" || fail "[$n] guest data differs"
    "$QEMU_IMG" check -q "d.$n.qcow2" || fail "[$n] qemu-img check reports problems"
    [ "$(stat -c %s "q.$n.qcow2")" = "$(stat -c %s "d.$n.qcow2")" ] ||
        fail "[$n] file size $(stat -c %s "d.$n.qcow2"), qemu-img's $(stat -c %s "q.$n.qcow2")"
}

# Subclusters are 2 KiB with 64 KiB clusters.
for back in n y; do
    scenario "" $back "" n 0:4096:0xaa
    scenario "" $back "" n 3000:100:0xaa
    scenario "" $back "" n 1000:3000:0xaa
    scenario "" $back "" n 63488:4096:0xaa                       # across two clusters
    scenario "" $back "" n 1000:300000:0xaa                      # partial ends, whole middle
    scenario "" $back "write -z 0 64k" n 3000:100:0xaa           # zero bits kept
    scenario "" $back "write -c -P 0x33 0 64k" n 3000:100:0xaa   # compressed: whole cluster
    scenario "" $back "write -P 0x22 0 2k" n 3000:100:0xaa       # already allocated cluster
    scenario "" $back "write -P 0x22 0 2k;write -P 0x23 8k 2k" y 3000:100:0xaa
    scenario "" $back "write -P 0x22 0 2k;write -z 8k 2k" y 3000:100:0xaa
    scenario "" $back "write -P 0x22 40k 2k" y 3000:100:0xaa     # old data after the write
    scenario "" $back "" n 1000:3000:0xaa 70000:200000:0xbb 300000:5:0xcc 0:65536:0xdd 131072:1:0xee
    scenario "cluster_size=16k" $back "" n 100:100:0xaa 16383:2:0xbb 40000:70000:0xcc
    scenario "cluster_size=2M" $back "" n 100:100:0xaa 3000000:70000:0xcc
    scenario "preallocation=metadata" $back "" n 3000:100:0xaa
done
scenario "data_file=DATA" n "" n 1000:3000:0xaa 70000:5000:0xbb
# 64 KiB subclusters: what is left sparse shows in the host file.
scenario "cluster_size=2M" n "" n 3000:100:0xaa 3000000:1000:0xbb
scenario "cluster_size=2M" n "write -P 0x22 0 64k" n 68536:100:0xaa
scenario "cluster_size=2M" n "write -z 0 4M" n 68536:100:0xaa
# Plain L2 entries: whole clusters are copied on write the same way.
for back in n y; do
    scenario "extended_l2=off" $back "" n 3000:100:0xaa 70000:200000:0xbb
    scenario "extended_l2=off,cluster_size=2M" $back "" n 3000:100:0xaa
    scenario "extended_l2=off,cluster_size=2M" $back "write -z 0 2M" n 3000:100:0xaa
done
SIZE=4192768 scenario "extended_l2=off,cluster_size=2M" n "" n 4192568:100:0xaa
# A raw backing file's holes are not known to be zeros: they are copied.
truncate -s 4M hole.raw
for t in q d; do
    rm -f "$t.raw.qcow2"
    "$QEMU_IMG" create -q -f qcow2 -o cluster_size=2M -b hole.raw -F raw "$t.raw.qcow2"
done
"$QEMU_IMG" bench -w -f qcow2 -c 1 -d 1 -s 100 -o 3000 q.raw.qcow2 >/dev/null
"$DIMG" bench -w -f qcow2 -c 1 -d 1 -s 100 -o 3000 d.raw.qcow2 >/dev/null
"$QEMU_IMG" map --output=json -f raw q.raw.qcow2 >q.raw.raw
"$QEMU_IMG" map --output=json -f raw d.raw.qcow2 >d.raw.raw
cmp -s q.raw.raw d.raw.raw || fail "raw backing: host layout differs"
# The image's last subcluster lies partly beyond its end.
SIZE=4192768 scenario "" n "" n 4192568:100:0xaa
SIZE=4192768 scenario "" n "" n 4128768:64000:0xaa
SIZE=4192768 scenario "" n "" n 4128768:63488:0xaa
SIZE=4192768 scenario "cluster_size=2M" y "" n 4192568:100:0xaa
finish
