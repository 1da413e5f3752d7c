#!/bin/bash
# bench on raw images: the report lines (time normalized), read and write
# runs with flushes, requests past the end, every option's value errors, and
# the written data, compared with qemu-img.
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f raw r.raw 1M
"$QEMU_IMG" create -q -f raw odd.raw 1000
mkdir dir

norm() {
    sed -i 's/^Run completed in [0-9.]* seconds\./Run completed in N seconds./' "$@"
}

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    before=$failures
    both "e$n" bench "$@"
    norm "q.e$n.out" "d.e$n.out"
    same "e$n"
    [ "$failures" = "$before" ] || echo "  (case e$n: bench $line)" >&2
done <<'EOF'
-c 1000 r.raw
-q -c 10 r.raw
-c 300 -d 1 -s 3k -S 5000 -o 1000 r.raw
-c 3 -d 1 -s 512 -S 512 -o 1047553 r.raw
-c 1 -s 1048577 -d 1 r.raw
-c 2 -d 1 -o 2G -s 512 r.raw
-c 2 -d 1 -S 2147483647 -s 512 r.raw
-c 1 -s 1025 -d 1 odd.raw
-c 10 -w -f raw r.raw
-c 100 -w --pattern=5 -f raw r.raw
-c 100 -d 4 -w --flush-interval=4 -f raw r.raw
-c 100 -d 4 -w --flush-interval=10 --no-drain -f raw r.raw
-c 10 --flush-interval=0 r.raw
-c 20 -t none -f raw r.raw
-c 20 -t none -s 511 -d 8 -f raw r.raw
-c 20 -t directsync -w -s 1000 -d 8 -f raw r.raw
-c 10 -n -t none -f raw r.raw
-c 10 -i native -t directsync r.raw
-c 10 -n -f raw r.raw
-c 10 -n -w r.raw
-c 1 -n --image-opts driver=raw,file.filename=r.raw
-c 1 -U r.raw
-c 1 -w -U r.raw
-c 5 -w --image-opts file.filename=r.raw
-c 5 --image-opts -f raw driver=raw,file.filename=r.raw
-c -1 r.raw
-c ' 5' -d 1 -s 512 r.raw
-c '5 ' r.raw
-c abc r.raw
-c 0x r.raw
-c 1 -d '5 ' r.raw
-c 1 -d 2147483648 r.raw
-c 1 -d abc r.raw
-c 2 -d 1 -s -1 r.raw
-c 2 -d 1 -s 0 r.raw
-c 2 -d 1 -s 1.5k r.raw
-c 2 -d 1 -s abc r.raw
-c 2 -d 1 -S 0 -s 512 r.raw
-c 2 -d 1 -S 2G r.raw
-c 2 -d 1 -o -1 r.raw
-c 2 -d 1 -o 1.5k -s 512 r.raw
-c 2 -d 1 -w --pattern=-1 r.raw
-c 2 -d 1 -w --pattern=255 -f raw r.raw
-c 2 -d 1 -w --pattern=0xff -f raw r.raw
-c 2 -d 1 -w --pattern=256 r.raw
-c 4 -d 2 -w --flush-interval=1 r.raw
-c 4 -d 2 -w --flush-interval=2 -f raw r.raw
-c 4 -d 2 -w --flush-interval=2147483648 r.raw
-c 10 -w --flush-interval=3 --no-drain -f raw r.raw
-c 10 --flush-interval=3 r.raw
-t bad r.raw
-i bad r.raw
-c bad -i bad r.raw

a b
-c 1 nonexist
-c 1 dir
--object x r.raw
-x r.raw
-c
--pattern
--no-drain -c 3 r.raw
EOF

# The data written: the same requests leave the same bytes.
"$QEMU_IMG" create -q -f raw w.raw 4M
n=0
for args in "-c 700 -d 8 -s 2048 -S 6144 -o 4096 --pattern=0xab" \
    "-c 200 -d 16 -s 64k -S 16k --pattern=7 --flush-interval=32" \
    "-c 100 -d 4 -s 511 -S 700 -o 3 -t none --pattern=1" \
    "-c 50 -d 64 -s 8k -S 12k -o 1M --pattern=0x5a --flush-interval=64 --no-drain"; do
    n=$((n + 1))
    cp w.raw q.w.raw
    cp w.raw d.w.raw
    # shellcheck disable=SC2086
    run_as "q.w$n" "$QEMU_IMG" bench -w -f raw $args q.w.raw
    # shellcheck disable=SC2086
    run_as "d.w$n" "$DIMG" bench -w -f raw $args d.w.raw
    norm "q.w$n.out" "d.w$n.out"
    sed -i 's/q\.w\.raw/IMG/' "q.w$n.out" "q.w$n.err"
    sed -i 's/d\.w\.raw/IMG/; s/^dimg: /qemu-img: /' "d.w$n.out" "d.w$n.err"
    same "w$n"
    cmp -s q.w.raw d.w.raw || fail "w$n ($args): written data differs"
done
expect_rc 0 "$DIMG" bench -h
finish

