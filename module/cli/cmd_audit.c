/* placeholder until the audit commands land */
#include <stdio.h>
#include "datagate.h"

int
dg_cmd_audit(int argc, char **argv)
{
    fprintf(stderr, "datagate: audit: not built yet\n");
    return DG_EXIT_RUNTIME;
}
