#!/bin/bash
# create -f raw: output line, file size and allocation, options, errors match qemu-img.
. "$TEST_LIB"
requires qemu-img

n=0
for args in "10M" "1000" "0" "1.5M" "0x10" "1b" "1g" "1X" "1.5" "16E" "8E" "18446744073709551615" \
    "-o preallocation=falloc 1M" "-o preallocation=full 100k" "-o preallocation=off 1M" \
    "-o preallocation=foo 1M" "-o preallocation=metadata 1M" \
    "-o nocow=on,extent_size_hint=1M,preallocation=full 1M" "-o size=2M" "-o size=2M 3M" \
    "-o nocow=maybe 1M" "-o extent_size_hint=1X 1M" "-o foo=1 1M" "-b base.raw 1M" \
    "" "-q 1M" "-f nosuchfmt 1M" "1M extra"; do
    n=$((n + 1))
    rm -f img.raw
    # shellcheck disable=SC2086
    run_as "q.c$n" "$QEMU_IMG" create -f raw $args
    q_exists=0; [ -e img.raw ] || true
    # qemu-img takes the file name before the size: rebuild the argument list.
    set -- $args
    rm -f q.raw d.raw
    pre=(); post=()
    while [ $# -gt 0 ]; do
        case $1 in
            -o|-b|-f) pre+=("$1" "$2"); shift 2 ;;
            -q) pre+=("$1"); shift ;;
            *) post+=("$1"); shift ;;
        esac
    done
    run_as "q.c$n" "$QEMU_IMG" create -f raw "${pre[@]}" img.raw "${post[@]}"
    [ -e img.raw ] && mv img.raw q.raw
    run_as "d.c$n" "$DIMG" create -f raw "${pre[@]}" img.raw "${post[@]}"
    [ -e img.raw ] && mv img.raw d.raw
    sed -i 's/^dimg: /qemu-img: /; s/Try .dimg --help./Try '"'"'qemu-img --help'"'"'/' "d.c$n.err"
    same "c$n"
    if [ -e q.raw ] || [ -e d.raw ]; then
        if [ ! -e q.raw ] || [ ! -e d.raw ]; then
            fail "c$n ($args): only one tool created the file"
        else
            [ "$(stat -c %s q.raw)" = "$(stat -c %s d.raw)" ] || fail "c$n ($args): file size differs"
            [ "$(stat -c %b q.raw)" = "$(stat -c %b d.raw)" ] || fail "c$n ($args): allocation differs"
            cmp -s q.raw d.raw || fail "c$n ($args): content differs"
        fi
    fi
done

# -o help with and without a file name
both help1 create -f raw -o help img.raw 1M; same help1
both help2 create -f raw -o help; same help2
both help3 create -f raw -o '?' img.raw; same help3
finish
