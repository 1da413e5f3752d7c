/* snapshot: not implemented yet. */
#include "cmd.h"

int
cmd_snapshot(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("snapshot: not implemented yet");
    return 1;
}
