#!/bin/bash
# measure -O raw: sizes, human and JSON output, option and argument errors match qemu-img.
. "$TEST_LIB"
requires qemu-img

make_sample_raw s.raw 16M
truncate -s 16M holes.raw
head -c 1001 /dev/zero >odd.raw
dd if=/dev/zero of=zeros.raw bs=64k count=16 status=none
head -c 1048576 /dev/urandom >data.raw

n=0
check() {
    n=$((n + 1))
    both "m$n" measure "$@"
    same "m$n"
}

# Sizes of sources: data, explicit zeros, holes, odd length; -O raw and default.
for f in s.raw holes.raw odd.raw zeros.raw data.raw; do
    check "$f"
    check --output=json -O raw -f raw -U "$f"
done
check --force-share --output json s.raw
check --image-opts driver=raw,file.filename=s.raw
check --image-opts -f raw driver=raw,file.filename=s.raw
check --image-opts -f raw --size 1M
check -f raw missing.raw
check missing.raw
check -f nosuchfmt s.raw

# --size
for s in 0 1 511 1001 1.5k 1G 16E 8E 9223372036854775807 9223372036854775808 foo -1 '' 0x10 1X; do
    check --size "$s"
done
check --output=json --size 9223372036854775807
check --output=json --size 1001
check --size 1M --size 2M
check --size foo --size 1M

# Options
for o in 'size=2M' 'preallocation=full' 'preallocation=bar' 'nocow=on' 'nocow=maybe' 'nocow' \
    'extent_size_hint=1X' 'foo=1' 'foo' 'help' '?' \
    'a=b=c' '=x' 'no' 'size=1M,' 'size=1M,,' ',' \
    ',size=1M' '' 'size=x,size=1M' 'size=1M ,nocow=on' 'backing_file=x'; do
    check -o "$o" --size 1M
done
check -o size=1M -o foo=2 --size 1M
check -o nocow=on,preallocation=xyz,extent_size_hint=1M --output=json --size 3000
check -o size=1M s.raw
check -o foo=1 missing.raw

# Format and argument errors, in qemu-img's order of checks
check -O nosuchfmt --size 1M
check -O nosuchfmt missing.raw
check -O nosuchfmt -o foo=1 --size 1M
check -o foo=1 -O nosuchfmt --size 1M
check -O raw -o help
check
check --size 1M s.raw
check s.raw --size 1M
check a.raw b.raw
check --size 1M a.raw b.raw
check -f raw
check -l snap
check --image-opts --size 1M
check -l snap s.raw
check -l snapshot.id=1 s.raw
check -l snapshot.foo=1 s.raw
check -l snapshot.id=1,snapshot.foo=2 --size 1M
check -l snapshot.foo=1 -o , --size 1M
check --output=xml --size 1M
check --output=foo -o ,
check -o , --output=foo
check --size foo -o ,
check -o , --size foo
check --object secret,id=s0,data=x --size 1M

# Unknown options: getopt's message and exit 0 (the help text itself differs).
for a in -x --foo --size -O; do
    both "bad$a" measure "$a"
    for what in err rc; do
        cmp -s "q.bad$a.$what" "d.bad$a.$what" || {
            fail "bad$a: $what differs from qemu-img"
            diff -u "q.bad$a.$what" "d.bad$a.$what" >&2
        }
    done
done

finish
