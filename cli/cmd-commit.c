/* commit: not implemented yet. */
#include "cmd.h"

int
cmd_commit(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("commit: not implemented yet");
    return 1;
}
