#!/bin/bash
# check on qcow2 copies corrupted with python (refcounts too low or too high,
# leaks, unaligned and out-of-file entries, wrong OFLAG_COPIED, bad refcount
# table entries): the report and exit code as qemu-img's; then -r leaks and
# -r all on identical copies with both tools: same report, qemu-img judges
# both results alike, and the guest content is unchanged.
here=$(cd "$(dirname "$0")" && pwd)
. "$TEST_LIB"
requires qemu-img qemu-io od dd
. "$here/check-qcow2-common.inc"

# --- corrupted copies ------------------------------------------------------
# base.qcow2 (64k clusters): header 0, reftable 1, refblock 2, L1 3, L2 4,
# data 5..8 (guest 0..256k), then the 4M cluster and the compressed one.
"$QEMU_IMG" create -q -f qcow2 base.qcow2 8M
"$QEMU_IO" -c "write -P 1 0 200k" -c "write -P 2 4M 64k" -c "write -c -P 3 6M 64k" \
    base.qcow2 >/dev/null
rt=$(qc base.qcow2 reftable)
cp base.qcow2 x.qcow2; qc x.qcow2 setrc 5 2; check_both x.qcow2
cp base.qcow2 x.qcow2; qc x.qcow2 setrc 6 3; check_both x.qcow2
corruptions=(
    "setrc 5 0"                        # refcount too low (0: needs a rebuild)
    "setrc 5 2"                        # refcount too high
    "setrc 6 3"                        # leak
    "setrc 4 2"                        # L2 table with refcount 2: OFLAG_COPIED wrong too
    "setrc 2 0"                        # refcount block with refcount 0
    "setl2e 0 0 0x8000000000050200"    # unaligned data cluster
    "setl2e 0 0 0x8000000000050201"    # unaligned preallocated zero cluster
    "setl2e 0 0 0x8000000000050100"    # reserved bits in an L2 entry
    "setl2e 0 0 0x8000000000950000"    # data cluster past the end of the file
    "setl2e 0 0 0x0000000000050000"    # OFLAG_COPIED missing on a data cluster
    "setl2e 0 1 0x8000000000050000"    # one cluster mapped twice
    "setl1 0 0x40000"                  # OFLAG_COPIED missing on an L2 table
    "setl1 0 0x8000000000940000"       # L2 table past the end of the file
    "setl1 0 0x8000000000040200"       # unaligned L2 table
    "setl1 1 0x8000000000040000"       # an L2 table used twice
    "poke $((rt + 8)) 0x900000"        # refcount block outside the image
    "poke $((rt + 8)) 0x50000"         # refcount block on a data cluster
    "poke $((rt + 8)) 0x1"             # reserved bits in the refcount table
    "poke $rt 0x20200"                 # unaligned refcount block
)
for c in "${corruptions[@]}"; do
    before=$failures
    cp base.qcow2 x.qcow2
    qc x.qcow2 $c
    check_human x.qcow2
    [ "$failures" = "$before" ] || echo "  (corruption: $c)" >&2
done

# A leak in an image with a snapshot (the snapshot's tables are counted too).
cp base.qcow2 x.qcow2
"$QEMU_IMG" snapshot -c one x.qcow2
"$QEMU_IO" -c "write -P 7 0 64k" x.qcow2 >/dev/null
qc x.qcow2 setrc 6 3
check_both x.qcow2

# Repairs: dimg and qemu-img on identical copies must print the same and
# leave images qemu-img judges the same, with unchanged guest content.
# (Images dimg cannot open read-write, an unaligned refcount block, are left out.)
repairs=( # "modes|corruption"
    "leaks all|setrc 5 2" "leaks all|setrc 4 2" "leaks all|setl1 0 0x40000"
    "leaks all|setl2e 0 0 0x0000000000050000" "all|setl2e 0 1 0x8000000000050000"
    "leaks all|setl2e 0 0 0x8000000000950000" "all|setl2e 0 0 0x8000000000050200"
    "all|setl2e 0 0 0x8000000000050201"
    # refcounts missing: -r leaks refuses, -r all rebuilds the refcount structure
    "leaks all|setrc 5 0" "all|setrc 2 0" "all|poke $((rt + 8)) 0x50000"
    "all|poke $((rt + 8)) 0x1"
)
mkdir -p q d
repair_both() { # tag mode [extra args]: -r on q/x.qcow2 and d/x.qcow2
    local tag=$1 mode=$2; shift 2
    (cd q && run_as "../q.$tag" "$QEMU_IMG" check -r "$mode" "$@" x.qcow2)
    (cd d && run_as "../d.$tag" "$DIMG" check -r "$mode" "$@" x.qcow2)
    sed -i 's/^dimg: /qemu-img: /' "d.$tag.err"
    same "$tag"
}
for r in "${repairs[@]}"; do
    c=${r#*|}
    for mode in ${r%%|*}; do
        before=$failures
        n=$((n + 1))
        cp base.qcow2 q/x.qcow2
        qc q/x.qcow2 $c
        cp q/x.qcow2 d/x.qcow2
        cp q/x.qcow2 p.qcow2
        repair_both "r$n" $mode
        run_as "q.a$n" "$QEMU_IMG" check q/x.qcow2
        run_as "d.a$n" "$QEMU_IMG" check d/x.qcow2
        same "a$n"
        if [ "$(cat "q.a$n.rc")" = 0 ]; then
            # exit 2: qemu-img cannot read the corrupt original; qemu's repair is the reference then
            "$QEMU_IMG" compare -q p.qcow2 d/x.qcow2 2>/dev/null
            case $? in
            1) fail "-r $mode ($c): guest content changed" ;;
            2) "$QEMU_IMG" compare -q q/x.qcow2 d/x.qcow2 ||
                fail "-r $mode ($c): differs from qemu's repair" ;;
            esac
        fi
        [ "$failures" = "$before" ] || echo "  (repair -r $mode: $c)" >&2
    done
done

# A rebuild reuses a hole a discard left for the new refcount block.
n=$((n + 1))
cp base.qcow2 q/x.qcow2
"$QEMU_IO" -c "discard 64k 64k" q/x.qcow2 >/dev/null
qc q/x.qcow2 setrc 7 0
cp q/x.qcow2 d/x.qcow2
cp q/x.qcow2 p.qcow2
repair_both "r$n" all
"$QEMU_IMG" check -q d/x.qcow2 || fail "rebuilt image with a hole not clean"
"$QEMU_IMG" compare -q p.qcow2 d/x.qcow2 || fail "rebuild with a hole changed the content"

# JSON and quiet output of a repair; the result is clean for qemu-img.
for args in "--output=json" "-q"; do
    n=$((n + 1))
    cp base.qcow2 q/x.qcow2; qc q/x.qcow2 setrc 6 3; cp q/x.qcow2 d/x.qcow2
    repair_both "r$n" leaks $args
    "$QEMU_IMG" check -q d/x.qcow2 || fail "repaired image not clean ($args)"
done
finish
