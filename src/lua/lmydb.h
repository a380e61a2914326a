/*
 * lmydb.h - shared pieces of the Lua binding (mydb.core).
 */
#ifndef LMYDB_H
#define LMYDB_H

#include <lua.h>

#define LMYDB_ERROR_MT "mydb.error"

/* Raises a mydb error value {code = code, message = formatted}. Never returns. */
int lmydb_error(lua_State *L, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Pushes (without raising) a mydb error value. */
void lmydb_push_error(lua_State *L, const char *code, const char *msg);

/* Registers the codec functions into the table at the top of the stack. */
void lmydb_open_codec(lua_State *L);
/* Adds core.sandbox and core.cputime (lsandbox.c) to the table on top. */
void lmydb_open_sandbox(lua_State *L);

#endif
