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
#include <sys/file.h>
#include <unistd.h>

#include "internal.h"

/* ------------------------------------------------------- fault injection */

/* SQLite's SimulateIOError, for the C tests (STYLE.md 14): while the
 * countdown is positive every system call below counts it down, and the
 * one that takes it to zero fails with EIO instead of running. Off (0) in
 * normal use: one relaxed load per call. */
atomic_long mydb__fault_countdown;
atomic_int mydb__fault_errno;
atomic_int mydb__fault_sticky;
atomic_long mydb__fault_fired;

static int fault(void) {
  if (atomic_load_explicit(&mydb__fault_countdown, memory_order_relaxed) <= 0)
    return 0;
  if (atomic_fetch_sub(&mydb__fault_countdown, 1) != 1) return 0;
  if (atomic_load(&mydb__fault_sticky)) atomic_store(&mydb__fault_countdown, 1);
  atomic_fetch_add(&mydb__fault_fired, 1);
  int e = atomic_load(&mydb__fault_errno);
  errno = e ? e : EIO;
  return 1;
}

int mydb__fault_point(void) { return fault(); }

int mydb__open(const char *path, int flags, mode_t mode) {
  int fd;
  if (fault()) return -1;
  do fd = open(path, flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

int mydb__write_all(int fd, const void *p, size_t n) {
  const char *s = p;
  if (fault()) return -1;
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
  if (fault()) return -1;
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
  if (fault()) return -1;
  do rc = fsync(fd);
  while (rc < 0 && errno == EINTR);
  return rc;
}

int mydb__fdatasync(int fd) {
  int rc;
  if (fault()) return -1;
  do rc = fdatasync(fd);
  while (rc < 0 && errno == EINTR);
  return rc;
}

int mydb__ftruncate(int fd, off_t len) {
  int rc;
  if (fault()) return -1;
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
  if (fault()) return -1;
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

/* ------------------------------------------------ paths below the root */

/* Opens directory dir, which lies below the store's root, walking from the
 * root with openat(O_NOFOLLOW) on every component after it: a symlink
 * planted anywhere below ROOT is never followed (ELOOP). The root itself
 * may be a symlink (the user chose it). With mklast the last component is
 * created when absent (*created, if not NULL, tells). A dir that is not
 * below the root is opened as is. Returns a descriptor, or -1 with errno. */
static int open_dir_below(const mydb *db, const char *dir, int mklast,
                          int *created) {
  size_t rl = db->rootlen;
  if (created) *created = 0;
  if (strncmp(dir, db->root, rl) != 0 || dir[rl] != '/') {
    if (mklast && mydb__mkdir(dir, created) != 0) return -1;
    return mydb__open(dir, O_RDONLY | O_DIRECTORY, 0);
  }
  int fd = mydb__open(rl ? db->root : "/", O_RDONLY | O_DIRECTORY, 0);
  const char *p = dir + rl + 1;
  while (fd >= 0 && *p) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0) { /* "//" */
      p++;
      continue;
    }
    char comp[NAME_MAX + 1];
    if (n > NAME_MAX) {
      mydb__close(fd);
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(comp, p, n);
    comp[n] = '\0';
    p += n;
    while (*p == '/') p++;
    int nfd = -1;
    if (!fault()) {
      do nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      while (nfd < 0 && errno == EINTR);
    }
    if (nfd < 0 && errno == ENOENT && mklast && *p == '\0') {
      if (mkdirat(fd, comp, 0777) == 0) {
        if (created) *created = 1;
      } else if (errno != EEXIST) {
        int e = errno;
        mydb__close(fd);
        errno = e;
        return -1;
      }
      do nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      while (nfd < 0 && errno == EINTR);
    }
    int e = errno;
    if (nfd < 0 && (e == ENOTDIR || e == ELOOP)) {
      /* Linux says ENOTDIR for a symlink opened O_DIRECTORY|O_NOFOLLOW */
      struct stat lst;
      if (fstatat(fd, comp, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode))
        e = ELOOP;
    }
    mydb__close(fd);
    errno = e;
    fd = nfd;
  }
  return fd;
}

/* The error of a failed open_dir_below of dir, for writing what. */
static int below_error(const mydb *db, int err, const char *dir,
                       const char *what) {
  if (err == ELOOP)
    return mydb__seterr(MYDB_EIO, "refusing to write %s: a directory on its "
                        "way below %s is a symlink (mydb never writes "
                        "through a symlink below its root)", what,
                        db->rootlen ? db->root : "/");
  return mydb__syserr(err, "open directory", dir);
}

int mydb__open_below(const mydb *db, const char *path, int flags,
                     mode_t mode) {
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path) return mydb__open(path, flags, mode);
  char dir[PATH_MAX];
  size_t dl = (size_t)(slash - path);
  if (dl >= sizeof dir) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(dir, path, dl);
  dir[dl] = '\0';
  int dfd = open_dir_below(db, dir, 0, NULL);
  if (dfd < 0) return -1;
  int fd = -1;
  if (!fault()) {
    do fd = openat(dfd, slash + 1, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
  }
  int e = errno;
  mydb__close(dfd);
  errno = e;
  return fd;
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
  size_t dl = strlen(dir);
  /* ROOT/.tmp is opened like every directory below the root (never through
   * a symlink), and created again if someone removed it. */
  int dfd = open_dir_below(db, dir, 1, NULL);
  if (dfd < 0) return below_error(db, errno, dir, "a temporary file");
  for (int attempt = 0; attempt < 100; attempt++) {
    unsigned long n = atomic_fetch_add(&tmp_counter, 1);
    int w = snprintf(tmp, PATH_MAX, "%s/%ld-%lu-%016llx.tmp", dir,
                     (long)getpid(), n, (unsigned long long)rnd_next());
    if (w < 0 || w >= PATH_MAX) {
      mydb__close(dfd);
      return mydb__seterr(MYDB_EINVAL, "path too long: %s", dir);
    }
    int fd = -1;
    if (!fault()) {
      do fd = openat(dfd, tmp + dl + 1,
                     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | extra,
                     0666);
      while (fd < 0 && errno == EINTR);
    }
    if (fd >= 0) {
      /* Held until the file is closed: it tells the sweep of another
       * process that this file is being written, where the pid in its
       * name cannot (another PID namespace). A new file: no one else can
       * hold it; where flock is unsupported the sweep goes by the pid. */
      (void)flock(fd, LOCK_EX | LOCK_NB);
      mydb__close(dfd);
      return fd;
    }
    if (errno == EEXIST) continue;
    rc = mydb__syserr(errno, "create temporary file", tmp);
    mydb__close(dfd);
    return rc;
  }
  mydb__close(dfd);
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

/* Whether a writer holds name's lock (mydb__tmp_create takes it): 1 yes,
 * 0 no, -1 cannot tell (flock unsupported, or the file cannot be opened). */
static int tmp_locked(int dfd, const char *name) {
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno == EWOULDBLOCK ? 1 : -1;
  mydb__close(fd); /* releases it */
  return r;
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
    /* A writer that holds the file's lock is alive, whatever its pid
     * says: a container sharing the store has pids of its own. */
    if (tmp_locked(dfd, de->d_name) == 1) continue;
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
                            const void *buf, size_t len, int flags,
                            int noreplace) {
  char tmp[PATH_MAX], dir[PATH_MAX];
  int created = 0, rc, dfd = -1;
  struct stat st;
  if (dirlen >= PATH_MAX)
    return mydb__seterr(MYDB_EINVAL, "path too long: %s", path);
  memcpy(dir, path, dirlen);
  dir[dirlen] = '\0';
  const char *name = path + dirlen + 1;

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
  if ((flags & MYDB__WA_SEAL) && fstat(fd, &st) != 0) {
    rc = mydb__syserr(errno, "fstat", tmp);
    goto fail;
  }
  int crc = mydb__close(fd);
  fd = -1;
  if (crc != 0) {
    rc = mydb__syserr(errno, "close", tmp);
    goto fail;
  }
  /* The target directory, reached without following any symlink below the
   * root (created when mkparent); the file is linked or renamed into it
   * relative to that descriptor. */
  dfd = open_dir_below(db, dir, flags & MYDB__WA_MKPARENT, &created);
  if (dfd < 0) {
    rc = below_error(db, errno, dir, path);
    goto fail;
  }
  if (noreplace) {
    if ((fault() || linkat(AT_FDCWD, tmp, dfd, name, 0) != 0) && errno != EEXIST) {
      rc = mydb__syserr(errno, "link", path);
      goto fail;
    }
    unlink(tmp);
  } else if (fault() || renameat(AT_FDCWD, tmp, dfd, name) != 0) {
    rc = mydb__syserr(errno, "rename", path);
    goto fail;
  }
  rc = MYDB_OK;
  if (db->fsync) {
    if (mydb__fsync(dfd) != 0) {
      rc = mydb__syserr(errno, "fsync", dir);
    } else if (created) {
      char *slash = strrchr(dir, '/');
      if (slash && slash != dir) {
        *slash = '\0';
        int pfd = open_dir_below(db, dir, 0, NULL);
        if (pfd < 0 || mydb__fsync(pfd) != 0) rc = mydb__syserr(errno, "fsync", dir);
        if (pfd >= 0) mydb__close(pfd);
      }
    }
    /* Durable now, name and bytes: say so to deduplicating writers. */
    if (rc == MYDB_OK && (flags & MYDB__WA_SEAL))
      (void)fchmodat(dfd, name, st.st_mode & 07555, 0);
  }
  mydb__close(dfd);
  return rc;

fail:
  if (fd >= 0) mydb__close(fd);
  if (dfd >= 0) mydb__close(dfd);
  unlink(tmp);
  return rc;
}

int mydb__make_durable(const char *path, size_t dirlen,
                       mode_t mode) {
  char dir[PATH_MAX];
  if (dirlen >= PATH_MAX)
    return mydb__seterr(MYDB_EINVAL, "path too long: %s", path);
  memcpy(dir, path, dirlen);
  dir[dirlen] = '\0';
  int fd = mydb__open(path, O_RDONLY | O_NOFOLLOW, 0);
  if (fd < 0) return mydb__syserr(errno, "open", path);
  int rc = mydb__fsync(fd);
  mydb__close(fd);
  if (rc != 0) return mydb__syserr(errno, "fsync", path);
  if (mydb__fsync_dir(dir) != 0) return mydb__syserr(errno, "fsync", dir);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (mydb__fsync_dir(dir) != 0) return mydb__syserr(errno, "fsync", dir);
  }
  (void)chmod(path, mode & 07555);
  return MYDB_OK;
}
