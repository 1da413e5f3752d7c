#!/bin/bash
# bitmap on raw images: every action fails with qemu-img's message (the node
# name's random digits are normalized), and the option checks (granularity,
# -b/-F, action list, argument count) match qemu-img.
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f raw r.raw 1M
"$QEMU_IMG" create -q -f raw b.raw 1M
mkdir dir
long=$(printf 'x%.0s' $(seq 1100))

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    before=$failures
    both "b$n" bitmap "$@"
    sed -i 's/#block[0-9]*/#blockN/' "q.b$n.err" "d.b$n.err"
    same "b$n"
    [ "$failures" = "$before" ] || echo "  (case b$n: bitmap $line)" >&2
done <<'EOF'
r.raw bm
--add r.raw bm
--add -f raw r.raw bm
--add --image-opts driver=raw,file.filename=r.raw bm
--ad -f raw r.raw bm
--remove -f raw r.raw bm
--clear -f raw r.raw bm
--enable -f raw r.raw bm
--disable -f raw r.raw bm
--merge src -f raw r.raw bm
--merge '' -f raw r.raw bm
--merge src -b b.raw -f raw r.raw bm
--merge src -b b.raw -F raw -f raw r.raw bm
--source-file b.raw --merge x -f raw r.raw bm
--add --remove -f raw r.raw bm
--remove --add -f raw r.raw bm
--add --merge x -b b.raw -F raw -f raw r.raw bm
--add -g 64k -f raw r.raw bm
--granularity=1k --add -f raw r.raw bm
--add -g 0 -f raw r.raw bm
--add -g 1000 -f raw r.raw bm
--add -g 256 -f raw r.raw bm
--add -g 4G -f raw r.raw bm
--add -g 4294967808 -f raw r.raw bm
--add -g 8E -f raw r.raw bm
--add -g bad -f raw r.raw bm
--add -f raw r.raw ''
--add -f raw r.raw $long
--remove -f raw r.raw ''
--remove -g 64k -f raw r.raw bm
--remove --merge x -g 1k -F raw r.raw bm
--merge x -g 1k -b q r.raw
--add -b b.raw -f raw r.raw bm
--add -F raw -f raw r.raw bm
--merge x -F raw r.raw bm
--add -f raw -b b.raw --merge s r.raw bm
--merge src -b nonexist -f raw r.raw bm
--merge src -b nonexist -f raw nonexist2 bm
--add r.raw
--add
--add a b c
--add -f raw r.raw bm extra
--add nonexist bm
--add -g 1000 -f raw nonexist bm
--add -f raw dir bm
--add -f nosuch r.raw bm
--add --image-opts -f raw r.raw bm
--add -x
--merge
-g
--e -f raw r.raw bm
--add -U r.raw bm
--add -q r.raw bm
EOF
expect_rc 0 "$DIMG" bitmap -h
finish
