--- mydb.cmd.history: the versioning subcommands: log,
-- show, diff, blame, branch, tag, merge.
local errors = require "mydb.errors"
local values = require "mydb.cmd.values"
local graph = require "mydb.cmd.graph"
local X = require "mydb.cmd.context"
local out = X.out
local json = X.json
local user_of = X.user_of
local on_tenant = X.on_tenant
local need = X.need
local at_most = X.at_most
local short = X.short
local sorted_keys = X.sorted_keys
local commit_label = X.commit_label
local path_text = X.path_text
local usage = X.usage

local C = {}

C.log = { help = "log [ENTRY] [-n N] [--rev REV] [--since T] [--until T] [--graph]\n"
    .. "  The commits, newest first: ID USER DATE MESSAGE. --graph draws the commit graph\n"
    .. "  (every parent of merges) as `git log --graph` does.",
  values = { n = true, rev = true, since = true, ["until"] = true }, flags = { graph = true } }
function C.log.run(ctx)
  at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local n = ctx.opt.n and math.tointeger(tonumber(ctx.opt.n))
  if ctx.opt.n and (not n or n < 1) then usage("-n needs a positive integer") end
  local list = db:log(t, { rev = ctx.opt.rev or ctx.opt.branch, max = n, entry = ctx.pos[1],
    since = ctx.opt.since, ["until"] = ctx.opt["until"] })
  if ctx.opt.json then return json(list) end
  if ctx.opt.graph then
    for _, l in ipairs(graph.lines(list, commit_label)) do out(l) end
  else
    for _, c in ipairs(list) do out(commit_label(c)) end
  end
end

C.show = { help = "show REV[:ENTRY[/KEY]]\n  A commit (its fields and changed entries), or an entry's value, or one record, at REV." }
function C.show.run(ctx)
  need(ctx, 1, "REV[:ENTRY[/KEY]]"); at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local rev, path = ctx.pos[1]:match("^([^:]+):(.*)$")
  if not rev then
    local id = db:resolve(t, ctx.pos[1])
    local c = db:log(t, { rev = id, max = 1 })[1]
    if ctx.opt.json then return json(c) end
    out("commit " .. c.id)
    if #(c.parents or {}) > 1 then out("merge " .. table.concat(c.parents, " ")) end
    out("user " .. tostring(c.user_id))
    out("date " .. tostring(c.date))
    out("")
    out("    " .. (c.message or ""))
    out("")
    for _, e in ipairs(c.entries or {}) do out(e) end
    return
  end
  local view = db:at(t, rev)
  local entry, key = path:match("^([^/]+)/(.*)$")
  if not entry then return json(view:load(path)) end
  local v = view:get(entry, key)
  if v == nil then errors.raise("not_found", "no key '%s' in %s at %s", key, entry, rev) end
  json(v)
end

C.diff = { help = "diff A B [--entry E]\n  The changes from revision A to B: one line per change\n"
    .. "  (+ added, - removed, ~ modified) ENTRY[/KEY][.PATH] OLD -> NEW.",
  values = { entry = true } }
function C.diff.run(ctx)
  need(ctx, 2, "A B"); at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  local list = db:diff(t, ctx.pos[1], ctx.pos[2], { entry = ctx.opt.entry })
  if ctx.opt.json then return json(list) end
  local sign = { added = "+", removed = "-", modified = "~" }
  for _, ch in ipairs(list) do
    local where = ch.entry .. (ch.key and ("/" .. ch.key) or "")
    local p = path_text(ch.path)
    if p ~= "" then where = where .. "." .. p end
    local l = (sign[ch.action] or "?") .. " " .. where
    if ch.action == "added" then
      l = l .. " " .. values.encode(ch.new)
    elseif ch.action == "removed" then
      l = l .. " " .. values.encode(ch.old)
    else
      l = l .. " " .. values.encode(ch.old) .. " -> " .. values.encode(ch.new)
    end
    out(l)
  end
end

C.blame = { help = "blame ENTRY [--rev REV]\n  Per key (or top-level field): the commit, user and date that gave it its value.",
  values = { rev = true } }
function C.blame.run(ctx)
  need(ctx, 1, "ENTRY"); at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local per_key, whole = db:blame(t, ctx.pos[1], ctx.opt.rev)
  if ctx.opt.json then return json({ keys = per_key, version = whole }) end
  for _, k in ipairs(sorted_keys(per_key)) do
    local b = per_key[k]
    out(("%s %s %s %s"):format(short(b.commit), b.user_id or "-", b.date or "", k))
  end
end

C.branch = { help = "branch [NAME [REV]] [-d NAME]\n  Lists the branches (* the current one), creates NAME at REV, or deletes one.",
  flags = { delete = true } }
function C.branch.run(ctx)
  at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  if ctx.opt.delete then
    need(ctx, 1, "NAME")
    db:delete_branch(t, ctx.pos[1])
    return ctx.opt.json and json({ deleted = ctx.pos[1] }) or nil
  end
  if ctx.pos[1] then
    local id = db:branch(t, ctx.pos[1], ctx.pos[2])
    return ctx.opt.json and json({ branch = ctx.pos[1], commit = id }) or out(id)
  end
  local b = db:branches(t)
  if ctx.opt.json then return json(b) end
  local cur = db:current_branch(t)
  for _, name in ipairs(sorted_keys(b)) do out(("%s %s %s"):format(name == cur and "*" or " ", name, short(b[name]))) end
end

C.tag = { help = "tag [NAME [REV]] [-m MSG] [-d NAME]\n  Lists the tags, tags REV (default: the branch head), or deletes one.",
  flags = { delete = true }, values = { message = true } }
function C.tag.run(ctx)
  at_most(ctx, 2)
  local db, t = on_tenant(ctx)
  if ctx.opt.delete then
    need(ctx, 1, "NAME")
    db:delete_tag(t, ctx.pos[1])
    return ctx.opt.json and json({ deleted = ctx.pos[1] }) or nil
  end
  if ctx.pos[1] then
    local id = db:tag(t, ctx.pos[1], ctx.pos[2], ctx.opt.message)
    return ctx.opt.json and json({ tag = ctx.pos[1], commit = id }) or out(id)
  end
  local tags = db:tags(t)
  if ctx.opt.json then return json(tags) end
  for _, name in ipairs(sorted_keys(tags)) do out(("%s %s"):format(name, short(tags[name]))) end
end

C.merge = { help = "merge REV [--branch B] [--resolver NAME] [--no-ff] [-m MSG]\n"
    .. "  Merges REV into the branch (--branch, default main). Conflicts without a resolver:\n"
    .. "  status 1 and one line per conflict on stderr; nothing is written.",
  values = { resolver = true, message = true }, flags = { ["no-ff"] = true } }
function C.merge.run(ctx)
  need(ctx, 1, "REV"); at_most(ctx, 1)
  local db, t = on_tenant(ctx)
  local ok, r = pcall(db.merge, db, t, user_of(ctx), ctx.pos[1],
    { resolver = ctx.opt.resolver, no_ff = ctx.opt["no-ff"], message = ctx.opt.message })
  if not ok then
    if errors.is(r, "conflict") and r.conflicts then
      for _, c in ipairs(r.conflicts) do
        local p = path_text(c.path)
        io.stderr:write(("conflict: %s%s%s\n"):format(c.entry, c.key and ("/" .. c.key) or "", p ~= "" and ("." .. p) or ""))
      end
    end
    error(r, 0)
  end
  if ctx.opt.json then return json(r) end
  out(("%s %s"):format(r.fast_forward and "fast-forward" or "merged", r.commit or ""))
end

return C
