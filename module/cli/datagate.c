/*
 * datagate command-line tool: dispatch to the command families.
 *
 * Every command function receives the arguments from its own command word
 * on: for "datagate policy check P", dg_cmd_policy() gets argc 3 and
 * argv { "policy", "check", "P" }; for "datagate freeze dataset X",
 * dg_cmd_incident("freeze", 3, { "freeze", "dataset", "X" }).
 */

#include <stdio.h>
#include <string.h>

#include "datagate.h"
#include "dg_version.h"


static void
dg_usage(FILE *out)
{
    fprintf(out,
"NAME\n"
"    datagate - policy, incident and audit tool of the datagate gateway\n"
"\n"
"SYNOPSIS\n"
"    datagate policy check PATH...\n"
"    datagate policy explain PATH --consumer ID --dataset ID\n"
"                            [--purpose ID] [--method M] [--approval NO]\n"
"                            [--at YYYY-MM-DD]\n"
"    datagate policy catalogue PATH --consumer ID [--at YYYY-MM-DD]\n"
"    datagate revoke cert SERIAL        datagate unrevoke cert SERIAL\n"
"    datagate suspend consumer ID       datagate unsuspend consumer ID\n"
"    datagate freeze dataset ID         datagate unfreeze dataset ID\n"
"    datagate freeze grant CONSUMER DATASET\n"
"    datagate unfreeze grant CONSUMER DATASET\n"
"    datagate grant add FILE.yaml\n"
"    datagate grant remove CONSUMER DATASET\n"
"    datagate redis status | confirm\n"
"    datagate audit verify FILE...\n"
"    datagate report [--from DATE] [--to DATE] [--by DIMS] [--policy PATH]\n"
"                    [--format table|csv|json|html] [--output FILE]\n"
"                    AUDIT.log...\n"
"    datagate abuse replay --policy PATH TRACE...\n"
"    datagate --help | --version\n"
"\n"
"DESCRIPTION\n"
"    datagate is the command-line companion of the datagate nginx module.\n"
"    It is built from the same C core, so `policy check` accepts exactly\n"
"    the policies that `nginx -t` accepts.\n"
"\n"
"    policy     validate a policy file or directory, explain the\n"
"               decision and masking plan for one request, or print what\n"
"               one consumer may ask for (its catalogue)\n"
"    revoke, unrevoke, suspend, unsuspend, freeze, unfreeze\n"
"               incident controls, cluster-wide through Redis\n"
"    grant      run-time grants issued by the approval process\n"
"    redis      what the gateways check of Redis; confirm a Redis that\n"
"               lost its data once the controls are back\n"
"    audit      verify the hash chain of audit logs\n"
"    report     calls, denials, records and masked values per department,\n"
"               consumer, dataset and purpose, from audit logs (table,\n"
"               CSV, JSON, or an HTML page with charts)\n"
"    abuse      replay traffic through the policy's abuse detection:\n"
"               false alarms, and when scrapers are flagged\n"
"\n"
"    `datagate COMMAND --help` describes each command.\n"
"\n"
"ENVIRONMENT\n"
"    DATAGATE_REDIS   default Redis address (HOST:PORT) of the incident\n"
"                     and grant commands\n"
"\n"
"EXIT STATUS\n"
"    0  success, policy valid, request allowed, chain intact\n"
"    1  check failed, request denied, chain broken, report with\n"
"       unreadable lines\n"
"    2  usage error\n"
"    3  run-time error (file unreadable, Redis unreachable, ...)\n");
}


int
main(int argc, char **argv)
{
    const char  *cmd;

    if (argc < 2) {
        dg_usage(stderr);
        return DG_EXIT_USAGE;
    }

    cmd = argv[1];

    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "help") == 0)
    {
        dg_usage(stdout);
        return DG_EXIT_OK;
    }

    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0
        || strcmp(cmd, "version") == 0)
    {
        printf("datagate " DG_VERSION "\n");
        return DG_EXIT_OK;
    }

    if (strcmp(cmd, "policy") == 0) {
        return dg_cmd_policy(argc - 1, argv + 1);
    }

    if (strcmp(cmd, "audit") == 0) {
        return dg_cmd_audit(argc - 1, argv + 1);
    }

    if (strcmp(cmd, "report") == 0) {
        return dg_cmd_report(argc - 1, argv + 1);
    }

    if (strcmp(cmd, "abuse") == 0) {
        return dg_cmd_abuse(argc - 1, argv + 1);
    }

    if (strcmp(cmd, "grant") == 0) {
        return dg_cmd_grant(argc - 1, argv + 1);
    }

    if (strcmp(cmd, "redis") == 0) {
        return dg_cmd_redis(argc - 1, argv + 1);
    }

    if (strcmp(cmd, "revoke") == 0 || strcmp(cmd, "unrevoke") == 0
        || strcmp(cmd, "suspend") == 0 || strcmp(cmd, "unsuspend") == 0
        || strcmp(cmd, "freeze") == 0 || strcmp(cmd, "unfreeze") == 0
        || strcmp(cmd, "incident") == 0)
    {
        return dg_cmd_incident(cmd, argc - 1, argv + 1);
    }

    fprintf(stderr, "datagate: unknown command '%s' (see datagate --help)\n",
            cmd);

    return DG_EXIT_USAGE;
}
