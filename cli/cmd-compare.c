/* compare: not implemented yet. */
#include "cmd.h"

int
cmd_compare(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("compare: not implemented yet");
    return 1;
}
