/* The MariaDB floor: fetch every row of one query over the binary protocol (a prepared statement,
 * rows streamed unbuffered) and discard it, in C, so the client costs next to nothing.
 *
 * Built by the bench at start with `gcc -O2 ... -l:libmariadb.so.3` against the client library every
 * MariaDB client install has; the few declarations below stand in for the headers (libmariadb-dev),
 * which are rarely installed. Usage: mariadb_floor HOST PORT DATABASE QUERY (user root, no password).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef struct st_mysql MYSQL;
typedef struct st_mysql_stmt MYSQL_STMT;
MYSQL *mysql_init(MYSQL *);
MYSQL *mysql_real_connect(MYSQL *, const char *, const char *, const char *, const char *, unsigned int, const char *, unsigned long);
const char *mysql_error(MYSQL *);
MYSQL_STMT *mysql_stmt_init(MYSQL *);
int mysql_stmt_prepare(MYSQL_STMT *, const char *, unsigned long);
int mysql_stmt_execute(MYSQL_STMT *);
int mysql_stmt_fetch(MYSQL_STMT *);
const char *mysql_stmt_error(MYSQL_STMT *);
int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: floor HOST PORT DATABASE QUERY\n"); return 2; }
  MYSQL *conn = mysql_init(NULL);
  if (!mysql_real_connect(conn, argv[1], "root", "", argv[3], (unsigned)atoi(argv[2]), NULL, 0)) { fprintf(stderr, "%s\n", mysql_error(conn)); return 1; }
  MYSQL_STMT *stmt = mysql_stmt_init(conn);
  if (mysql_stmt_prepare(stmt, argv[4], strlen(argv[4])) || mysql_stmt_execute(stmt)) { fprintf(stderr, "%s\n", mysql_stmt_error(stmt)); return 1; }
  long rows = 0; int rc;
  while ((rc = mysql_stmt_fetch(stmt)) == 0 || rc == 101) rows++;
  if (rc != 100) { fprintf(stderr, "fetch: %d %s\n", rc, mysql_stmt_error(stmt)); return 1; }
  printf("%ld\n", rows);
  return 0;
}
