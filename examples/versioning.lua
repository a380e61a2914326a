-- mydb versioning: commits, a branch, a tag, the log, and reading the
-- tenant as it was. Run with lua5.4 examples/versioning.lua (after make).
local mydb = require "mydb"

local root = os.tmpname()
os.remove(root)
local db = mydb.open(root)
db:init("acme")

-- Every write is one commit of the tenant, on the current branch (main).
db:put_many("acme", "alice", "prices", { apple = 1.20, pear = 0.90 }, { message = "initial prices" })
db:tag("acme", "launch", nil, "the prices we launched with")
db:put("acme", "bob", "prices", "apple", 1.35, { message = "apples up" })

-- A branch to try something without touching main.
db:branch("acme", "sale")
db:checkout("acme", "sale")
db:put("acme", "carol", "prices", "pear", 0.50, { message = "pear sale" })
print("on sale, pear costs", db:get("acme", "prices", "pear"))          --> 0.5
db:checkout("acme", "main")
print("on main, pear costs", db:get("acme", "prices", "pear"))          --> 0.9

-- The log, newest first.
for _, c in ipairs(db:log("acme", { rev = "sale" })) do
  print(("  %s %-6s %s"):format(c.id:sub(1, 10), c.user_id, c.message))
end

-- Any revision, read as it was: a tag, REV~N, or REV@{time}.
local launch = db:at("acme", "launch")
print("at launch, apple cost", launch:get("prices", "apple"))           --> 1.2
print("one commit ago, apple cost", db:at("acme", "main~1"):get("prices", "apple"))
local first = db:log("acme", { rev = "main" })[2]
print("main at the first commit's time is that commit:",
  db:resolve("acme", ("main@{%.17g}"):format(first.time)) == first.id) --> true

db:close()
os.execute("rm -rf '" .. root .. "'")
