#include "db.h"
#include "buf.h"
#include "log.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

PGconn *db_connect(const char *conninfo, char **err)
{
	PGconn *c = PQconnectdb(conninfo);
	struct buf m = BUF_INIT;

	if (c && PQstatus(c) == CONNECTION_OK)
		return c;
	buf_printf(&m, "database connection failed: %s", c ? PQerrorMessage(c) : "out of memory");
	*err = buf_detach(&m);
	PQfinish(c);
	return NULL;
}

PGresult *db_exec(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return r;
	log_error("SQL failed: %s (statement: %.120s)", PQresultErrorMessage(r), sql);
	PQclear(r);
	return NULL;
}

#define MAXP 32
static PGresult *vq(PGconn *c, const char *sql, int n, va_list ap)
{
	const char *p[MAXP];
	int i;

	if (n > MAXP)
		return NULL;
	for (i = 0; i < n; i++)
		p[i] = va_arg(ap, const char *);
	return db_exec(c, sql, n, p);
}

PGresult *db_q(PGconn *c, const char *sql, int n, ...)
{
	PGresult *r;
	va_list ap;

	va_start(ap, n);
	r = vq(c, sql, n, ap);
	va_end(ap);
	return r;
}

int db_cmd(PGconn *c, const char *sql, int n, ...)
{
	PGresult *r;
	va_list ap;

	va_start(ap, n);
	r = vq(c, sql, n, ap);
	va_end(ap);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

const char *db_get(const PGresult *res, int r, const char *col)
{
	int f = PQfnumber(res, col);

	if (f < 0 || r >= PQntuples(res) || PQgetisnull(res, r, f))
		return NULL;
	return PQgetvalue(res, r, f);
}

int db_ensure(PGconn *c)
{
	if (PQstatus(c) == CONNECTION_OK)
		return 0;
	PQreset(c);
	return PQstatus(c) == CONNECTION_OK ? 0 : -1;
}
