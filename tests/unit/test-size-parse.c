/* dimg_parse_size against values observed from qemu-img create. */
#include <errno.h>

#include "dimg/dimg.h"
#include "test.h"

static uint64_t
ok(const char *s)
{
    uint64_t v = 0;
    int r = dimg_parse_size(s, &v);
    if (r != 0) {
        fprintf(stderr, "'%s' rejected (%d)\n", s, r);
        exit(1);
    }
    return v;
}

static void
bad(const char *s, int want)
{
    uint64_t v;
    int r = dimg_parse_size(s, &v);
    if (r != want) {
        fprintf(stderr, "'%s' gave %d, expected %d\n", s, r, want);
        exit(1);
    }
}

int
main(void)
{
    CHECK_EQ_U64(ok("1k"), 1024);
    CHECK_EQ_U64(ok("1K"), 1024);
    CHECK_EQ_U64(ok("1.5M"), 1572864);
    CHECK_EQ_U64(ok("0x10"), 16);
    CHECK_EQ_U64(ok("1b"), 1);
    CHECK_EQ_U64(ok("1B"), 1);
    CHECK_EQ_U64(ok(" 1M"), 1048576);
    CHECK_EQ_U64(ok("1m"), 1048576);
    CHECK_EQ_U64(ok("1g"), 1073741824);
    CHECK_EQ_U64(ok("7E"), 8070450532247928832ull);
    CHECK_EQ_U64(ok("9223372036854775807"), 9223372036854775807ull);
    CHECK_EQ_U64(ok("1.0000001k"), 1024);
    CHECK_EQ_U64(ok("1t"), 1099511627776ull);
    CHECK_EQ_U64(ok("1024b"), 1024);
    CHECK_EQ_U64(ok("0"), 0);
    CHECK_EQ_U64(ok("+1M"), 1048576);
    bad("1.5", -EINVAL);
    bad("0x1.5k", -EINVAL);
    bad("1e3", -EINVAL);
    bad("1M ", -EINVAL);
    bad("0.5", -EINVAL);
    bad(".5k", -EINVAL);
    bad("1kB", -EINVAL);
    bad("1KiB", -EINVAL);
    bad("", -EINVAL);
    bad("-1", -EINVAL);
    bad("16E", -ERANGE);
    bad("18446744073709551616", -ERANGE);
    /* 8E fits in uint64 but exceeds qemu-img's INT64_MAX: the CLI rejects it. */
    CHECK_EQ_U64(ok("8E"), 9223372036854775808ull);
    return 0;
}
