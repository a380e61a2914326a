--- mydb.cmd.store: the subcommands that look after a
-- whole store: verify, gc, repack, copy.
local mydb = require "mydb"
local errors = require "mydb.errors"
local inspect = require "mydb.inspect"
local X = require "mydb.cmd.context"
local out = X.out
local json = X.json
local is_dir = X.is_dir
local open = X.open
local need = X.need
local at_most = X.at_most

local C = {}

C.verify = { help = "verify\n  Re-reads and re-hashes the store (or --tenant's part); status 1 on damage." }
function C.verify.run(ctx)
  at_most(ctx, 0)
  local db = open(ctx)
  local problems, counts = db:verify(ctx.opt.tenant) -- (with the library's progress bar: mydb.progress)
  local sound, lines, summary = inspect.verify_result(problems, counts)
  if ctx.opt.json then
    json({ ok = sound, problems = problems, counts = counts })
  else
    for _, l in ipairs(lines) do out(l) end
    out(summary)
  end
  return sound and 0 or 1
end

C.gc = { help = "gc\n  Removes what no branch, tag or entry head reaches (the --tenant's, or all)." }
function C.gc.run(ctx)
  at_most(ctx, 0)
  local db = open(ctx)
  local r = db:gc(ctx.opt.tenant) -- (gc draws its own progress bar on a terminal)
  if ctx.opt.json then return json(r or {}) end
  out("gc done")
end

C.repack = { help = "repack\n  Rewrites the pack store's files compactly (the --tenant's, or all)." }
function C.repack.run(ctx)
  at_most(ctx, 0)
  local db = open(ctx)
  local r = db:repack(ctx.opt.tenant)
  if ctx.opt.json then return json(r or {}) end
  out("repack done")
end

C.copy = { help = "copy SRC DST [--backend NAME]\n  Copies the store at SRC into a new store at DST, verified by digest.",
  values = { backend = true } }
function C.copy.run(ctx)
  need(ctx, 2, "SRC DST"); at_most(ctx, 2)
  if not is_dir(ctx.pos[1]) then errors.raise("not_found", "no store at '%s'", ctx.pos[1]) end
  local r = mydb.copy(ctx.pos[1], ctx.pos[2], { backend = ctx.opt.backend }) -- (its own progress line)
  if ctx.opt.json then return json(r) end
  out(("copied %s to %s: %d tenants, %d entries, %d objects"):format(ctx.pos[1], ctx.pos[2], r.tenants or 0,
    r.entries or 0, r.objects or 0))
end

return C
