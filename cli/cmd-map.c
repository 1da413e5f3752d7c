/* map: not implemented yet. */
#include "cmd.h"

int
cmd_map(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("map: not implemented yet");
    return 1;
}
