/* PostgreSQL helpers.  Every statement goes through PQexecParams with text
 * parameters: SQL text never contains request data. */
#ifndef DB_H
#define DB_H
#include <libpq-fe.h>

/* Connect; NULL and *err (malloc'd) on failure. */
PGconn *db_connect(const char *conninfo, char **err);
/* Run `sql` with `n` text parameters (NULL entries are SQL NULL).  Returns
 * the result (caller PQclear()s) when it is TUPLES_OK or COMMAND_OK; else logs
 * the error, clears it and returns NULL. */
PGresult *db_exec(PGconn *c, const char *sql, int n, const char *const *params);
/* Same, parameters as varargs (exactly n const char *). */
PGresult *db_q(PGconn *c, const char *sql, int n, ...);
/* Convenience: run and discard; 0 ok, -1 error. */
int db_cmd(PGconn *c, const char *sql, int n, ...);
/* Value of row r, column by name; NULL when SQL NULL (borrowed from res). */
const char *db_get(const PGresult *res, int r, const char *col);
/* Reconnect if the connection went bad; 0 if usable. */
int db_ensure(PGconn *c);
#endif
