-- mydb quick start: run with `make quickstart` (or lua5.4 examples/quickstart.lua
-- once mydb is installed).
local mydb = require "mydb"

-- A fresh store for the demo (any directory works; the default is ".mytools_db").
local root = os.tmpname()
os.remove(root)
local db = mydb.open(root)
db:init("acme")

-- Pattern 1: whole snapshots.
local v1 = db:save("acme", "alice", "config", { theme = "dark", lang = "en" })
db:save("acme", "bob", "config", { theme = "light", lang = "en" })
print("config now:", db:load("acme", "config").theme)          --> light
print("config then:", db:load("acme", "config", v1).theme)     --> dark
for i, digest in ipairs(db:history("acme", "config")) do
  local m = db:meta("acme", "config", digest)
  print(("  version %d by %s on %s: %s"):format(i, m.user_id, m.date, digest:sub(1, 12)))
end

-- Pattern 2: record collections.
db:put("acme", "alice", "users", "john", { name = "John", age = 30 })
db:put_many("acme", "alice", "users", {
  jane = { name = "Jane", age = 25 },
  joe = { name = "Joe", age = 41 },
})
print("unchanged put writes nothing:", db:put("acme", "alice", "users", "john", { name = "John", age = 30 }))
print("john is", db:get("acme", "users", "john").age)          --> 30
for key, user in db:records("acme", "users") do print("  " .. key, user.name) end

-- Errors are values with a code and a message.
local ok, err = pcall(db.load, db, "acme", "no-such-entry")
print(ok, err.code, tostring(err))                              --> false not_found ...

db:close()
os.execute("rm -rf '" .. root .. "'")
