/* bitmap: not implemented yet. */
#include "cmd.h"

int
cmd_bitmap(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("bitmap: not implemented yet");
    return 1;
}
