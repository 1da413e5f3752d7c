#!/bin/bash
# Kill dimg with SIGKILL at many instants while it amends qcow2 images
# (refcount_bits changes up and down, compat=0.10 with thousands of zero
# clusters to expand) and while it shrinks one, and require qemu-img check
# to find at worst leaks (exit 0 or 3, never 2), with the guest data
# unchanged (for shrink: unchanged up to the new end).
. "$TEST_LIB"
requires qemu-img qemu-io python3

ROUNDS=${CRASH_ROUNDS:-8}
# Small clusters: many refcount blocks and L2 tables, so the work takes a while.
head -c 48M /dev/urandom >rnd.raw
"$QEMU_IMG" convert -O qcow2 -o cluster_size=512 rnd.raw data.qcow2
"$QEMU_IMG" create -q -f qcow2 -o cluster_size=512 -b rnd.raw -F raw zeros.qcow2 48M
"$QEMU_IO" -c "write -z 0 6M" -c "write -P 1 6M 1M" -c "write -z 12M 2M" zeros.qcow2 >/dev/null
"$QEMU_IMG" convert -O raw zeros.qcow2 zeros.raw

same_data() { # image reference.raw bytes label
    "$QEMU_IMG" convert -O raw "$1" got.raw 2>/dev/null || { fail "$4: unreadable"; return; }
    cmp -s -n "$3" got.raw "$2" || fail "$4: guest data changed"
}

# An uninterrupted run (not in a subshell: a failure must count); DUR is
# how long it took in seconds, so the kills spread over it.
run_timed() { # args...
    local t0 t1
    t0=$(date +%s%N)
    "$DIMG" "$@" >/dev/null 2>&1 || fail "uninterrupted $*"
    t1=$(date +%s%N)
    local ms=$(((t1 - t0) / 1000000))
    [ $ms -lt 20 ] && ms=20
    DUR=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
}

run_and_kill() { # seed duration args...
    local seed=$1 dur=$2 delay
    shift 2
    # Computed before the start: python's own start-up would delay the kill.
    delay=$(python3 -c "import random; random.seed($seed); print(round(random.uniform(0, $dur), 3))")
    "$DIMG" "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$delay"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
}

scenario() { # label source reference.raw bytes args... (IMG: the image)
    local label=$1 src=$2 ref=$3 bytes=$4 a args=()
    shift 4
    for a in "$@"; do
        [ "$a" = IMG ] && a=t.qcow2
        args+=("$a")
    done
    set -- "${args[@]}"
    cp "$src" t.qcow2
    run_timed "$@"
    local dur=$DUR
    check_leaky t.qcow2 "$label (complete)"
    same_data t.qcow2 "$ref" "$bytes" "$label (complete)"
    for i in $(seq 1 "$ROUNDS"); do
        cp "$src" t.qcow2
        run_and_kill "$i" "$dur" "$@"
        check_leaky t.qcow2 "$label round $i"
        same_data t.qcow2 "$ref" "$bytes" "$label round $i"
    done
}

scenario "refcount_bits=64" data.qcow2 rnd.raw 50331648 amend -o refcount_bits=64 IMG
cp data.qcow2 wide.qcow2
"$DIMG" amend -o refcount_bits=64 wide.qcow2 || fail "setup wide"
scenario "refcount_bits=2" wide.qcow2 rnd.raw 50331648 amend -o refcount_bits=2 IMG
scenario "compat=0.10" zeros.qcow2 zeros.raw 50331648 amend -o compat=0.10 IMG
scenario "shrink" data.qcow2 rnd.raw 1048576 resize --shrink IMG 1M
scenario "amend size" zeros.qcow2 zeros.raw 3145728 amend -o size=3M IMG
finish
