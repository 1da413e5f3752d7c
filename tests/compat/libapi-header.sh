#!/bin/bash
# The public API as an outside program sees it: <dimg/dimg.h> compiles on its
# own in strict C11 (and C++11 when a C++ compiler exists), libdimg.so exports
# only dimg_* symbols, and a program using only the header links against the
# shared library and works (create, write, read back, block status, errors).
. "$TEST_LIB"
: "${SRCDIR:?SRCDIR must point at the source tree}"
requires cc
LIBDIR=$(dirname "$DIMG")/lib
[ -e "$LIBDIR/libdimg.so" ] || { echo "SKIP: $LIBDIR/libdimg.so not built"; exit 77; }
INC=$SRCDIR/include

# 1. standalone header, strict modes, no _GNU_SOURCE
printf '#include <dimg/dimg.h>\nint main(void) { return DIMG_VERSION_MAJOR; }\n' >h.c
for std in c11 c17 gnu11; do
    cc -std=$std -pedantic-errors -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
        -Werror -fsyntax-only -I"$INC" h.c 2>cc.err || { fail "dimg.h not clean as -std=$std"; cat cc.err >&2; }
done
if command -v c++ >/dev/null 2>&1; then
    cp h.c h.cc
    c++ -std=c++11 -pedantic-errors -Wall -Wextra -Werror -fsyntax-only -I"$INC" h.cc 2>cc.err ||
        { fail "dimg.h not clean as C++11"; cat cc.err >&2; }
fi

# 2. only dimg_* exported
if command -v nm >/dev/null 2>&1; then
    nm -D --defined-only "$LIBDIR/libdimg.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
        grep -v '^dimg_' >leaked.txt
    [ -s leaked.txt ] && { fail "libdimg.so exports non-dimg_ symbols:"; head -20 leaked.txt >&2; }
    # Every function the header declares is exported.
    grep -oE '\bdimg_[a-z_0-9]+ *\(' "$INC/dimg/dimg.h" | tr -d ' (' | sort -u >declared.txt
    nm -D --defined-only "$LIBDIR/libdimg.so" | awk '{print $3}' | sed 's/@.*//' | sort -u >exported.txt
    comm -23 declared.txt exported.txt >missing.txt
    [ -s missing.txt ] && { fail "declared in dimg.h but not exported:"; cat missing.txt >&2; }
fi

# 3. a client program against the shared library
cat >client.c <<'C'
#include <dimg/dimg.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *path = argv[1];
    if (dimg_create(path, "raw", 1 << 20, NULL, DIMG_CREATE_QUIET, NULL, NULL) < 0) {
        fprintf(stderr, "create: %s\n", dimg_get_error());
        return 1;
    }
    dimg_image *img = dimg_open(path, NULL, DIMG_OPEN_RDWR);
    if (!img) {
        fprintf(stderr, "open: %s\n", dimg_get_error());
        return 1;
    }
    char buf[4096], rd[4096];
    memset(buf, 'x', sizeof buf);
    if (dimg_pwrite(img, buf, sizeof buf, 65536) < 0 || dimg_pread(img, rd, sizeof rd, 65536) < 0 ||
        memcmp(buf, rd, sizeof buf) != 0) {
        fprintf(stderr, "io: %s\n", dimg_get_error());
        return 1;
    }
    struct dimg_extent e;
    if (dimg_block_status(img, 65536, 4096, &e) < 0 || !(e.flags & DIMG_EXTENT_DATA)) {
        fprintf(stderr, "block status wrong\n");
        return 1;
    }
    printf("%s %s %llu\n", dimg_get_format(img), DIMG_VERSION_STRING,
           (unsigned long long)dimg_get_size(img));
    if (dimg_pwrite(img, buf, 1, 1 << 20) != -EINVAL || dimg_get_errno() != EINVAL ||
        !strstr(dimg_get_error(), path)) {
        fprintf(stderr, "beyond-end error wrong: %s\n", dimg_get_error());
        return 1;
    }
    dimg_close(img);
    if (dimg_open("missing.raw", NULL, 0) != NULL || dimg_get_errno() != ENOENT) {
        fprintf(stderr, "missing file: %s\n", dimg_get_error());
        return 1;
    }
    printf("%s\n", dimg_get_error());
    return 0;
}
C
# A sanitizer build of the library needs the client built with the same runtime.
san=()
ldd "$LIBDIR/libdimg.so" 2>/dev/null | grep -q libasan && san=(-fsanitize=address,undefined)
if cc -std=c11 -Wall -Wextra -Werror "${san[@]}" -I"$INC" client.c -L"$LIBDIR" -ldimg \
    -Wl,-rpath,"$LIBDIR" -o client 2>cc.err; then
    ./client img.raw >client.out 2>client.err
    rc=$?
    [ $rc -eq 0 ] || { fail "client exited $rc"; cat client.err >&2; }
    grep -qx "raw $(sed -n 's/^#define DIMG_VERSION_STRING "\(.*\)"/\1/p' "$INC/dimg/dimg.h") 1048576" client.out ||
        { fail "client output: $(cat client.out)"; }
    grep -q "missing.raw" client.out || fail "missing-file error does not name the file"
    "$QEMU_IMG" compare -q img.raw img.raw 2>/dev/null
    [ "$(stat -c %s img.raw)" = 1048576 ] || fail "client image has the wrong size"
else
    fail "client does not compile/link against libdimg.so"
    cat cc.err >&2
fi
finish
