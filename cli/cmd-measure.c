/* measure: not implemented yet. */
#include "cmd.h"

int
cmd_measure(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("measure: not implemented yet");
    return 1;
}
