/*
 * lsandbox.c - untrusted expressions (filters, expression indexes) in an
 * interpreter state of their own, under a memory, a time and an
 * instruction budget.
 *
 * Why a separate lua_State: a budget that the host state enforces with a
 * hook cannot see what C functions do, and cannot cap memory at all. Here
 * each compiled expression owns a state made with lua_newstate and a
 * counting allocator that refuses to grow past the memory budget, so an
 * expression that builds too much fails with a memory error inside its own
 * state, while the host's state, its hooks (mydb-lua's Ctrl-C hook) and
 * its memory are never touched.
 *
 * What the state holds: no base library (no pcall, load, print, _G...),
 * only the string functions, reached as methods (s:match(...)) through the
 * string metatable, some of them replaced by versions that charge their
 * true cost to the budgets BEFORE they work (rep, the pattern functions,
 * upper/lower/reverse). The expression's environment is a table whose
 * __index copies the record's field from the host state, raw (no host
 * metamethod ever runs), lazily (only the fields read), with tables copied
 * deeply (cycles kept) and each copied element charged.
 *
 * The budgets of one evaluation:
 *   memory        bytes the state may hold, the compiled chunk included
 *   instructions  VM instructions, plus the units charged by C functions
 *   time          thread CPU time, checked by the count hook and, every
 *                 MiB allocated, by the allocator (one concatenation of
 *                 two large strings is one instruction); the clock starts
 *                 at the first check (past_deadline)
 * Exceeding one stops the evaluation and says which.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmydb.h"

#define SANDBOX_MT "mydb.sandbox"
#define SANDBOX_MIN_MEMORY (64 * 1024)
#define HOOK_EVERY 1000              /* VM instructions between two hooks */
#define ALLOC_CHECK_BYTES (1u << 20) /* allocated bytes between time checks */
#define COPY_DEPTH_MAX 64

enum exceeded { EX_NONE, EX_MEMORY, EX_TIME, EX_INSTRUCTIONS };

typedef struct sandbox {
  lua_State *S;         /* the sandbox's own state; NULL once closed */
  size_t used, peak, limit;
  size_t alloc_since_check;
  long long instructions, instr_limit;
  long long time_ns;    /* the time budget of one evaluation */
  long long deadline;   /* thread CPU ns at which this evaluation stops;
                           0 until its first check (see past_deadline) */
  int running;          /* inside eval: budgets are enforced */
  int exceeded;         /* enum exceeded */
  lua_State *H;         /* the host state during eval */
  int host_record;      /* the record's index in H during eval */
} sandbox;

static long long cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Whether this evaluation is past its time budget. The clock is read
 * lazily: reading the thread's CPU time is a system call (a microsecond
 * on a virtual machine, more than a simple filter costs), so the first
 * check of an evaluation (its first hook, or its first MiB allocated)
 * starts its clock. What runs before is bounded by the instruction budget
 * (1,000 instructions and the units C functions charged). */
static int past_deadline(sandbox *sb) {
  long long now = cpu_now();
  if (sb->deadline == 0) sb->deadline = now + sb->time_ns;
  return now > sb->deadline;
}

/* The counting allocator. Only growth is refused: Lua assumes that
 * freeing and shrinking never fail. A refusal makes Lua collect garbage
 * and try again before it raises a memory error. */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  sandbox *sb = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    sb->used -= old;
    return NULL;
  }
  if (nsize > old) {
    size_t grow = nsize - old;
    if (grow > sb->limit || sb->used > sb->limit - grow) return NULL;
    if (sb->running) {
      sb->alloc_since_check += grow;
      if (sb->alloc_since_check >= ALLOC_CHECK_BYTES) {
        sb->alloc_since_check = 0;
        if (past_deadline(sb)) sb->exceeded = EX_TIME;
      }
      if (sb->exceeded == EX_TIME) return NULL;
    }
  }
  void *p = realloc(ptr, nsize);
  if (p == NULL) return NULL;
  sb->used = sb->used - old + nsize;
  if (sb->used > sb->peak) sb->peak = sb->used;
  return p;
}

static sandbox *sb_of(lua_State *S) {
  void *ud;
  lua_getallocf(S, &ud);
  return ud;
}

/* Raises in S the error of a budget, remembering which one it was (the
 * message itself may not fit in memory: the flag is what counts). */
static int budget_error(lua_State *S, sandbox *sb, int which) {
  sb->exceeded = which;
  return luaL_error(S, "budget exceeded");
}

/* Charges units of work to the instruction budget. */
static void charge(lua_State *S, double units) {
  sandbox *sb = sb_of(S);
  if (units >= (double)(sb->instr_limit - sb->instructions)) {
    sb->instructions = sb->instr_limit;
    budget_error(S, sb, EX_INSTRUCTIONS);
  }
  sb->instructions += (long long)units;
  /* Large work inside one C call runs where no hook can stop it: it is
   * held against the time left too (a C loop does at most about one unit
   * a nanosecond), else a caller's large instruction budget would let it
   * run past the time budget. */
  if (units > 1e5 && (past_deadline(sb) || units > (double)(sb->deadline - cpu_now())))
    budget_error(S, sb, EX_TIME);
}

static void hook(lua_State *S, lua_Debug *ar) {
  (void)ar;
  sandbox *sb = sb_of(S);
  if (!sb->running) return;
  sb->instructions += HOOK_EVERY;
  if (sb->instructions > sb->instr_limit) budget_error(S, sb, EX_INSTRUCTIONS);
  if (sb->exceeded == EX_TIME || past_deadline(sb)) budget_error(S, sb, EX_TIME);
}

/* ---- bounded string functions (the originals are upvalue 1) ---------- */

static int call_original(lua_State *S) {
  int n = lua_gettop(S);
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, n, LUA_MULTRET);
  return lua_gettop(S);
}

/* rep: the C loop runs n times even over an empty string, so n itself is
 * charged (one unit per copy, plus one per 64 bytes), and a result larger
 * than the memory left is refused before anything is built. */
static int sb_rep(lua_State *S) {
  size_t l, lsep;
  luaL_checklstring(S, 1, &l);
  lua_Integer n = luaL_checkinteger(S, 2);
  luaL_optlstring(S, 3, "", &lsep);
  if (n > 0) {
    sandbox *sb = sb_of(S);
    double bytes = ((double)l + (double)lsep) * (double)n;
    if (bytes > (double)(sb->limit - sb->used)) budget_error(S, sb, EX_MEMORY);
    charge(S, (double)n + bytes / 64);
  }
  return call_original(S);
}

/* Patterns backtrack: with q quantifiers a match tried at every start
 * position of a subject of length l can take about (l + 1) ^ (q + 1)
 * steps, all inside C. That worst case is charged before the match runs,
 * so a pattern that could run away is refused, and a plain find costs its
 * length. */
static double pattern_cost(const char *p, size_t lp, size_t ls) {
  int q = 0;
  for (size_t i = 0; i < lp; i++) {
    if (p[i] == '%') {
      if (i + 1 < lp && (p[i + 1] == 'b' || p[i + 1] == 'f')) q++;
      i++;
    } else if (p[i] == '*' || p[i] == '+' || p[i] == '-' || p[i] == '?') {
      q++;
    }
  }
  double cost = 1, base = (double)ls + 1;
  for (int k = 0; k <= q && cost < 1e18; k++) cost *= base;
  return cost + (double)lp;
}

static int sb_pattern(lua_State *S) {
  size_t ls = 0, lp = 0;
  if (lua_type(S, 1) == LUA_TSTRING && lua_type(S, 2) == LUA_TSTRING) {
    lua_tolstring(S, 1, &ls);
    const char *p = lua_tolstring(S, 2, &lp);
    int plain = lua_toboolean(S, lua_upvalueindex(2)) && lua_toboolean(S, 4);
    charge(S, plain ? (double)ls + (double)lp : pattern_cost(p, lp, ls));
  }
  return call_original(S);
}

/* Linear in the subject: a unit per 64 bytes. */
static int sb_linear(lua_State *S) {
  size_t l = 0;
  if (lua_type(S, 1) == LUA_TSTRING) lua_tolstring(S, 1, &l);
  charge(S, (double)l / 64);
  return call_original(S);
}

static void wrap_string(lua_State *S, const char *name, lua_CFunction f, int plain_arg) {
  lua_getfield(S, -1, name);
  if (f == sb_pattern) {
    lua_pushboolean(S, plain_arg);
    lua_pushcclosure(S, f, 2);
  } else {
    lua_pushcclosure(S, f, 1);
  }
  lua_setfield(S, -2, name);
}

/* ---- the record, copied from the host on demand ---------------------- */

static void copy_value(lua_State *S, sandbox *sb, int hidx, int depth);

/* Copies the table at hidx of H into S, raw, deeply; the copies made in
 * this evaluation are kept in the table at S's upvalue (host pointer ->
 * copy), so shared and cyclic tables stay shared. */
static void copy_table(lua_State *S, sandbox *sb, int hidx, int depth) {
  lua_State *H = sb->H;
  if (depth > COPY_DEPTH_MAX) luaL_error(S, "record nested deeper than %d levels", COPY_DEPTH_MAX);
  void *id = (void *)(uintptr_t)lua_topointer(H, hidx); /* a key only */
  lua_pushlightuserdata(S, id);
  if (lua_rawget(S, lua_upvalueindex(1)) == LUA_TTABLE) return;
  lua_pop(S, 1);
  lua_newtable(S);
  lua_pushlightuserdata(S, id);
  lua_pushvalue(S, -2);
  lua_rawset(S, lua_upvalueindex(1));
  if (!lua_checkstack(H, 3)) luaL_error(S, "the host's stack is full");
  luaL_checkstack(S, 4, "record copy");
  lua_pushnil(H);
  while (lua_next(H, hidx) != 0) {
    int kt = lua_type(H, -2);
    if (kt == LUA_TSTRING || kt == LUA_TNUMBER || kt == LUA_TBOOLEAN) {
      charge(S, 1);
      copy_value(S, sb, lua_absindex(H, -2), depth + 1);
      copy_value(S, sb, lua_absindex(H, -1), depth + 1);
      lua_rawset(S, -3);
    }
    lua_pop(H, 1);
  }
}

/* Pushes on S a copy of H's value at hidx: nil for what cannot cross
 * (functions, userdata, threads). */
static void copy_value(lua_State *S, sandbox *sb, int hidx, int depth) {
  lua_State *H = sb->H;
  switch (lua_type(H, hidx)) {
  case LUA_TBOOLEAN: lua_pushboolean(S, lua_toboolean(H, hidx)); break;
  case LUA_TNUMBER:
    if (lua_isinteger(H, hidx)) lua_pushinteger(S, lua_tointeger(H, hidx));
    else lua_pushnumber(S, lua_tonumber(H, hidx));
    break;
  case LUA_TSTRING: {
    size_t l;
    const char *s = lua_tolstring(H, hidx, &l);
    charge(S, (double)l / 64);
    lua_pushlstring(S, s, l);
    break;
  }
  case LUA_TTABLE: copy_table(S, sb, hidx, depth); break;
  default: lua_pushnil(S); break;
  }
}

/* In the host, protected: pushes record[key], raw. Arguments: the record
 * and a light userdata pointing at the key (pushing a string key into the
 * host allocates, and a host error must never unwind through the
 * sandbox's frames). */
struct host_key {
  int type;
  const char *s;
  size_t l;
  lua_Integer i;
  lua_Number n;
  int isint;
};

static int host_fetch(lua_State *H) {
  const struct host_key *k = lua_touserdata(H, 2);
  if (k->type == LUA_TSTRING) lua_pushlstring(H, k->s, k->l);
  else if (k->isint) lua_pushinteger(H, k->i);
  else lua_pushnumber(H, k->n);
  lua_rawget(H, 1);
  return 1;
}

/* The environment's __index(env, name): the record's field, raw. */
static int env_index(lua_State *S) {
  sandbox *sb = sb_of(S);
  lua_State *H = sb->H;
  int kt = lua_type(S, 2);
  if (H == NULL || lua_type(H, sb->host_record) != LUA_TTABLE ||
      !(kt == LUA_TSTRING || kt == LUA_TNUMBER)) {
    lua_pushnil(S);
    return 1;
  }
  struct host_key k = {kt, NULL, 0, 0, 0, 0};
  if (kt == LUA_TSTRING) {
    k.s = lua_tolstring(S, 2, &k.l);
  } else {
    k.isint = lua_isinteger(S, 2);
    k.i = lua_tointeger(S, 2);
    k.n = lua_tonumber(S, 2);
  }
  if (!lua_checkstack(H, 8)) return luaL_error(S, "the host's stack is full");
  lua_pushcfunction(H, host_fetch);
  lua_pushvalue(H, sb->host_record);
  lua_pushlightuserdata(H, &k);
  if (lua_pcall(H, 2, 1, 0) != LUA_OK) {
    lua_pop(H, 1);
    return luaL_error(S, "the host is out of memory");
  }
  copy_value(S, sb, lua_gettop(H), 0);
  lua_pop(H, 1);
  return 1;
}

static int env_newindex(lua_State *S) {
  return luaL_error(S, "an expression cannot assign to '%s'", luaL_tolstring(S, 2, NULL));
}

/* ---- building the state ----------------------------------------------- */

/* Runs in S under lua_pcall: libraries, bounded strings, environment,
 * then the expression compiled as a function with that environment
 * (registry key "mydb.expr"). Argument 1 points at the expression's
 * bytes (a struct host_key), so that nothing is allocated unprotected. */
static int setup(lua_State *S) {
  luaL_requiref(S, LUA_STRLIBNAME, luaopen_string, 0); /* sets the string metatable */
  static const char *const patterns[] = {"find", "match", "gmatch", "gsub"};
  for (int i = 0; i < 4; i++) wrap_string(S, patterns[i], sb_pattern, i == 0);
  wrap_string(S, "rep", sb_rep, 0);
  wrap_string(S, "upper", sb_linear, 0);
  wrap_string(S, "lower", sb_linear, 0);
  wrap_string(S, "reverse", sb_linear, 0);
  lua_pushnil(S);
  lua_setfield(S, -2, "dump");
  lua_pop(S, 1);

  lua_newtable(S); /* the environment */
  lua_newtable(S); /* its metatable */
  lua_newtable(S); /* the copies of one evaluation */
  lua_pushvalue(S, -1);
  lua_setfield(S, LUA_REGISTRYINDEX, "mydb.copies");
  lua_pushcclosure(S, env_index, 1);
  lua_setfield(S, -2, "__index");
  lua_pushcfunction(S, env_newindex);
  lua_setfield(S, -2, "__newindex");
  lua_pushboolean(S, 0);
  lua_setfield(S, -2, "__metatable");
  lua_setmetatable(S, -2);

  const struct host_key *e = lua_touserdata(S, 1);
  const char *expr = e->s;
  size_t l = e->l;
  luaL_Buffer b;
  luaL_buffinit(S, &b);
  luaL_addstring(&b, "return (");
  luaL_addlstring(&b, expr, l);
  luaL_addstring(&b, "\n)");
  luaL_pushresult(&b);
  size_t cl;
  const char *code = lua_tolstring(S, -1, &cl);
  if (luaL_loadbufferx(S, code, cl, "=expression", "t") != LUA_OK) return lua_error(S);
  lua_pushvalue(S, -3); /* the environment becomes the chunk's _ENV */
  lua_setupvalue(S, -2, 1);
  lua_setfield(S, LUA_REGISTRYINDEX, "mydb.expr");
  return 0;
}

static sandbox *check_sandbox(lua_State *L) {
  sandbox *sb = luaL_checkudata(L, 1, SANDBOX_MT);
  if (sb->S == NULL) luaL_error(L, "sandbox is closed");
  return sb;
}

static lua_Integer opt_positive(lua_State *L, int idx, const char *what, lua_Integer dflt) {
  if (lua_isnoneornil(L, idx)) return dflt;
  lua_Integer v = luaL_checkinteger(L, idx);
  if (v <= 0) luaL_error(L, "%s must be positive", what);
  return v;
}

/* core.sandbox(expr, memory_bytes, time_ns, instructions) -> sandbox, or
 * nil, message when the expression does not compile or the budget is too
 * small to hold it. */
static int l_sandbox(lua_State *L) {
  size_t l;
  const char *expr = luaL_checklstring(L, 1, &l);
  lua_Integer memory = opt_positive(L, 2, "memory", 64 << 20);
  lua_Integer time_ns = opt_positive(L, 3, "time", 50000000);
  lua_Integer instr = opt_positive(L, 4, "instructions", 1000000);
  if (memory < SANDBOX_MIN_MEMORY) memory = SANDBOX_MIN_MEMORY;
  sandbox *sb = lua_newuserdatauv(L, sizeof *sb, 0);
  memset(sb, 0, sizeof *sb);
  sb->limit = (size_t)memory;
  sb->time_ns = time_ns;
  sb->instr_limit = instr;
  luaL_setmetatable(L, SANDBOX_MT);
  lua_State *S = lua_newstate(sb_alloc, sb);
  if (S == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "the memory budget cannot hold an interpreter");
    return 2;
  }
  sb->S = S;
  struct host_key e = {LUA_TSTRING, expr, l, 0, 0, 0};
  lua_pushcfunction(S, setup);
  lua_pushlightuserdata(S, &e);
  int status = lua_pcall(S, 1, 0, 0);
  if (status != LUA_OK) {
    const char *msg = status == LUA_ERRMEM ? "the memory budget cannot hold the expression"
                                           : lua_tostring(S, -1);
    lua_pushnil(L);
    lua_pushstring(L, msg ? msg : "the expression does not compile");
    lua_close(S);
    sb->S = NULL;
    return 2;
  }
  lua_settop(S, 0);
  lua_sethook(S, hook, LUA_MASKCOUNT, HOOK_EVERY);
  lua_gc(S, LUA_GCCOLLECT);
  lua_pushvalue(L, -1);
  return 1;
}

/* Empties the table of the record's copies (no allocation: rawset of nil
 * into existing slots), leaving S's stack as it was. */
static void clear_copies(lua_State *S) {
  lua_getfield(S, LUA_REGISTRYINDEX, "mydb.copies");
  if (lua_type(S, -1) == LUA_TTABLE) {
    lua_pushnil(S);
    while (lua_next(S, -2) != 0) {
      lua_pop(S, 1);
      lua_pushvalue(S, -1);
      lua_pushnil(S);
      lua_rawset(S, -4);
    }
  }
  lua_pop(S, 1);
}

static int eval_in_sandbox(lua_State *S) {
  lua_getfield(S, LUA_REGISTRYINDEX, "mydb.expr");
  lua_call(S, 0, 1);
  return 1;
}

/* sb:eval(record) -> true, value [, typename]: value is the result when it
 * is nil, a boolean, a number or a string; for any other result it is
 * true and typename names its type. Or false, budget, message: budget is
 * "memory", "time", "instructions" or "error" (the expression raised). */
static int sandbox_eval(lua_State *L) {
  sandbox *sb = check_sandbox(L);
  lua_State *S = sb->S;
  if (sb->running) return luaL_error(L, "sandbox is already evaluating");
  lua_settop(L, 2);
  lua_settop(S, 0); /* a result left by an evaluation whose push raised */
  /* garbage of earlier evaluations must not count against this one */
  if (sb->used > sb->limit / 2) lua_gc(S, LUA_GCCOLLECT);
  sb->H = L;
  sb->host_record = 2;
  sb->instructions = 0;
  sb->exceeded = EX_NONE;
  sb->alloc_since_check = 0;
  sb->deadline = 0;
  sb->running = 1;
  lua_pushcfunction(S, eval_in_sandbox); /* fits: a fresh stack has room */
  int status = lua_pcall(S, 0, 1, 0);
  sb->running = 0;
  sb->H = NULL;
  /* release the record's copies before anything is pushed on L: a push
   * may raise (out of memory), and copies keyed by host pointers must not
   * outlive the evaluation (a later record could reuse an address) */
  clear_copies(S);
  if (status != LUA_OK) lua_gc(S, LUA_GCCOLLECT);
  lua_settop(L, 2);
  int nret;
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    nret = 2;
    switch (lua_type(S, -1)) {
    case LUA_TNIL: lua_pushnil(L); break;
    case LUA_TBOOLEAN: lua_pushboolean(L, lua_toboolean(S, -1)); break;
    case LUA_TNUMBER:
      if (lua_isinteger(S, -1)) lua_pushinteger(L, lua_tointeger(S, -1));
      else lua_pushnumber(L, lua_tonumber(S, -1));
      break;
    case LUA_TSTRING: {
      size_t l;
      const char *s = lua_tolstring(S, -1, &l);
      lua_pushlstring(L, s, l);
      break;
    }
    default:
      lua_pushboolean(L, 1);
      lua_pushstring(L, lua_typename(S, lua_type(S, -1)));
      nret = 3;
    }
  } else {
    int which = sb->exceeded;
    if (which == EX_NONE && status == LUA_ERRMEM) which = EX_MEMORY;
    lua_pushboolean(L, 0);
    static const char *const names[] = {"error", "memory", "time", "instructions"};
    lua_pushstring(L, names[which]);
    const char *msg = which == EX_NONE ? lua_tostring(S, -1) : NULL;
    if (which == EX_NONE && msg == NULL) msg = "the expression raised a non-string error";
    lua_pushstring(L, msg ? msg : "budget exceeded");
    nret = 3;
  }
  lua_settop(S, 0); /* the result */
  return nret;
}

/* sb:stats() -> {used=, peak=, limit=, instructions=} (the last
 * evaluation's instructions and charged units). */
static int sandbox_stats(lua_State *L) {
  sandbox *sb = check_sandbox(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)sb->used);
  lua_setfield(L, -2, "used");
  lua_pushinteger(L, (lua_Integer)sb->peak);
  lua_setfield(L, -2, "peak");
  lua_pushinteger(L, (lua_Integer)sb->limit);
  lua_setfield(L, -2, "limit");
  lua_pushinteger(L, sb->instructions);
  lua_setfield(L, -2, "instructions");
  return 1;
}

static int sandbox_close(lua_State *L) {
  sandbox *sb = luaL_checkudata(L, 1, SANDBOX_MT);
  if (sb->S != NULL && !sb->running) {
    lua_close(sb->S);
    sb->S = NULL;
  }
  return 0;
}

/* core.cputime() -> seconds of CPU time used by this thread. */
static int l_cputime(lua_State *L) {
  lua_pushnumber(L, (lua_Number)cpu_now() / 1e9);
  return 1;
}

void lmydb_open_sandbox(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"eval", sandbox_eval}, {"stats", sandbox_stats}, {"close", sandbox_close}, {NULL, NULL}};
  luaL_newmetatable(L, SANDBOX_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, sandbox_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, sandbox_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_sandbox);
  lua_setfield(L, -2, "sandbox");
  lua_pushcfunction(L, l_cputime);
  lua_setfield(L, -2, "cputime");
}
