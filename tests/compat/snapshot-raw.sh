#!/bin/bash
# snapshot on raw images: -l lists nothing, -c/-a/-d fail with qemu-img's
# messages; mixed actions, -U with writers, missing arguments and open errors.
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f raw r.raw 1M
mkdir dir sub
"$QEMU_IMG" create -q -f raw sub/s.raw 64k

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    before=$failures
    both "s$n" snapshot "$@"
    same "s$n"
    [ "$failures" = "$before" ] || echo "  (case s$n: snapshot $line)" >&2
done <<'EOF'
r.raw
-q r.raw
-l r.raw
-q -l r.raw
-l -- r.raw
-U -l r.raw
--force-share -l r.raw
-c s1 r.raw
-c '' r.raw
-q -c s1 r.raw
-a s1 r.raw
-a s1 sub/s.raw
-d s1 r.raw
-d '' r.raw
-l -c s1 r.raw
-c s1 -l r.raw
-c s1 -d s2 r.raw
-a s1 -a s2 r.raw
-l -l r.raw
-U -c s r.raw
-c s -U r.raw
-U -a s r.raw
-U -d s r.raw
-U r.raw
-l
-l a b

-l nonexist
-c s nonexist
-a s nonexist
-l dir
-c s dir
-q dir
-x r.raw
-c
-a
-d
-f raw -l r.raw
-T x -l r.raw
--quiet -l r.raw
--list r.raw
--image-opts driver=raw,file.filename=r.raw
--image-opts -l driver=raw,file.filename=r.raw
--image-opts -c s1 driver=raw,file.filename=r.raw
--image-opts -a s1 driver=raw,file.filename=r.raw
--image-opts -d s1 driver=raw,file.filename=r.raw
--image-opts -l file.filename=r.raw
--image-opts -c s1 file.filename=r.raw
--image-opts -a s1 file.filename=r.raw
--image-opts -d s1 file.filename=r.raw
EOF
cmp -s r.raw <(head -c 1048576 /dev/zero) || fail "r.raw was modified"
expect_rc 0 "$DIMG" snapshot -h
finish
