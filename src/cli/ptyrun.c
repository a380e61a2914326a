/*
 * ptyrun.c - runs a command on a pseudo-terminal, driven by a script on
 * stdin; used by spec/cli to test mydb-lua's interactive mode as a person
 * at a terminal would (readline, Ctrl-C, Ctrl-D, TAB).
 *
 *   ptyrun CMD [ARGS...] < script
 *
 * Script lines (TEXT takes C escapes: \n \r \t \\ \xHH, so ^C is \x03):
 *   send TEXT      write TEXT to the terminal
 *   expect TEXT    wait (5 s at most) until the output since the last
 *                  expect holds TEXT
 *   sleep MS       wait MS milliseconds, reading output
 *   wait           wait (5 s at most) for the command to exit
 * Everything the command wrote goes to stdout. Exit status: the command's
 * (128+N if killed by signal N), or 124 when an expect or wait timed out
 * (the reason on stderr), 125 on a usage or system error.
 *
 * The terminal has NOFLSH set, so that output the command wrote before a
 * Ctrl-C is not thrown away by the line discipline (a race on two CPUs).
 * A test tool, not installed.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 5000

static int master = -1;
static pid_t child = -1;
static char *out = NULL; /* everything read */
static size_t outlen = 0, outcap = 0, mark = 0;
static int child_done = 0, child_status = 0;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void append(const char *p, size_t n) {
  if (outlen + n + 1 > outcap) {
    size_t cap = outcap ? outcap * 2 : 4096;
    while (cap < outlen + n + 1) cap *= 2;
    char *q = realloc(out, cap);
    if (q == NULL) {
      perror("ptyrun: realloc");
      exit(125);
    }
    out = q;
    outcap = cap;
  }
  memcpy(out + outlen, p, n);
  outlen += n;
  out[outlen] = '\0';
}

/* Reads what is available within ms milliseconds; 0 at end of output. */
static int pump(int ms) {
  struct pollfd pfd = {master, POLLIN, 0};
  int r = poll(&pfd, 1, ms);
  if (r < 0) return errno == EINTR ? 1 : 0;
  if (r == 0) return 1;
  char buf[4096];
  ssize_t n = read(master, buf, sizeof buf);
  if (n <= 0) return 0; /* EIO: the child closed the terminal */
  append(buf, (size_t)n);
  return 1;
}

static void reap(int block) {
  if (child_done) return;
  int st;
  pid_t r = waitpid(child, &st, block ? 0 : WNOHANG);
  if (r == child) {
    child_done = 1;
    child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
}

static size_t unescape(const char *s, char *d) {
  size_t n = 0;
  while (*s) {
    if (*s == '\\' && s[1]) {
      s++;
      switch (*s) {
        case 'n': d[n++] = '\n'; break;
        case 'r': d[n++] = '\r'; break;
        case 't': d[n++] = '\t'; break;
        case 'x': {
          char hex[3] = {0, 0, 0};
          if (s[1] && s[2]) {
            hex[0] = s[1];
            hex[1] = s[2];
            s += 2;
          }
          d[n++] = (char)strtol(hex, NULL, 16);
          break;
        }
        default: d[n++] = *s;
      }
      s++;
    } else {
      d[n++] = *s++;
    }
  }
  return n;
}

static void finish(int code, const char *why, const char *what) {
  fwrite(out ? out : "", 1, outlen, stdout);
  fflush(stdout);
  if (why) fprintf(stderr, "ptyrun: %s%s\n", why, what ? what : "");
  if (!child_done) {
    kill(child, SIGKILL);
    reap(1);
  }
  free(out);
  exit(code);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ptyrun CMD [ARGS...] < script\n");
    return 125;
  }
  struct winsize ws = {24, 80, 0, 0};
  child = forkpty(&master, NULL, NULL, &ws);
  if (child < 0) {
    perror("ptyrun: forkpty");
    return 125;
  }
  if (child == 0) {
    /* NOFLSH: Ctrl-C must not flush output already written by the command
     * (on two CPUs it may have answered the signal before the flush) */
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &t) == 0) {
      t.c_lflag |= NOFLSH;
      tcsetattr(STDIN_FILENO, TCSANOW, &t);
    }
    execvp(argv[1], argv + 1);
    perror("ptyrun: exec");
    _exit(127);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    char *arg = strchr(line, ' ');
    if (arg) *arg++ = '\0';
    else arg = line + n;
    char *text = malloc(strlen(arg) + 1);
    if (text == NULL) finish(125, "out of memory", NULL);
    size_t tl = unescape(arg, text);
    text[tl] = '\0';
    if (strcmp(line, "send") == 0) {
      for (size_t off = 0; off < tl;) {
        ssize_t w = write(master, text + off, tl - off);
        if (w < 0 && errno != EINTR) break;
        if (w > 0) off += (size_t)w;
      }
    } else if (strcmp(line, "expect") == 0) {
      long long end = now_ms() + TIMEOUT_MS;
      int found = 0;
      for (;;) {
        char *hit = outlen > mark ? memmem(out + mark, outlen - mark, text, tl) : NULL;
        if (hit) {
          mark = (size_t)(hit - out) + tl;
          found = 1;
          break;
        }
        if (now_ms() > end || !pump(50)) break;
      }
      if (!found) {
        free(text);
        free(line);
        finish(124, "timed out expecting: ", arg);
      }
    } else if (strcmp(line, "sleep") == 0) {
      long long end = now_ms() + atol(arg);
      while (now_ms() < end && pump((int)(end - now_ms()))) {
      }
    } else if (strcmp(line, "wait") == 0) {
      long long end = now_ms() + TIMEOUT_MS;
      while (pump(50)) {
        reap(0);
        if (child_done || now_ms() > end) break;
      }
      reap(0);
      while (!child_done && now_ms() < end) {
        usleep(10000);
        reap(0);
      }
      if (!child_done) {
        free(text);
        free(line);
        finish(124, "timed out waiting for exit", NULL);
      }
      while (pump(0) && outlen < (1 << 24)) {
        struct pollfd pfd = {master, POLLIN, 0};
        if (poll(&pfd, 1, 0) <= 0) break;
      }
    } else if (line[0] != '\0' && line[0] != '#') {
      free(text);
      free(line);
      finish(125, "unknown script command: ", line);
    }
    free(text);
  }
  free(line);
  finish(child_done ? child_status : 0, NULL, NULL);
  return 0;
}
