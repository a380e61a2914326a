/*
 * test_oom_api.c - allocation-failure injection through the built module (SQLite's
 * malloc tests, applied to mydb.core).
 *
 *   test_oom_api BUILD_DIR SCRIPT [API_STRIDE [CASE]]
 *
 * For each case of SCRIPT (test/test_oom_api.lua) and each backend, runs
 * the case in a fresh lua_State and a fresh store directory for N = 1, 2,
 * 3, ...: the state's allocator fails the N-th allocation after the case
 * calls oom_arm() and every allocation after it (a persistent failure:
 * Lua's emergency collection retries once, so a single refusal would be
 * absorbed). Each run must end with success or a Lua error, then
 * lua_close; no descriptor may stay open (/proc/self/fd is counted before
 * and after), and valgrind or LeakSanitizer (make test-asan) finds any
 * memory a raise stranded. The loop for a case ends with the first N that
 * the case completes without reaching. The "api" case (the Lua API over
 * the core, about 1,200 allocations) steps N by API_STRIDE (default 1) to
 * bound the time under valgrind; the core cases try every N. Prints
 * "N passed, N failed".
 *
 * Beside test/test_oom.c (the binding's objects linked in, the core calls
 * only): this one loads BUILD_DIR/mydb/core.so and BUILD_DIR/lua through
 * package.cpath/path as an application does, runs the Lua API on top
 * (save, load, put, get, history, tenants, verify, gc) on each backend,
 * requires every error after a refusal to be a memory error, and is run
 * under valgrind by `make test-valgrind`.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

typedef struct oom_ctl {
  int armed;
  long count;    /* allocations since armed */
  long fail_at;  /* the first allocation refused */
  int refused;   /* 1 once an allocation was refused */
} oom_ctl;

static void *oom_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  oom_ctl *c = ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  size_t old = ptr ? osize : 0;
  if (c->armed && nsize > old && ++c->count >= c->fail_at) {
    c->refused = 1;
    return NULL;
  }
  return realloc(ptr, nsize);
}

static int l_arm(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  oom_ctl *c = ud;
  c->armed = 1;
  c->count = 0;
  return 0;
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st; (void)flag; (void)f;
  return remove(p);
}

enum outcome { RUN_OK, RUN_ERROR, RUN_BROKEN };

/* One run: returns the outcome; *refused tells whether an allocation was
 * refused (when not, the case ran to its end under this N). */
static int run_case(const char *build, const char *script, const char *backend,
                    const char *casename, const char *dir, long fail_at, int *refused,
                    char *msg, size_t msglen) {
  oom_ctl c = {0, 0, fail_at, 0};
  lua_State *L = lua_newstate(oom_alloc, &c);
  if (!L) { snprintf(msg, msglen, "lua_newstate failed"); return RUN_BROKEN; }
  luaL_openlibs(L);
  lua_pushcfunction(L, l_arm);
  lua_setglobal(L, "oom_arm");
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;;", build, build);
  lua_setfield(L, -2, "path");
  lua_pushfstring(L, "%s/?.so;;", build);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  int rc = luaL_loadfile(L, script);
  int out = RUN_OK;
  if (rc == LUA_OK) {
    lua_pushstring(L, casename);
    lua_pushstring(L, backend);
    lua_pushstring(L, dir);
    rc = lua_pcall(L, 3, 0, 0);
  } else {
    snprintf(msg, msglen, "load: %s", lua_tostring(L, -1));
    out = RUN_BROKEN;
  }
  c.armed = 0;
  if (out == RUN_OK && rc != LUA_OK) {
    /* an error without a refusal is the script's own bug; after one, it
     * must say memory (another error means a memory error was mishandled,
     * e.g. caught and reported as something else) */
    const char *m = luaL_tolstring(L, -1, NULL);
    snprintf(msg, msglen, "%s", m ? m : "?");
    int says_memory = rc == LUA_ERRMEM || strstr(msg, "not enough memory") ||
                      strstr(msg, "out_of_memory");
    out = c.refused && says_memory ? RUN_ERROR : RUN_BROKEN;
    if (getenv("OOM_VERBOSE")) fprintf(stderr, "oom: %s/%s N=%ld: %s\n", casename, backend, fail_at, msg);
  }
  *refused = c.refused;
  lua_close(L);
  return out;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: test_oom_api BUILD_DIR SCRIPT [API_STRIDE [CASE]]\n");
    return 2;
  }
  const char *build = argv[1], *script = argv[2];
  static const char *const cases[] = {"core_listing", "core_read_write", "core_heads_lock",
                                      "core_gc", "core_check_journal", "codec_sandbox", "api",
                                      NULL};
  static const char *const backends[] = {"loose", "pack", "memory", NULL};
  long api_stride = argc > 3 ? atol(argv[3]) : 1;
  if (api_stride < 1) api_stride = 1;
  const char *only = argc > 4 ? argv[4] : NULL;
  /* Kept loaded for the whole run (each lua_close unloads it otherwise),
   * so that valgrind and LeakSanitizer name its functions in a report. */
  char so[4096];
  snprintf(so, sizeof so, "%s/mydb/core.so", build);
  void *keep = dlopen(so, RTLD_NOW | RTLD_NODELETE);
  if (!keep) { fprintf(stderr, "test_oom_api: %s\n", dlerror()); return 2; }
  char base[] = "/tmp/mydb-oom-XXXXXX";
  if (!mkdtemp(base)) { perror("mkdtemp"); return 2; }
  int fds0 = count_fds();
  int pass = 0, fail = 0;
  for (int ci = 0; cases[ci]; ci++) {
    if (only && strcmp(only, cases[ci]) != 0) continue;
    for (int bi = 0; backends[bi]; bi++) {
      if (bi > 0 && strcmp(cases[ci], "codec_sandbox") == 0) break; /* no store */
      long runs = 0, errors = 0;
      int bad = 0;
      long stride = strcmp(cases[ci], "api") == 0 ? api_stride : 1;
      for (long n = 1;; n += stride) {
        char dir[256], msg[512] = "";
        snprintf(dir, sizeof dir, "%s/s%ld", base, n);
        int refused = 0;
        int out = run_case(build, script, backends[bi], cases[ci], dir, n, &refused, msg, sizeof msg);
        runs++;
        int fds = count_fds();
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        if (out == RUN_BROKEN) {
          fprintf(stderr, "oom: %s/%s N=%ld: broken: %s\n", cases[ci], backends[bi], n, msg);
          bad = 1;
        }
        if (fds != fds0) {
          fprintf(stderr, "oom: %s/%s N=%ld: %d descriptor(s) leaked (%s)\n", cases[ci],
                  backends[bi], n, fds - fds0, out == RUN_ERROR ? msg : "run succeeded");
          fds0 = fds; /* report each leak once */
          bad = 1;
        }
        if (out == RUN_ERROR) errors++;
        if (!refused || out == RUN_BROKEN) break;
      }
      printf("oom: %s/%s: %ld runs, %ld ended by a memory error: %s\n", cases[ci], backends[bi],
             runs, errors, bad ? "FAILED" : "clean");
      if (bad) fail++;
      else pass++;
    }
  }
  nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  printf("%d passed, %d failed\n", pass, fail);
  return fail ? 1 : 0;
}
