#!/bin/bash
# vdi create: the "Formatting" line, option errors and size limits as qemu-img
# prints them, and images identical to qemu-img's except the two random UUIDs.
. "$TEST_LIB"
requires qemu-img python3

# Bytes 0x188..0x1a7 hold the creation and modification UUIDs (random).
same_image() {
    local tag=$1 a=$2 b=$3
    if [ -e "$a" ] || [ -e "$b" ]; then
        [ -e "$a" ] && [ -e "$b" ] || { fail "$tag: only one tool created a file"; return; }
        [ "$(stat -c %s "$a")" = "$(stat -c %s "$b")" ] || fail "$tag: file sizes differ"
        local diffs
        diffs=$(cmp -l "$a" "$b" 2>/dev/null | awk '$1 < 393 || $1 > 424' | wc -l)
        [ "$diffs" -eq 0 ] || fail "$tag: $diffs bytes differ outside the UUIDs"
    fi
}

n=0
one() {
    local opts=$1 size=$2
    n=$((n + 1))
    rm -f t.vdi
    run_as "q.c$n" "$QEMU_IMG" create -f vdi ${opts:+-o "$opts"} t.vdi "$size"
    [ -e t.vdi ] && mv t.vdi q.vdi || rm -f q.vdi
    run_as "d.c$n" "$DIMG" create -f vdi ${opts:+-o "$opts"} t.vdi "$size"
    [ -e t.vdi ] && mv t.vdi d.vdi || rm -f d.vdi
    sed -i 's/^dimg: /qemu-img: /' "d.c$n.err"
    same "c$n"
    same_image "[$opts] $size" q.vdi d.vdi
}
for size in 0 1000 1000000 5M 600T; do
    one "" "$size"
    one "static=on" "$size"
done
for opts in "static=off" "static=yes" "static=xx" "static=on,preallocation=full" \
    "preallocation=falloc" "preallocation=off" "preallocation=metadata" "preallocation=foo" \
    "cluster_size=4k" "nocow=on,extent_size_hint=1M,preallocation=off,static=on"; do
    one "$opts" 3M
done

# The largest dynamic size is checked on the rounded value.
both big create -f vdi -o static=on big.vdi 562949819203585; same big
both help1 create -f vdi -o help; same help1
both help2 create -f vdi t.vdi -o help; same help2
both nosize create -f vdi t.vdi; same nosize
both measure measure -O vdi --size 1M; same measure

# What dimg creates, qemu-img reads back cleanly.
"$DIMG" create -q -f vdi -o static=on s.vdi 5M
"$DIMG" create -q -f vdi d.vdi 5000000
for f in s.vdi d.vdi; do
    both "ck-$f" check "$f"; same "ck-$f"
    both "in-$f" info --output=json "$f"; same "in-$f"
done
finish
