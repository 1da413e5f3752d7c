/* convert: not implemented yet. */
#include "cmd.h"

int
cmd_convert(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("convert: not implemented yet");
    return 1;
}
