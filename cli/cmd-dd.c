/* dd: not implemented yet. */
#include "cmd.h"

int
cmd_dd(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("dd: not implemented yet");
    return 1;
}
