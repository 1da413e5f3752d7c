/* rebase: not implemented yet. */
#include "cmd.h"

int
cmd_rebase(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("rebase: not implemented yet");
    return 1;
}
