/*
 * fuzz_expr.c - libFuzzer target: untrusted expressions (filters and
 * expression indexes) in the sandbox of src/lua/lsandbox.c.
 *
 * The input is an expression. It is compiled with small budgets (4 MiB,
 * 20 ms of CPU, 200,000 instructions) and evaluated three times against a
 * record with nested, shared and cyclic tables, then against a record that
 * is not a table. Oracles:
 *   - nothing crashes, leaks or trips ASan/UBSan; libFuzzer's -timeout and
 *     -rss_limit_mb catch an evaluation that escapes its budgets;
 *   - compiling either gives a sandbox or nil and a message;
 *   - an evaluation returns true and a plain value (nil, boolean, number,
 *     string; or true and a type name), or false, a budget name ("memory",
 *     "time", "instructions", "error") and a message;
 *   - the sandbox's peak memory never passes its budget, and after an
 *     evaluation that ran out its memory is given back;
 *   - one evaluation takes at most a second of CPU (50 times its budget,
 *     for sanitizer slowdowns), the host state is unchanged.
 */
#include "fuzz_lua.h"

static const char driver[] =
    "local core = ...\n"
    "local MEM = 4 << 20\n"
    "local KINDS = { memory = true, time = true, instructions = true, error = true }\n"
    "local PLAIN = { ['nil'] = true, boolean = true, number = true, string = true }\n"
    "local function bug(fmt, ...) error('FUZZ-BUG: ' .. fmt:format(...), 0) end\n"
    "local shared = { city = 'Oslo', zip = 1 }\n"
    "local record = { name = 'Jane', age = 34, tags = { 'a', 'b' }, addr = shared,\n"
    "                 home = shared, text = ('ab'):rep(100), [1] = 'one', f = print }\n"
    "record.self = record\n"
    "return function(expr)\n"
    "  local sb, err = core.sandbox(expr, MEM, 20000000, 200000)\n"
    "  if not sb then\n"
    "    if type(err) ~= 'string' then bug('compile: message is a %s', type(err)) end\n"
    "    return\n"
    "  end\n"
    "  for i = 1, 4 do\n"
    "    local t0 = core.cputime()\n"
    "    local ok, a, b = sb:eval(i < 4 and record or 42)\n"
    "    local spent = core.cputime() - t0\n"
    "    if spent > 1 then bug('an evaluation took %.2f s of CPU', spent) end\n"
    "    if ok == true then\n"
    "      if b ~= nil and (a ~= true or type(b) ~= 'string') then bug('bad result') end\n"
    "      if b == nil and not PLAIN[type(a)] then bug('result is a %s', type(a)) end\n"
    "    elseif ok == false then\n"
    "      if not KINDS[a] or type(b) ~= 'string' then bug('bad failure %s %s', tostring(a), tostring(b)) end\n"
    "      if a ~= 'error' and sb:stats().used > MEM // 2 then bug('memory kept after running out') end\n"
    "    else\n"
    "      bug('eval returned %s', tostring(ok))\n"
    "    end\n"
    "    local st = sb:stats()\n"
    "    if st.peak > st.limit then bug('peak %d over the budget %d', st.peak, st.limit) end\n"
    "  end\n"
    "  if record.name ~= 'Jane' or record.self ~= record or shared.city ~= 'Oslo' then\n"
    "    bug('the host record changed')\n"
    "  end\n"
    "  sb:close()\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_lua_init(driver, sizeof driver - 1, "=fuzz_expr");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0; /* mydb refuses longer expressions */
  fuzz_lua_run(data, size, 1);
  return 0;
}
