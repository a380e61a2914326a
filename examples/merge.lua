-- mydb merge: two branches edit the same tenant, then merge - records and
-- fields combine, a conflict goes to a resolver (a function, a shipped one
-- by name, or one stored with the entry), and a commit is reverted.
-- Run with lua5.4 examples/merge.lua (after make).
local mydb = require "mydb"

local root = os.tmpname()
os.remove(root)
local db = mydb.open(root)
db:init("acme")

db:put_many("acme", "alice", "users", {
  ann = { name = "Ann", city = "Oslo" },
  bob = { name = "Bob", city = "Rome" },
})
db:put("acme", "alice", "hits", "home", 100)
db:set_resolver("acme", "alice", "hits", "sum")    -- counters: both sides' increments add up
db:branch("acme", "import")

-- main and the branch each change things, some of them the same records
db:put("acme", "alice", "users", "ann", { name = "Ann", city = "Bergen" })
db:put("acme", "alice", "hits", "home", 105)
db:checkout("acme", "import")
db:put("acme", "bot", "users", "ann", { name = "Ann B.", city = "Oslo" })  -- another field of ann
db:put("acme", "bot", "users", "cy", { name = "Cy", city = "Lima" })
db:put("acme", "bot", "users", "bob", { name = "Bob", city = "Milan" })
db:put("acme", "bot", "hits", "home", 130)
db:checkout("acme", "main")
db:put("acme", "alice", "users", "bob", { name = "Bob", city = "Turin" })  -- bob's city: a conflict

-- Without a resolver for bob's city the merge writes nothing.
local ok, err = pcall(db.merge, db, "acme", "alice", "import")
print("merge without a resolver:", ok, err.code)
for _, c in ipairs(err.conflicts) do
  print(("  %s/%s %s: base %s, ours %s, theirs %s"):format(c.entry, c.key, table.concat(c.path, "."),
    c.base, c.ours, c.theirs))
end

-- With one (opts.resolver takes every conflict, before stored ones): the
-- import wins, and hits is summed as its stored resolver would.
local r = db:merge("acme", "alice", "import", { resolver = function(c)
  if c.entry == "hits" then return mydb.resolvers.get("sum")(c) end
  return c.theirs
end })
print("merged:", #db:log("acme", { max = 1 })[1].parents, "parents,", r.changes, "changes,", r.resolved, "resolved")
for k, v in db:records("acme", "users") do print("  " .. k, v.name, v.city) end
print("  hits", db:get("acme", "hits", "home"))            --> 135: 100 + 5 + 30

-- A commit undone by a new one:
db:put("acme", "alice", "users", "ann", { name = "Ann", city = "Paris" }, { message = "a mistake" })
db:revert("acme", "alice", "main")
print("after revert, ann lives in", db:get("acme", "users", "ann").city)   --> Bergen

db:close()
os.execute("rm -rf '" .. root .. "'")
