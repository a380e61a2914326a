/*
 * fuzz_common.h - helpers shared by the libFuzzer targets (fuzz/fuzz.mk).
 */
#ifndef MYDB_FUZZ_COMMON_H
#define MYDB_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Fails the run with a message (libFuzzer saves the input). */
#define FUZZ_ASSERT(cond, ...)                                            \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "fuzz: %s:%d: assertion failed: %s: ", __FILE__,   \
              __LINE__, #cond);                                           \
      fprintf(stderr, __VA_ARGS__);                                       \
      fputc('\n', stderr);                                                \
      abort();                                                            \
    }                                                                     \
  } while (0)

static inline int fuzz_rm_cb(const char *p, const struct stat *st, int flag,
                      struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(p);
}

/* rm -rf p (does not follow symlinks). */
static inline void fuzz_rm_rf(const char *p) {
  nftw(p, fuzz_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new private directory under $TMPDIR, else /dev/shm (a tmpfs: mkdir and
 * open cost microseconds there, hundreds on a disk), else /tmp; removed at
 * exit. */
static char fuzz_tmp[PATH_MAX];
static inline void fuzz_tmp_cleanup(void) {
  if (fuzz_tmp[0]) fuzz_rm_rf(fuzz_tmp);
}
static inline const char *fuzz_tmpdir(const char *name) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(fuzz_tmp, sizeof fuzz_tmp, "%s/mydb-fuzz-%s-XXXXXX", base, name);
  if (!mkdtemp(fuzz_tmp)) {
    perror("mkdtemp");
    abort();
  }
  atexit(fuzz_tmp_cleanup);
  return fuzz_tmp;
}

/* Writes len bytes to path (created or truncated); aborts on failure. */
static inline void fuzz_write_file(const char *path, const void *data, size_t len,
                            int append) {
  int fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC),
                0666);
  FUZZ_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    FUZZ_ASSERT(w > 0, "write %s: %s", path, strerror(errno));
    p += w;
    len -= (size_t)w;
  }
  close(fd);
}

#endif
