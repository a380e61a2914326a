-- mydb for users of dynafile and pydb (issue 7): delete, queries and
-- filters, scan, TTL, batches, change streams and secondary indexes, each
-- a versioned change. Run with `lua5.4 examples/peers.lua` once mydb is
-- built (`make module`; see the README, "Coming from dynafile or pydb").
local mydb = require "mydb"

-- A fresh store for the demo, removed at the end.
local root = os.tmpname()
os.remove(root)
local db = mydb.open(root)
db:init("acme")

local function keys(it)
  local out = {}
  for k in it do out[#out + 1] = k end
  return table.concat(out, " ")
end

-- Change stream (dynafile add_stream_listener): called after each commit
-- made through this handle.
local events = {}
local listener = db:on_change(function(ev)
  events[#events + 1] = ev.action .. " " .. ev.entry .. (ev.key and ("[" .. ev.key .. "]") or "")
end)

print("-- put / get / delete (dynafile put_item, get_item, delete_item; pydb set, get, delete)")
db:put("acme", "alice", "users", "user#1", { name = "Bob", age = 41, city = "Oslo" })
db:put_many("acme", "alice", "users", {
  ["user#2"] = { name = "Alice", age = 29, city = "Rome" },
  ["user#3"] = { name = "Steve", age = 35, city = "Oslo" },
  ["role#1"] = { role = "sender" },
})
print("get user#2:", db:get("acme", "users", "user#2").name)              --> Alice
print("delete user#3:", db:delete("acme", "alice", "users", "user#3"))     --> true
print("delete again:", db:delete("acme", "alice", "users", "user#3"))      --> false
print("user#3 now:", db:get("acme", "users", "user#3"))                    --> nil
local versions = db:history("acme", "users")
print("versions of users:", #versions)                                     --> 3
print("user#3 in the version before:", db:get("acme", "users", "user#3", versions[2]).name) --> Steve

print("-- query (dynafile query: starts_with, direction, filter)")
print("prefix user#:", keys(db:query("acme", "users", { prefix = "user#" })))
print("reverse:", keys(db:query("acme", "users", { reverse = true })))
print("from/to:", keys(db:query("acme", "users", { from = "role#", to = "user#1" })))
print("filter function:", keys(db:query("acme", "users", {
  filter = function(key, user) return user.age ~= nil and user.age > 30 end })))
print("filter string:", keys(db:query("acme", "users", {
  prefix = "user#", filter = 'age >= 29 and name:match("^A")' })))
local ok, err = pcall(function()
  for _ in db:query("acme", "users", { filter = 'os.exit(1)' }) do end
end)
print("a filter cannot reach os:", ok, err.code)                          --> false invalid_argument

print("-- scan (dynafile scan): every collection of the tenant")
db:put("acme", "bob", "orders", "o1", { total = 12 })
db:save("acme", "bob", "config", { theme = "dark" })                       -- snapshots are skipped
for entry, key in db:scan("acme", { limit = 3 }) do print("  " .. entry, key) end

print("-- TTL (dynafile ttl_attribute)")
local now = os.time()
db:set_ttl("acme", "alice", "sessions", "expires")
db:put_many("acme", "alice", "sessions", {
  s1 = { user = "user#1", expires = now - 60 },    -- already past
  s2 = { user = "user#2", expires = now + 3600 },
})
print("live sessions:", keys(db:query("acme", "sessions")))               --> s2
print("s1:", db:get("acme", "sessions", "s1"))                             --> nil

print("-- batch (dynafile batch_writer): one commit, all or nothing")
db:batch("acme", "alice", function(b)
  b:put("users", "user#4", { name = "Dee", age = 52, city = "Lima" })
  b:delete("users", "role#1")
  b:put("orders", "o2", { total = 40 })
end)
print("after the batch:", keys(db:query("acme", "users")), "|", keys(db:query("acme", "orders")))
ok, err = pcall(db.batch, db, "acme", "alice", function(b)
  b:put("users", "user#5", { name = "Never" })
  error("changed my mind")
end)
print("a batch that raises writes nothing:", ok, db:get("acme", "users", "user#5"))

print("-- secondary index (on dynafile's roadmap)")
db:create_index("acme", "alice", "users", "by_age", "age")                     -- an expression
db:create_index("acme", "alice", "users", "by_city", function(user) return user.city end)
for key, user, age in db:query_index("acme", "users", "by_age", { from = 30, reverse = true }) do
  print("  " .. age, key, user.name)
end
print("in Oslo:", keys(db:query_index("acme", "users", "by_city", { from = "Oslo", to = "Oslo" })))

print("-- change events seen by the listener")
listener.remove()
for _, e in ipairs(events) do print("  " .. e) end

print("-- changes from the history (made by any process)")
local since = versions[1]                                                  -- users after the delete
for _, c in ipairs(db:changes("acme", since)) do
  if c.entry == "users" then
    print(("  %s %s by %s"):format(c.action, c.key, c.user_id))
  end
end

print("-- drop: gone from the head, history kept")
local last = db:get_digest("acme", "orders")
print("drop orders:", db:drop("acme", "bob", "orders"), db:exists("acme", "orders"))
print("old version still loads:", db:get("acme", "orders", "o2", last).total) --> 40

print("problems found by verify:", #db:verify())                           --> 0
db:close()
os.execute("rm -rf '" .. root .. "'")
