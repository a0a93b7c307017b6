/*
 * datagate command-line tool: one entry point per command family.
 * Each returns the process exit code (0 ok, 1 check failed / denied,
 * 2 usage error, 3 runtime error such as Redis unreachable).
 */

#ifndef DATAGATE_CLI_H
#define DATAGATE_CLI_H

#define DG_EXIT_OK          0
#define DG_EXIT_FAIL        1
#define DG_EXIT_USAGE       2
#define DG_EXIT_RUNTIME     3

/* cmd_policy.c: policy check | policy explain */
int dg_cmd_policy(int argc, char **argv);

/* cmd_abuse.c: abuse replay */
int dg_cmd_abuse(int argc, char **argv);

/* cmd_audit.c: audit verify */
int dg_cmd_audit(int argc, char **argv);

/* cmd_report.c: report */
int dg_cmd_report(int argc, char **argv);

/* cmd_redis.c: revoke/unrevoke, suspend/unsuspend, freeze/unfreeze, grant */
int dg_cmd_incident(const char *verb, int argc, char **argv);
int dg_cmd_grant(int argc, char **argv);
int dg_cmd_redis(int argc, char **argv);

#endif /* DATAGATE_CLI_H */
