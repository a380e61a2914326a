#include "internal.h"
int mydb__backend_pack(mydb *db, mydb_backend **out) {
  (void)db; (void)out;
  return mydb__seterr(MYDB_EINVAL, "pack: not yet");
}
