/*
 * fsutil.h - EINTR-safe system call wrappers and atomic file writes.
 * The raw wrappers return -1 with errno set; the mydb__file_* functions set
 * the error message and return a MYDB_E* code.
 */
#ifndef MYDB_FSUTIL_H
#define MYDB_FSUTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct mydb;

/* Fault injection for tests: while positive, each system call of the
 * wrappers below counts it down, and the one that takes it to zero fails
 * with EIO (0, the default, is off). See fsutil.c. */
extern atomic_long mydb__fault_countdown;
/* The errno of an injected failure (0, the default: EIO), e.g. ENOSPC. */
extern atomic_int mydb__fault_errno;
/* Nonzero: once the countdown reaches zero every later call fails too (a
 * disk that stays broken), until the countdown is set to 0. */
extern atomic_int mydb__fault_sticky;
/* The injected failures so far (tests reset it). */
extern atomic_long mydb__fault_fired;
/* One fault-injection point for system calls made outside fsutil.c (the
 * pack backend's pwritev): 1 (errno set) when this call is to fail. */
int mydb__fault_point(void);

/* open(2) with O_CLOEXEC added, retried on EINTR. */
int mydb__open(const char *path, int flags, mode_t mode);
/* Writes all n bytes (loops on short writes and EINTR). 0 or -1. */
int mydb__write_all(int fd, const void *p, size_t n);
/* Reads up to n bytes at off (loops until n or EOF). Bytes read, or -1. */
ssize_t mydb__pread_all(int fd, void *p, size_t n, off_t off);
int mydb__fsync(int fd);     /* EINTR-safe fsync */
int mydb__fdatasync(int fd); /* EINTR-safe fdatasync */
int mydb__ftruncate(int fd, off_t len);
/* close(2); deliberately not retried on EINTR (the fd is gone on Linux). */
int mydb__close(int fd);
/* fsync of a directory; 0 or -1. */
int mydb__fsync_dir(const char *path);
/* mkdir(path, 0777); EEXIST is success. *created (may be NULL) tells
 * whether it was created now. 0 or -1. */
int mydb__mkdir(const char *path, int *created);

/* Opens path, a file below the store's root, like mydb__open but without
 * following a symlink anywhere below the root (every directory after the
 * root is opened with O_NOFOLLOW, then the file too): -1 with errno ELOOP
 * when one is there. For every file mydb writes. */
int mydb__open_below(const struct mydb *db, const char *path, int flags,
                     mode_t mode);

/* Creates a new temporary file ROOT/.tmp/<pid>-<counter>-<random>.tmp
 * (O_CREAT|O_EXCL, mode 0666 & ~umask) opened with O_RDWR|extra, and
 * flock(LOCK_EX)ed until it is closed (see mydb__tmp_sweep). Its path
 * goes to tmp[PATH_MAX]. Returns the fd, or a negative MYDB_E* code. Never
 * through a symlink below the root (MYDB_EIO). */
int mydb__tmp_create(struct mydb *db, char *tmp, int extra);

/* Seconds after which a temporary file is stale whatever its pid. */
#define MYDB__TMP_STALE 3600
/* Removes the temporary files that writers which died left in dir
 * (ROOT/.tmp): files named <pid>-<counter>-<random>.tmp that no writer
 * holds locked (mydb__tmp_create locks each file it makes until it is
 * closed) and whose process is gone (kill(pid, 0) fails with ESRCH, or it
 * is a zombie) or that are older than MYDB__TMP_STALE seconds (at now). Only regular files
 * with that name form; symlinks are not followed (nor dir, if it is one).
 * Best effort, errors ignored. Returns the number of files removed. */
int mydb__tmp_sweep(const char *dir, time_t now);

/* Flags of mydb__file_write_atomic. */
#define MYDB__WA_MKPARENT 1 /* mkdir the parent (its first dirlen bytes) */
#define MYDB__WA_SEAL 2     /* once durable, drop the write bits: see below */

/* Atomically installs buf as path: temp file, write, fsync (db->fsync),
 * close, mkdir of the parent with MYDB__WA_MKPARENT, rename (or, with
 * noreplace, link + unlink: an existing file is kept), fsync of the
 * directory (db->fsync). Cleans up on every failure. Never writes through a
 * symlink below the root (MYDB_EIO, nothing left behind).
 *
 * MYDB__WA_SEAL makes the file read-only after the directory fsync
 * succeeded (git's loose objects are read-only too): a read-only file is
 * durable, name and bytes. A writable one may still be on its way (another
 * writer between its rename and its directory fsync, or one that died
 * there, or one running with fsync off); mydb__make_durable finishes it. */
int mydb__file_write_atomic(struct mydb *db, const char *path, size_t dirlen,
                            const void *buf, size_t len, int flags,
                            int noreplace);

/* Makes an existing file durable whoever wrote it: fsync of the file, of
 * its directory (path's first dirlen bytes) and of that directory's parent
 * (the directory may be new), then drops the write bits of mode (best
 * effort: the file may belong to another user). For a deduplicating writer
 * that found the file there: its commit must not become durable before the
 * object it names. */
int mydb__make_durable(const char *path, size_t dirlen,
                       mode_t mode);

#endif
