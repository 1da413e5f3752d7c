#!/bin/bash
# Kill dimg with SIGKILL at many instants while it grows qcow2 images: with
# --preallocation=metadata/falloc/full (many L2 tables and refcount blocks
# with small clusters), over a longer backing file (the new area is zeroed
# cluster by cluster), and far enough that the L1 table moves.  qemu-img
# check must find at worst leaks (exit 0 or 3), and the guest must read the
# old data followed by zeros, whether the image ends at the old or new size.
. "$TEST_LIB"
requires qemu-img qemu-io

ROUNDS=${CRASH_ROUNDS:-6}
head -c 4M /dev/urandom >rnd.raw
"$QEMU_IMG" convert -O qcow2 -o cluster_size=512 rnd.raw small.qcow2
"$QEMU_IMG" convert -O qcow2 rnd.raw big.qcow2
head -c 24M /dev/urandom >back.raw
"$QEMU_IMG" create -q -f qcow2 -o cluster_size=512 -b back.raw -F raw over.qcow2 4M
"$QEMU_IO" -c "write -P 9 0 1M" over.qcow2 >/dev/null
"$QEMU_IMG" convert -O raw over.qcow2 over.raw

# The guest view must be REF's bytes, then zeros to the image's end.
old_then_zeros() { # image reference.raw label
    rm -f got.raw
    "$QEMU_IMG" convert -O raw "$1" got.raw 2>/dev/null || { fail "$3: unreadable"; return; }
    local n m
    n=$(stat -c %s "$2") m=$(stat -c %s got.raw)
    cmp -s -n "$n" got.raw "$2" || fail "$3: old data changed"
    [ "$m" -gt "$n" ] && ! cmp -s -n $((m - n)) -i "$n:0" got.raw /dev/zero &&
        fail "$3: the new area does not read as zeros"
}

# An uninterrupted run (not in a subshell: a failure must count); MS is
# how long it took, so the kills spread over it.
run_timed() { # args...
    local t0 t1
    t0=$(date +%s%N)
    "$DIMG" "$@" >/dev/null 2>&1 || fail "uninterrupted $*"
    t1=$(date +%s%N)
    MS=$(((t1 - t0) / 1000000 + 1))
}

scenario() { # label source reference.raw args... (IMG: the image)
    local label=$1 src=$2 ref=$3 a args=() landed=0
    shift 3
    for a in "$@"; do
        [ "$a" = IMG ] && a=t.qcow2
        args+=("$a")
    done
    cp "$src" t.qcow2
    run_timed "${args[@]}"
    local ms=$MS
    check_leaky t.qcow2 "$label (complete)"
    old_then_zeros t.qcow2 "$ref" "$label (complete)"
    [ "$(stat -c %s got.raw)" -gt "$(stat -c %s "$ref")" ] || fail "$label: the image did not grow"
    for i in $(seq 1 "$ROUNDS"); do
        cp "$src" t.qcow2
        RANDOM=$i
        local d=$((RANDOM % ms))
        "$DIMG" "${args[@]}" >/dev/null 2>&1 &
        local pid=$!
        sleep "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"
        kill -9 $pid 2>/dev/null && landed=$((landed + 1))
        wait $pid 2>/dev/null
        check_leaky t.qcow2 "$label round $i"
        old_then_zeros t.qcow2 "$ref" "$label round $i"
    done
    echo "$label: $ms ms uninterrupted, $landed of $ROUNDS kills landed mid-run"
}

scenario "metadata, 512 B clusters" small.qcow2 rnd.raw resize --preallocation=metadata IMG 40M
scenario "falloc, 512 B clusters" small.qcow2 rnd.raw resize --preallocation=falloc IMG 40M
scenario "full" big.qcow2 rnd.raw resize --preallocation=full IMG 64M
scenario "over a longer backing file" over.qcow2 over.raw resize IMG 24M
scenario "L1 moves" small.qcow2 rnd.raw resize IMG 64M
finish
