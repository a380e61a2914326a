-- A new value type in plain Lua, stored by mydb without any C rebuild.
-- Run from the repository root after `make all`:
--   LUA_PATH='build/lua/?.lua;build/lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/custom_type.lua
local mydb = require "mydb"

-- 1. The type: an amount of money in a currency (cents as an integer).
local Money = { __name = "Money" }
Money.__index = Money

function Money.new(cents, currency)
  assert(math.type(cents) == "integer", "cents must be an integer")
  assert(type(currency) == "string" and currency:match("^%u%u%u$"), "currency must be a 3-letter code")
  return setmetatable({ cents = cents, currency = currency }, Money)
end

function Money.__add(a, b)
  assert(a.currency == b.currency, "cannot add different currencies")
  return Money.new(a.cents + b.cents, a.currency)
end

function Money.__tostring(m)
  local sign = m.cents < 0 and "-" or ""
  local c = math.abs(m.cents)
  return ("%s%d.%02d %s"):format(sign, c // 100, c % 100, m.currency)
end

-- 2. Its handler: inline, so a stored amount stays readable in the snapshot
--    as {"__special__":"Money","cents":1999,"currency":"EUR"}.
mydb.handlers.register {
  tag = "Money",
  is_eligible_for = function(v) return getmetatable(v) == Money end,
  serialize = function(m) return { cents = m.cents, currency = m.currency } end,
  deserialize = function(t) return Money.new(t.cents, t.currency) end,
}

-- Shipped handler modules register the same way.
local date = require "mydb.handlers.date"
mydb.handlers.register(date)

-- 3. Save and load.
local root = os.tmpname()
os.remove(root)
-- The loose backend keeps one plain file per object: the end of this example
-- reads the snapshot's file.
local db = mydb.open(root, { fsync = false, backend = "loose" })
db:init("shop")

local order = {
  items = { { name = "book", price = Money.new(1999, "EUR") }, { name = "pen", price = Money.new(250, "EUR") } },
  placed = date.new(2024, 3, 1),
}
local digest = db:save("shop", "alice", "order-1", order)

local loaded = db:load("shop", "order-1")
local total = loaded.items[1].price + loaded.items[2].price
print("placed on:", loaded.placed, "(" .. ({ "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" })[loaded.placed:weekday()] .. ")")
print("total:", total)
print("a Money again:", getmetatable(total) == Money)
print("registered handlers:", table.concat(mydb.handlers.list(), ", "))

-- The snapshot is plain JSON, appended as it is to shop/packed (the loose
-- backend's file of committed objects); the amounts are readable in it.
local f = assert(io.open(root .. "/shop/packed", "rb"))
local json = f:read("a")
f:close()
print("stored as:", json:match('{"__special__":"Money"[^}]*}'))

-- Without its handler a stored Money cannot be loaded (the data is kept).
mydb.handlers.unregister("Money")
local ok, err = pcall(db.load, db, "shop", "order-1")
print("without the handler:", ok, err.code)

db:close()
os.execute("rm -rf '" .. root .. "'")
