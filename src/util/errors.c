/*
 * errors.c - the thread-local error message and the code names.
 * Messages are never printed; callers fetch them with mydb_errmsg().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define ERRBUF_SIZE 512

static _Thread_local char errbuf[ERRBUF_SIZE];

const char *mydb_errmsg(void) { return errbuf[0] ? errbuf : "no error"; }

const char *mydb_errcode_name(int code) {
  switch (code) {
    case MYDB_OK: return "ok";
    case MYDB_EINVAL: return "invalid_argument";
    case MYDB_ENOTINIT: return "not_initialized";
    case MYDB_ENOTFOUND: return "not_found";
    case MYDB_ECORRUPT: return "corrupt";
    case MYDB_EIO: return "io";
    case MYDB_ENOMEM: return "out_of_memory";
    case MYDB_ECLOSED: return "closed";
    case MYDB_ECONFLICT: return "conflict";
    default: return "unknown";
  }
}

int mydb__seterr(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  if (n < 0) snprintf(errbuf, sizeof errbuf, "%s", mydb_errcode_name(code));
  return code;
}

/* strerror(3) is not thread-safe; use the reentrant variant. */
static const char *errstr(int err, char *buf, size_t len) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(err, buf, len); /* GNU: returns a string */
#else
  if (strerror_r(err, buf, len) != 0) snprintf(buf, len, "errno %d", err);
  return buf;
#endif
}

int mydb__syserr(int err, const char *op, const char *path) {
  char eb[128];
  int code = err == ENOMEM ? MYDB_ENOMEM : MYDB_EIO;
  return mydb__seterr(code, "%s %s: %s", op, path ? path : "",
                      errstr(err, eb, sizeof eb));
}
