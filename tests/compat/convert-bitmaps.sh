#!/bin/bash
# convert --bitmaps: the persistent bitmaps of a qcow2 source are copied to a
# qcow2 target as qemu-img copies them (byte-identical target, same bits),
# and every refusal (raw or v2 target, raw source, several sources, in-use
# bitmaps with and without --skip-broken-bitmaps) prints qemu-img's message.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f qcow2 src.qcow2 64M
"$QEMU_IMG" bitmap --add src.qcow2 a
"$QEMU_IMG" bitmap --add -g 512 src.qcow2 fine
"$QEMU_IMG" bitmap --add -g 1M --disable src.qcow2 off
"$QEMU_IO" -c 'write -P 1 100k 300k' -c 'write -P 2 10M 1' -c 'write -z 30M 64k' \
    src.qcow2 >/dev/null
"$QEMU_IMG" bitmap --merge fine src.qcow2 off
"$QEMU_IMG" create -q -f qcow2 plain.qcow2 64M
"$QEMU_IMG" create -q -f raw src.raw 64M
"$QEMU_IMG" create -q -f qcow2 base.qcow2 64M

# In-use bitmap: kill a qemu-io that has the image open read-write.
"$QEMU_IMG" create -q -f qcow2 broken.qcow2 64M
"$QEMU_IMG" bitmap --add broken.qcow2 bad
"$QEMU_IMG" bitmap --add --disable broken.qcow2 good
mkfifo fifo
"$QEMU_IO" broken.qcow2 <fifo >/dev/null 2>&1 &
qpid=$!
exec 7>fifo
for _ in $(seq 100); do
    "$QEMU_IMG" info -U broken.qcow2 | grep -q in-use && break
    sleep 0.05
done
kill -9 "$qpid"; wait "$qpid" 2>/dev/null; exec 7>&-
"$QEMU_IMG" info broken.qcow2 | grep -q in-use || fail "could not make an in-use bitmap"

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    rm -f q.out.* d.out.*
    run_as "q.c$n" "$QEMU_IMG" convert "${@//OUT/q.out}"
    run_as "d.c$n" "$DIMG" convert "${@//OUT/d.out}"
    sed -i 's/^dimg: /qemu-img: /; s/d\.out/q.out/g' "d.c$n.err"
    same "c$n"
    for f in q.out.*; do
        [ -e "$f" ] || { [ -e "d.out.${f#q.out.}" ] && fail "c$n: dimg created a target"; continue; }
        ext=${f#q.out.}
        [ -e "d.out.$ext" ] || { fail "c$n: dimg did not create the target"; continue; }
        if [ "$ext" = qcow2 ] && [ "$(cat "q.c$n.rc")" = 0 ]; then
            # compressed data is laid out by the convert engine, not by the bitmap code
            case "$line" in
            *" -c "*) ;;
            *) cmp -s "q.out.$ext" "d.out.$ext" || fail "c$n: target differs from qemu-img's ($line)" ;;
            esac
            # (actual-size: how the convert engine leaves the file's tail is not compared here)
            "$QEMU_IMG" info --output=json "q.out.$ext" | grep -v actual-size | sed 's/q\.out/X/' >q.info
            "$QEMU_IMG" info --output=json "d.out.$ext" | grep -v actual-size | sed 's/d\.out/X/' >d.info
            cmp -s q.info d.info || fail "c$n: target info differs ($line)"
            expect_rc 0 "$QEMU_IMG" check "d.out.$ext"
        fi
    done
done <<'EOF'
--bitmaps -O qcow2 src.qcow2 OUT.qcow2
--bitmaps -O qcow2 plain.qcow2 OUT.qcow2
--bitmaps -O qcow2 -o cluster_size=4k src.qcow2 OUT.qcow2
--bitmaps -O qcow2 -c src.qcow2 OUT.qcow2
--bitmaps -O raw src.qcow2 OUT.raw
--bitmaps -O qcow2 -o compat=0.10 src.qcow2 OUT.qcow2
--bitmaps -O qcow2 -f raw src.raw OUT.qcow2
--bitmaps -O qcow2 src.qcow2 plain.qcow2 OUT.qcow2
--bitmaps -O qcow2 nonexist1 nonexist2 OUT.qcow2
--skip-broken-bitmaps -O qcow2 src.qcow2 OUT.qcow2
--skip-broken-bitmaps -n -O qcow2 src.qcow2 OUT.qcow2
--bitmaps -O qcow2 broken.qcow2 OUT.qcow2
--bitmaps --skip-broken-bitmaps -O qcow2 broken.qcow2 OUT.qcow2
--bitmaps -B base.qcow2 -F qcow2 -O qcow2 src.qcow2 OUT.qcow2
EOF

# Into an existing target (-n) that already has one of the names.
for t in q d; do
    "$QEMU_IMG" create -q -f qcow2 $t.exist.qcow2 64M
    "$QEMU_IMG" bitmap --add $t.exist.qcow2 fine
done
run_as q.exist "$QEMU_IMG" convert -n --bitmaps -O qcow2 src.qcow2 q.exist.qcow2
run_as d.exist "$DIMG" convert -n --bitmaps -O qcow2 src.qcow2 d.exist.qcow2
sed -i 's/^dimg: /qemu-img: /' d.exist.err
same exist
"$QEMU_IMG" info --output=json q.exist.qcow2 | grep -v actual-size | sed 's/q\.exist/X/' >q.info
"$QEMU_IMG" info --output=json d.exist.qcow2 | grep -v actual-size | sed 's/d\.exist/X/' >d.info
cmp -s q.info d.info || fail "convert -n --bitmaps: target bitmaps differ from qemu-img's"

# measure reports the space the source's bitmaps need
for cs in 512 4k 64k 2M; do
    both "m$cs" measure -O qcow2 -o cluster_size=$cs src.qcow2
    same "m$cs"
done
both mjson measure --output=json -O qcow2 src.qcow2
same mjson
both mv2 measure -O qcow2 -o compat=0.10 src.qcow2
same mv2
both mraw measure -O raw src.qcow2
same mraw
finish
