#!/bin/bash
# convert -l: every way of naming a snapshot (id or name, snapshot.id=,
# snapshot.name=, both, escaped commas, short-form booleans), unknown keys,
# missing snapshots, several sources and formats without snapshots: same
# messages, exit codes and output bytes as qemu-img.  Then dimg's -s (which
# qemu-img 7.2 dropped) reads the same data as -l.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f qcow2 a.qcow2 8M
"$QEMU_IO" -c "write -P 1 0 64k" -c "write -P 5 7M 64k" a.qcow2 >/dev/null
"$QEMU_IMG" snapshot -c small a.qcow2      # id 1
"$QEMU_IMG" snapshot -c "" a.qcow2         # id 2
"$QEMU_IO" -c "write -P 2 0 64k" a.qcow2 >/dev/null
"$QEMU_IMG" snapshot -c 1 a.qcow2          # id 3, named "1"
"$DIMG" snapshot -c "a,b" a.qcow2          # id 4, made by dimg
"$QEMU_IO" -c "write -P 3 64k 64k" a.qcow2 >/dev/null
"$QEMU_IMG" resize -q a.qcow2 16M
"$QEMU_IMG" create -q -f raw r.raw 1M

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    for tool in q d; do
        rm -f o.img
        if [ $tool = q ]; then prog=$QEMU_IMG; else prog=$DIMG; fi
        run_as "$tool.c$n" "$prog" convert "$@"
        if [ -e o.img ]; then md5sum <o.img >>"$tool.c$n.out"; fi
    done
    sed -i 's/^dimg: /qemu-img: /; s/Try .dimg --help./Try '"'"'qemu-img --help'"'"'/' "d.c$n.err"
    before=$failures
    same "c$n"
    [ "$failures" = "$before" ] || echo "  (case c$n: convert $line)" >&2
done <<'EOF2'
-l small -O raw a.qcow2 o.img
-l 1 -O raw a.qcow2 o.img
-l 2 -O raw a.qcow2 o.img
-l 3 -O raw a.qcow2 o.img
-l 4 -O raw a.qcow2 o.img
-l '' -O raw a.qcow2 o.img
-l nope -O raw a.qcow2 o.img
-l snapshot.id=9 -O raw a.qcow2 o.img
-l snapshot.name=1 -O raw a.qcow2 o.img
-l snapshot.id=1 -O raw a.qcow2 o.img
-l snapshot.name=small,snapshot.id=1 -O raw a.qcow2 o.img
-l snapshot.name=small,snapshot.id=2 -O raw a.qcow2 o.img
-l snapshot.name=,snapshot.id=2 -O raw a.qcow2 o.img
-l snapshot.name=small,snapshot.name=x -O raw a.qcow2 o.img
-l snapshot.name=a,,b -O raw a.qcow2 o.img
-l snapshot.foo=x -O raw a.qcow2 o.img
-l snapshot.id= -O raw a.qcow2 o.img
-l snapshot.id -O raw a.qcow2 o.img
-l snapshot.name=small, -O raw a.qcow2 o.img
-l snapshot.id=1,foo=bar -O raw a.qcow2 o.img
-l ,snapshot.id=1 -O raw a.qcow2 o.img
-l x -O raw a.qcow2 a.qcow2 o.img
-l snapshot.id=1 -O raw a.qcow2 a.qcow2 o.img
-l snapshot.id=1 -O raw r.raw a.qcow2 o.img
-l s -O raw r.raw o.img
-l s -O raw a.qcow2 r.raw o.img
-l x -O raw nonexist o.img
-l small -O qcow2 a.qcow2 o.img
-l 1 -O qcow2 -o cluster_size=4k a.qcow2 o.img
-l small -U -O raw a.qcow2 o.img
-l small -O raw --image-opts driver=qcow2,file.filename=a.qcow2 o.img
EOF2

# -s NAME (dimg extension) reads what qemu-img's -l NAME reads; -l wins over -s.
for s in small 1 2 3 4 ""; do
    "$QEMU_IMG" convert -l "$s" -O raw a.qcow2 q.raw
    "$DIMG" convert -s "$s" -O raw a.qcow2 d.raw
    cmp -s q.raw d.raw || fail "convert -s '$s' differs from qemu-img convert -l '$s'"
done
"$DIMG" convert -s small -l 3 -O raw a.qcow2 d.raw
"$QEMU_IMG" convert -l 3 -O raw a.qcow2 q.raw
cmp -s q.raw d.raw || fail "convert -s small -l 3 does not read snapshot 3"
run_as d.s1 "$DIMG" convert -s nope -O raw a.qcow2 o.img
run_as q.s1 "$QEMU_IMG" convert -l nope -O raw a.qcow2 o.img
sed -i 's/^dimg: /qemu-img: /' d.s1.err
same s1
run_as d.s2 "$DIMG" convert -s x -O raw a.qcow2 a.qcow2 o.img
run_as q.s2 "$QEMU_IMG" convert -l x -O raw a.qcow2 a.qcow2 o.img
sed -i 's/^dimg: /qemu-img: /' d.s2.err
same s2
"$DIMG" convert --help | grep -q -- "-s snapshot_id_or_name" || fail "convert --help does not show -s"
finish
