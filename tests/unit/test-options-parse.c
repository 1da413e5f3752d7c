/* The -o option list parser: escapes, help, duplicates, typed accessors. */
#include <errno.h>

#include "core/internal.h"
#include "test.h"

int
main(void)
{
    struct dimg_opts o = { 0 };
    CHECK(opts_parse(&o, "a=b,c=d,,e,help") == 0);
    CHECK_STR(opts_get(&o, "a"), "b");
    CHECK_STR(opts_get(&o, "c"), "d,e");
    CHECK_STR(opts_get(&o, "help"), "on");
    CHECK(opts_parse(&o, "a=z") == 0);
    CHECK_STR(opts_get(&o, "a"), "z"); /* the last value wins */
    CHECK(o.n == 3);
    CHECK(opts_parse(&o, "?") == 0);
    opts_free(&o);

    CHECK(opts_parse(&o, "foo") == -EINVAL);
    CHECK_STR(dimg_get_error(), "Invalid parameter 'foo'");
    opts_free(&o);

    CHECK(opts_parse(&o, "size=1M,nocow=on,bad=maybe") == 0);
    uint64_t v;
    bool b;
    CHECK(opts_get_size(&o, "size", 0, &v) == 0);
    CHECK_EQ_U64(v, 1048576);
    CHECK(opts_get_bool(&o, "nocow", false, &b) == 0 && b);
    CHECK(opts_get_bool(&o, "bad", false, &b) == -EINVAL);
    CHECK_STR(dimg_get_error(), "Parameter 'bad' expects 'on' or 'off'");
    CHECK(opts_get_bool(&o, "absent", true, &b) == 1 && b);
    static const struct dimg_optdesc table[] = {
        { "size", DIMG_OPT_SIZE, "", NULL },
        { "nocow", DIMG_OPT_BOOL, "", NULL },
        { NULL, 0, NULL, NULL },
    };
    const struct dimg_optdesc *tables[] = { table };
    CHECK(opts_validate(&o, tables, 1) == -EINVAL);
    CHECK_STR(dimg_get_error(), "Invalid parameter 'bad'");
    CHECK(opts_del(&o, "bad") == 0);
    CHECK(opts_validate(&o, tables, 1) == 0);
    opts_free(&o);
    return 0;
}
