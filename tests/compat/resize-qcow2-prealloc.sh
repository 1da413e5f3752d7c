#!/bin/bash
# resize --preallocation=metadata|falloc|full growing a qcow2 image, against
# qemu-img resizing a copy of the same image: same messages and exit codes,
# same guest bytes, a clean check, and the same map once host offsets are
# left out (present/zero/data of every byte).  Where qemu-img's layout is
# plain (metadata preallocation into existing L2 tables, external data
# files) the files must be byte-identical; falloc/full differ in cluster
# placement only (doc/differences.md).
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f qcow2 base.qcow2 4M
"$QEMU_IO" -c "write -P 7 0 4M" base.qcow2 >/dev/null

# map JSON (one run per line) without offsets, adjacent runs of one kind
# merged; whether an allocated run sits over a hole in the file (zero and
# data) depends on cluster placement, so data runs count as data only
flags_map() {
    "$QEMU_IMG" map --output=json "$1" | sed -E 's/.*"start": ([0-9]+), "length": ([0-9]+), "depth": ([0-9]+), "present": ([a-z]+), "zero": ([a-z]+), "data": ([a-z]+).*/\1 \2 \3 \4 \5 \6/' |
        awk '{ if ($6 == "true") $5 = "-"; k = $3 " " $4 " " $5 " " $6
               if (k == pk && ps + pl == $1) { pl += $2; next }
               if (NR > 1) print ps, pl, pk; ps = $1; pl = $2; pk = k }
             END { print ps, pl, pk }'
}

vsize() {
    "$QEMU_IMG" info -U "$1" | sed -n 's/^virtual size: .*(\([0-9]*\) bytes)$/\1/p'
}

n=0
# case MODE "create args" "qemu-io setup" SIZE GROW identical(y/n)
case_() {
    local mode=$1 copts=$2 setup=$3 size=$4 grow=$5 ident=$6 t o
    n=$((n + 1))
    for t in q d; do
        rm -f "$t.qcow2" "$t.data"
        o=${copts//DATA/$t.data}
        # shellcheck disable=SC2086
        "$QEMU_IMG" create -q -f qcow2 $o "$t.qcow2" "$size"
        if [ -n "$setup" ]; then
            local args=() c cmds
            IFS=';' read -ra cmds <<<"$setup"
            for c in "${cmds[@]}"; do args+=(-c "$c"); done
            "$QEMU_IO" "${args[@]}" "$t.qcow2" >/dev/null
        fi
    done
    cp q.qcow2 q.orig
    run_as "q.r$n" "$QEMU_IMG" resize --preallocation="$mode" q.qcow2 -- "$grow"
    run_as "d.r$n" "$DIMG" resize --preallocation="$mode" d.qcow2 -- "$grow"
    sed -i 's/^dimg: /qemu-img: /' "d.r$n.err"
    same "r$n"
    local what="[$mode $copts | $setup | $size $grow]"
    "$QEMU_IMG" compare -q q.qcow2 d.qcow2 || fail "$what: guest bytes differ"
    "$QEMU_IMG" check -q d.qcow2 || fail "$what: check"
    [ "$(flags_map q.qcow2)" = "$(flags_map d.qcow2)" ] || fail "$what: map differs"
    [ -f q.data ] && ! cmp -s q.data d.data && fail "$what: data file differs"
    [ "$ident" = y ] && ! cmp -s q.qcow2 d.qcow2 && fail "$what: image differs from qemu-img's"
    # preallocated space is really there: the file holds at least the growth
    local grown
    grown=$(( $(vsize d.qcow2) - $(vsize q.orig) ))
    if [ "$mode" = falloc ] || [ "$mode" = full ]; then
        [ -f d.data ] && f=d.data || f=d.qcow2
        [ $(( $(stat -c %b $f) * 512 )) -ge $grown ] || fail "$what: $f lacks the preallocated space"
    fi
}

for m in metadata falloc full; do
    [ $m = metadata ] && y=y || y=n
    case_ $m "" "write -P 1 0 64k" 1M +3M $y
    case_ $m "-o cluster_size=4k" "write -P 1 0 64k;write -P 2 900k 100k" 1000k 10M n
    case_ $m "" "write -P 2 900k 100k" 1000k 1088k $y
    case_ $m "-b base.qcow2 -F qcow2" "write -P 1 0 64k" 1M +2M $y
    case_ $m "-b base.qcow2 -F qcow2" "write -P 1 0 64k" 1000k +2M n
    case_ $m "-o extended_l2=on" "write -P 1 4k 4k" 1M 2M $y
    case_ $m "-o extended_l2=on -b base.qcow2 -F qcow2" "write -P 1 4k 4k" 1M 2M $y
    case_ $m "-o data_file=DATA" "write -P 1 4k 4k" 1M 2M n
    case_ $m "-o data_file=DATA,data_file_raw=on" "write -P 1 4k 4k" 1M 2M n
    case_ $m "-o compat=0.10" "write -P 1 4k 4k" 1M 2M $y
    case_ $m "-o cluster_size=512" "write -P 1 4k 4k" 1M 3M n
    case_ $m "-o cluster_size=2M" "" 1M 5M $y
    case_ $m "-o refcount_bits=1,cluster_size=512" "write -P 3 1k 2k" 1M 3M n
done
case_ metadata "" "" 1000k 700M n

# refused: shrinking with preallocation, unknown modes, off is plain growth
case_ full "" "" 4M 2M n
case_ metadata "" "" 4M -- n
case_ bogus "" "" 4M +1M n
case_ off "" "write -P 1 0 64k" 4M +1M y
finish
