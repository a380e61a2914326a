-- mydb diff, blame and the history of one record: what changed between two
-- revisions, who last changed each record, and every version of one.
-- Run with lua5.4 examples/diff.lua (after make).
local mydb = require "mydb"

local root = os.tmpname()
os.remove(root)
local db = mydb.open(root)
db:init("acme")

db:put_many("acme", "alice", "prices", { apple = 1.20, pear = 0.90, plum = 2.00 })
db:save("acme", "alice", "config", { currency = "EUR", ui = { theme = "light" } })
db:tag("acme", "launch")
db:put("acme", "bob", "prices", "apple", 1.35)
db:delete("acme", "bob", "prices", "plum")
db:put("acme", "carol", "prices", "kiwi", 0.40)
db:save("acme", "carol", "config", { currency = "EUR", ui = { theme = "dark" } })

-- What changed since the tag: records by key, snapshot values by field path.
for _, ch in ipairs(db:diff("acme", "launch", "main")) do
  local where = ch.key or table.concat(ch.path or {}, ".")
  print(("%-7s %-6s %-9s %s -> %s"):format(ch.entry, where, ch.action, tostring(ch.old), tostring(ch.new)))
end
--> config  ui.theme modified  light -> dark
--> prices  apple  modified  1.2 -> 1.35
--> prices  kiwi   added     nil -> 0.4
--> prices  plum   removed   2.0 -> nil

-- Who gave each record its current value.
local blame = db:blame("acme", "prices")
for _, k in ipairs({ "apple", "kiwi", "pear" }) do print(k, "by", blame[k].user_id) end
--> apple by bob, kiwi by carol, pear by alice

-- Every version of one record, newest first.
for _, v in ipairs(db:key_history("acme", "prices", "apple")) do
  print("apple", v.action, v.value, "by", v.user_id, "in", v.commit:sub(1, 10))
end

db:close()
os.execute("rm -rf '" .. root .. "'")
