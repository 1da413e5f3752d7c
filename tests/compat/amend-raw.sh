#!/bin/bash
# amend on raw images: qemu-img's "does not support option amendment",
# -o help with and without -f, option list checks, -p output and usage errors.
. "$TEST_LIB"
requires qemu-img

"$QEMU_IMG" create -q -f raw r.raw 1M
mkdir dir

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    eval "set -- $line"
    before=$failures
    both "a$n" amend "$@"
    same "a$n"
    [ "$failures" = "$before" ] || echo "  (case a$n: amend $line)" >&2
done <<'EOF'
r.raw
--force r.raw
-o size=2M r.raw
-f raw -o size=2M r.raw
-o foo r.raw
-o foo=bar -f raw r.raw
-o a -o b -f raw r.raw
--force -f raw -o size=1M r.raw
-q -f raw -o size=1M r.raw
-p -f raw -o size=1M r.raw
-p -q -o x -f raw r.raw
-o help r.raw
-f raw -o help r.raw
-o help
-f raw -o help
-p -f raw -o help
-p -o help
-o '?' -f raw
-o size=1M,help -f raw
-o help -f raw a b
-f nosuch -o help
-o help -f nosuch a b
-f nosuch -o x r.raw
-f raw -o '' r.raw
-o , r.raw
-o ,x r.raw
-p -o ,x r.raw
-o a, r.raw
-o a,, -f raw r.raw
-o a,,, r.raw
-o size=2M
-o size=2M a b
-o size=1M nonexist
-p -o size=1 nonexist
-f raw -o x dir
-t bad -o size=1M r.raw
-p -t bad -o x r.raw
-t none -f raw -o x r.raw
--image-opts -o x driver=raw,file.filename=r.raw
--image-opts -o help file.filename=r.raw
--image-opts -f raw -o x driver=raw,file.filename=r.raw
-U -o x r.raw
-x
-o
--bogus -o x r.raw
EOF
expect_rc 0 "$DIMG" amend -h
finish
