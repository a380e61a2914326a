/*
 * test_oom.c - the Lua binding under allocation failures (issue 11 item 8),
 * as SQLite's malloc tests do it: the calls of mydb.core that walk the
 * store or hold core resources run with the N-th allocation of the Lua
 * state failing, for N = 1, 2, ... until a run sees no failure. Each run
 * must end in a result or a clean Lua error, and leave no descriptor open
 * (a directory stream of a walk that a raise interrupted) once the state
 * is closed. The expression sandbox and the codec run the same way. Under `make test-asan` LeakSanitizer also checks that no
 * memory leaks (walk buffers, blobs, journal copies).
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_mydb_core(lua_State *L);

static int failed, passed;
#define CHECK(c)                                                            \
  do {                                                                      \
    if (c) passed++;                                                        \
    else {                                                                  \
      failed++;                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
    }                                                                       \
  } while (0)

/* The allocator: counts allocations (growth) once armed; from the one that
 * takes the countdown to zero on, every growth fails (Lua retries a failed
 * allocation after a full collection, so one failure alone is absorbed). */
typedef struct oom {
  long countdown; /* 0: off */
  int failing;
  long fired;
} oom;

static void *oom_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  oom *o = ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (nsize > (ptr ? osize : 0)) {
    if (o->countdown > 0 && --o->countdown == 0) o->failing = 1;
    if (o->failing) {
      o->fired++;
      return NULL;
    }
  }
  return realloc(ptr, nsize);
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

/* The store, then a function calling each binding call that holds core
 * resources in its own pcall (a failure stops one call, not the rest). */
static const char *SETUP =
    "local core, root, backend, fill = ...\n"
    "local s = core.open(root, {backend = backend, fsync = false})\n"
    "if fill then\n"
    "  for _, t in ipairs({'a', 'b', 'c'}) do\n"
    "    s:tenant_init(t)\n"
    "    local lk = s:lock(t)\n"
    "    local ch = {}\n"
    "    for i = 1, 40 do ch[#ch + 1] = {t .. i, s:write(t, ('v'):rep(i * 37))} end\n"
    "    lk:commit(ch, true)\n"
    "  end\n"
    "  s:write(nil, 'a shared ref')\n"
    "end\n"
    "local d = s:head('a', 'a7')\n"
    "local keep = {}\n"
    "for _, o in ipairs(s:objects('a')) do keep[o] = true end\n"
    "return function()\n"
    "  local r = {}\n"
    "  local calls = {\n"
    "    function() return s:tenants() end,\n"
    "    function() return s:objects('a') end,\n"
    "    function() return s:objects(nil) end,\n"
    "    function() return s:heads('b') end,\n"
    "    function() return s:read('a', d) end,\n"
    "    function() return s:check('a') end,\n"
    "    function() return s:journal('c') end,\n"
    "    function() return s:chain('a', d, 3) end,\n"
    "    function()\n"
    "      local sb = core.sandbox('name .. tags[2] .. #tags', 1 << 20, 10^8, 10^6)\n"
    "      local r = { sb:eval({ name = ('n'):rep(50), tags = { 'a', ('b'):rep(90) } }) }\n"
    "      r[#r + 1] = sb:eval({ name = 'm', tags = { 'x', 'y' } })\n"
    "      return r\n"
    "    end,\n"
    "    function() return core.decode(core.encode({ a = { 1, 2, { b = 'c' } }, d = ('e'):rep(70) })) end,\n"
    "    function()\n"
    "      local lk = s:lock('a')\n"
    "      local a, b = s:gc_begin('a')\n"
    "      local st = s:gc_sweep('a', a, b, keep)\n"
    "      lk:release()\n"
    "      return st\n"
    "    end,\n"
    "  }\n"
    "  for i, f in ipairs(calls) do r[i] = pcall(f) end\n"
    "  s:close()\n"
    "  return r\n"
    "end\n";

/* One state: opens the store, arms the allocator to fail the n-th
 * allocation of the calls, runs them, closes. Returns the failures
 * injected (0: n was past the last allocation). */
static long run_once(const char *root, const char *backend, int fill, long n) {
  oom o = {0, 0, 0};
  lua_State *L = lua_newstate(oom_alloc, &o);
  if (!L) return -1;
  luaL_openlibs(L);
  luaL_requiref(L, "mydb.core", luaopen_mydb_core, 0);
  if (luaL_loadstring(L, SETUP) != LUA_OK) {
    fprintf(stderr, "setup: %s\n", lua_tostring(L, -1));
    exit(2);
  }
  lua_insert(L, -2);
  lua_pushstring(L, root);
  lua_pushstring(L, backend);
  lua_pushboolean(L, fill);
  if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
    fprintf(stderr, "setup: %s\n", lua_tostring(L, -1));
    exit(2);
  }
  o.countdown = n;
  int status = lua_pcall(L, 0, 1, 0);
  o.countdown = 0;
  o.failing = 0;
  /* a memory error in the runner itself is a clean end too */
  if (status != LUA_OK && status != LUA_ERRMEM) {
    fprintf(stderr, "run %ld: status %d: %s\n", n, status, lua_tostring(L, -1));
    failed++;
  }
  lua_close(L);
  return o.fired;
}

static void walk(const char *backend) {
  char root[PATH_MAX];
  snprintf(root, sizeof root, "%s/mydb-oom-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           backend);
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    exit(2);
  }
  CHECK(run_once(root, backend, 1, 0) == 0);
  int fds = open_fds();
  long n = 1, runs = 0;
  int before = failed;
  for (; n < 100000; n++, runs++) {
    long fired = run_once(root, backend, 0, n);
    CHECK(fired >= 0);
    if (fired == 0) break;
    int now = open_fds();
    if (now != fds) {
      fprintf(stderr, "%s: failing allocation %ld left %d descriptors open\n", backend, n,
              now - fds);
      failed++;
      fds = now;
    }
  }
  CHECK(n < 100000 && runs > 50);
  printf("  %s: %ld runs, from the n-th allocation on failing in each; %s\n", backend, runs,
         failed == before ? "no descriptor left open" : "FAILED");
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

int main(void) {
  walk("loose");
  walk("pack");
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
