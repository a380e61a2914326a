/*
 * fsutil.c - EINTR-safe wrappers and the atomic file write.
 *
 * Every descriptor is opened O_CLOEXEC. Files are written to ROOT/.tmp/ and
 * renamed into place, so readers and crashes never see partial files
 * (libgit2's loose-object write; SQLite's fsync-the-directory rule: a rename
 * is only durable once the directory holding it has been fsynced).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int mydb__open(const char *path, int flags, mode_t mode) {
  int fd;
  do fd = open(path, flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

int mydb__write_all(int fd, const void *p, size_t n) {
  const char *s = p;
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) { /* should not happen for regular files */
      errno = EIO;
      return -1;
    }
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

ssize_t mydb__pread_all(int fd, void *p, size_t n, off_t off) {
  char *s = p;
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, s + got, n - got, off + (off_t)got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

int mydb__fsync(int fd) {
  int rc;
  do rc = fsync(fd);
  while (rc < 0 && errno == EINTR);
  return rc;
}

int mydb__fdatasync(int fd) {
  int rc;
  do rc = fdatasync(fd);
  while (rc < 0 && errno == EINTR);
  return rc;
}

int mydb__ftruncate(int fd, off_t len) {
  int rc;
  do rc = ftruncate(fd, len);
  while (rc < 0 && errno == EINTR);
  return rc;
}

int mydb__close(int fd) {
  /* Not retried: on Linux the descriptor is released even on EINTR, and a
   * retry could close a descriptor another thread just opened. */
  return close(fd);
}

int mydb__fsync_dir(const char *path) {
  int fd = mydb__open(path, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0) return -1;
  int rc = mydb__fsync(fd);
  int e = errno;
  mydb__close(fd);
  errno = e;
  return rc;
}

int mydb__mkdir(const char *path, int *created) {
  if (created) *created = 0;
  if (mkdir(path, 0777) == 0) {
    if (created) *created = 1;
    return 0;
  }
  if (errno == EEXIST) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    errno = ENOTDIR;
  }
  return -1;
}

/* ----------------------------------------------------------- temp files */

static atomic_ulong tmp_counter;
static _Thread_local uint64_t rnd_state;

static uint64_t rnd_next(void) {
  if (rnd_state == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rnd_state = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
                ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&rnd_state;
    if (rnd_state == 0) rnd_state = 0x2545f4914f6cdd1dULL;
  }
  uint64_t x = rnd_state; /* xorshift64* */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rnd_state = x;
  return x * 0x2545f4914f6cdd1dULL;
}

int mydb__tmp_create(mydb *db, char *tmp, int extra) {
  char dir[PATH_MAX];
  int rc = mydb__path(db, dir, ".tmp", NULL, NULL);
  if (rc) return rc;
  int made_dir = 0;
  for (int attempt = 0; attempt < 100; attempt++) {
    unsigned long n = atomic_fetch_add(&tmp_counter, 1);
    int w = snprintf(tmp, PATH_MAX, "%s/%ld-%lu-%016llx.tmp", dir,
                     (long)getpid(), n, (unsigned long long)rnd_next());
    if (w < 0 || w >= PATH_MAX)
      return mydb__seterr(MYDB_EINVAL, "path too long: %s", dir);
    int fd = mydb__open(tmp, O_RDWR | O_CREAT | O_EXCL | extra, 0666);
    if (fd >= 0) return fd;
    if (errno == EEXIST) continue;
    if (errno == ENOENT && !made_dir) { /* someone removed ROOT/.tmp */
      made_dir = 1;
      if (mydb__mkdir(dir, NULL) == 0) continue;
    }
    return mydb__syserr(errno, "create temporary file", tmp);
  }
  return mydb__seterr(MYDB_EIO, "create temporary file in %s: too many "
                      "name collisions", dir);
}

/* <pid>-<counter>-<16 hex>.tmp, as made by mydb__tmp_create: its pid, or 0
 * for any other name. */
static long tmp_name_pid(const char *name) {
  char *end;
  if (name[0] < '1' || name[0] > '9') return 0;
  errno = 0;
  long pid = strtol(name, &end, 10);
  if (errno || pid <= 0 || pid > INT_MAX || *end != '-') return 0;
  const char *p = end + 1;
  if (*p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9') p++;
  if (*p++ != '-') return 0;
  for (int i = 0; i < 16; i++, p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return strcmp(p, ".tmp") == 0 ? pid : 0;
}

/* 1 if process pid is gone: no such process, or (Linux) a zombie that
 * nobody reaped yet - it holds no files and writes nothing any more. */
static int pid_gone(long pid) {
  if (kill((pid_t)pid, 0) != 0) return errno == ESRCH;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = mydb__open(path, O_RDONLY, 0);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  mydb__close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *paren = strrchr(buf, ')'); /* "pid (comm) S ..." */
  return paren && paren[1] == ' ' && paren[2] == 'Z';
}

int mydb__tmp_sweep(const char *dir, time_t now) {
  /* O_NOFOLLOW: a ROOT/.tmp replaced by a symlink is not swept (nothing
   * outside ROOT is ever removed). */
  int dfd = mydb__open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  if (dfd < 0) return 0;
  DIR *d = fdopendir(dfd);
  if (!d) {
    mydb__close(dfd);
    return 0;
  }
  long self = (long)getpid();
  int removed = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    long pid = tmp_name_pid(de->d_name);
    if (pid == 0) continue; /* not ours: left alone */
    struct stat st;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    int stale = now - st.st_mtime > MYDB__TMP_STALE;
    /* A live writer's file (this process's included: another handle may
     * be writing it now) stays unless it is stale; a pid may be reused. */
    int dead = pid != self && pid_gone(pid);
    if ((dead || stale) && unlinkat(dfd, de->d_name, 0) == 0) removed++;
  }
  closedir(d); /* closes dfd */
  return removed;
}

int mydb__file_write_atomic(mydb *db, const char *path, size_t dirlen,
                            const void *buf, size_t len, int mkparent,
                            int noreplace) {
  char tmp[PATH_MAX], dir[PATH_MAX];
  int created = 0, rc;
  if (dirlen >= PATH_MAX)
    return mydb__seterr(MYDB_EINVAL, "path too long: %s", path);
  memcpy(dir, path, dirlen);
  dir[dirlen] = '\0';

  int fd = mydb__tmp_create(db, tmp, 0);
  if (fd < 0) return fd;
  if (mydb__write_all(fd, buf, len) != 0) {
    rc = mydb__syserr(errno, "write", tmp);
    goto fail;
  }
  if (db->fsync && mydb__fsync(fd) != 0) {
    rc = mydb__syserr(errno, "fsync", tmp);
    goto fail;
  }
  int crc = mydb__close(fd);
  fd = -1;
  if (crc != 0) {
    rc = mydb__syserr(errno, "close", tmp);
    goto fail;
  }
  if (mkparent && mydb__mkdir(dir, &created) != 0) {
    rc = mydb__syserr(errno, "mkdir", dir);
    goto fail;
  }
  if (noreplace) {
    if (link(tmp, path) != 0 && errno != EEXIST) {
      rc = mydb__syserr(errno, "link", path);
      goto fail;
    }
    unlink(tmp);
  } else if (rename(tmp, path) != 0) {
    rc = mydb__syserr(errno, "rename", path);
    goto fail;
  }
  if (db->fsync) {
    if (mydb__fsync_dir(dir) != 0) return mydb__syserr(errno, "fsync", dir);
    if (created) {
      char *slash = strrchr(dir, '/');
      if (slash && slash != dir) {
        *slash = '\0';
        if (mydb__fsync_dir(dir) != 0)
          return mydb__syserr(errno, "fsync", dir);
      }
    }
  }
  return MYDB_OK;

fail:
  if (fd >= 0) mydb__close(fd);
  unlink(tmp);
  return rc;
}
