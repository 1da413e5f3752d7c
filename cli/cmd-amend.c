/* amend: not implemented yet. */
#include "cmd.h"

int
cmd_amend(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("amend: not implemented yet");
    return 1;
}
