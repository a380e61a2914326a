-- mydb sync: a server store and a laptop clone diverge, the laptop's push
-- is rejected, it pulls (fetch + merge) and pushes again; only what the
-- other side lacks travels.
-- Run with lua5.4 examples/sync.lua (after make).
local mydb = require "mydb"

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p '" .. dir .. "'")

local server = mydb.open(dir .. "/server")
server:init("acme")
server:put_many("acme", "ops", "prices", { apple = 1.20, pear = 0.90, kiwi = 0.70 })

local laptop, r = mydb.clone(dir .. "/server", dir .. "/laptop")  -- remote "origin"
print("cloned:", r.tenants, "tenant,", r.commits, "commits,", r.objects, "objects")

-- both sides move on
server:put("acme", "ops", "prices", "apple", 1.25)
laptop:put("acme", "al", "prices", "kiwi", 0.75)

local ok, err = pcall(laptop.push, laptop, "acme", "origin")
print("push:", ok, err.code)                                        --> false rejected

r = laptop:pull("acme", "al", "origin")                             -- fetch + merge
print("pulled:", r.commits, "commit; merge fast-forward:", r.merge.fast_forward)
r = laptop:push("acme", "origin")
print("pushed:", r.commits, "commits,", r.objects, "objects; updated:", table.concat(r.updated, " "))
print("server apple, kiwi:", server:get("acme", "prices", "apple"), server:get("acme", "prices", "kiwi"))

r = laptop:fetch("acme", "origin")                                  -- nothing new
print("no-op fetch:", r.objects, "objects")

laptop:close()
server:close()
os.execute("rm -rf '" .. dir .. "'")
