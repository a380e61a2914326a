--- mydb.cmd.sync: the subcommands between stores:
-- clone, fetch, push, pull, remote.
local mydb = require "mydb"
local X = require "mydb.cmd.context"
local out = X.out
local json = X.json
local open = X.open
local user_of = X.user_of
local on_tenant = X.on_tenant
local need = X.need
local at_most = X.at_most
local sorted_keys = X.sorted_keys
local sync_report = X.sync_report
local usage = X.usage

local C = {}

C.clone = { help = "clone URL DIR [--backend NAME]\n  A new store at DIR with every tenant of the store at URL (remote 'origin').",
  values = { backend = true } }
function C.clone.run(ctx)
  need(ctx, 2, "URL DIR"); at_most(ctx, 2)
  -- (clone, fetch, push and pull draw the library's progress bar: mydb.progress)
  local c, r = mydb.clone(ctx.pos[1], ctx.pos[2], { backend = ctx.opt.backend })
  c:close()
  if ctx.opt.json then return json(r) end
  out(("cloned %s to %s: %d tenants, %d commits, %d objects, %d bytes"):format(ctx.pos[1], ctx.pos[2],
    r.tenants and (type(r.tenants) == "table" and #r.tenants or r.tenants) or 0, r.commits or 0,
    r.objects or 0, r.bytes or 0))
end

C.fetch = { help = "fetch REMOTE [BRANCH]\n  Brings the remote's branches (or one) as REMOTE/BRANCH, and its tags." }
function C.fetch.run(ctx)
  need(ctx, 1, "REMOTE"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  sync_report(ctx, "fetch", db:fetch(t, ctx.pos[1], ctx.pos[2]))
end

C.push = { help = "push REMOTE [BRANCH] [--force]\n  Sends the branch; only a fast-forward unless --force (else status 1, rejected).",
  flags = { force = true } }
function C.push.run(ctx)
  need(ctx, 1, "REMOTE"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  sync_report(ctx, "push", db:push(t, ctx.pos[1], ctx.pos[2], { force = ctx.opt.force or nil }))
end

C.pull = { help = "pull REMOTE [BRANCH] [--resolver NAME]\n  fetch, then merge REMOTE/BRANCH into the branch.",
  values = { resolver = true } }
function C.pull.run(ctx)
  need(ctx, 1, "REMOTE"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  sync_report(ctx, "pull", db:pull(t, user_of(ctx), ctx.pos[1], ctx.pos[2], { resolver = ctx.opt.resolver }))
end

C.remote = { help = "remote [add NAME URL | remove NAME]\n  Lists (NAME URL), adds or removes the store's remotes." }
function C.remote.run(ctx)
  at_most(ctx, 3)
  local db = open(ctx)
  local verb = ctx.pos[1]
  if verb == "add" then
    need(ctx, 3, "add NAME URL")
    db:add_remote(ctx.pos[2], ctx.pos[3])
  elseif verb == "remove" then
    need(ctx, 2, "remove NAME")
    db:remove_remote(ctx.pos[2])
  elseif verb == nil then
    local r = db:remotes()
    if ctx.opt.json then return json(r) end
    for _, n in ipairs(sorted_keys(r)) do out(n .. " " .. r[n]) end
  else
    usage("remote: unknown action '%s'", verb)
  end
end

return C
