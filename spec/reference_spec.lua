-- The API reference cannot drift from the code (issue 16, section 3):
-- every public function (found at run time: what `require "mydb"` returns,
-- the methods of a db handle, of a view and of a batch builder) has an
-- entry in the sources' LDoc comments with a description, @param tags
-- naming the function's real parameters in order, @return, @raise and an
-- @usage example; every example runs against a fresh store; and
-- doc/REFERENCE.md is what tools/reference.lua makes of the sources.
local H = require "spec.helper"
local mydb = require "mydb"

local ref = dofile(H.REPO .. "/tools/reference.lua")

-- The functions whose argument order changes (issue 16, section 2): the
-- reference gives the new order (user second); the source may still have
-- the old one, listed here.
-- name -> function of the whole public surface, found at run time.
local function public_functions()
  local found = {}
  local function add_table(prefix, t, method)
    for k, v in pairs(t) do
      if type(v) == "function" and type(k) == "string" and k:sub(1, 1) ~= "_" then
        found[prefix .. (method and ":" or ".") .. k] = v
      end
    end
  end
  add_table("mydb", mydb)
  for _, reg in ipairs({ "handlers", "policies", "resolvers", "errors" }) do
    add_table("mydb." .. reg, mydb[reg])
  end
  add_table("db", mydb.Db, true)
  local root = os.tmpname()
  os.remove(root)
  local db = mydb.open(root, { backend = "memory" })
  db:init("t")
  db:put("t", "u", "c", "k", 1)
  add_table("view", getmetatable(db:at("t", "main")).__index, true)
  db:batch("t", "u", function(b) add_table("b", b, true); b:put("c", "k", 2) end)
  db:close()
  return found
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function sorted(t)
  local c = table.move(t, 1, #t, 1, {})
  table.sort(c)
  return c
end

describe("the API reference", function()
  local sections, by_name, bare
  local function parse() sections, by_name, bare = ref.parse_all() end

  it("has an entry for every public function, and none for a function that is gone", function()
    parse()
    local fns = public_functions()
    local missing, stale = {}, {}
    for name in pairs(fns) do
      if not by_name[name] then missing[#missing + 1] = name end
    end
    for name, e in pairs(by_name) do
      if not e.table and not fns[name] then stale[#stale + 1] = name end
    end
    assert.same({}, sorted(missing))
    assert.same({}, sorted(stale))
    local undocumented = {}
    for _, b in ipairs(bare) do undocumented[#undocumented + 1] = b.file .. ":" .. b.line .. " " .. b.name end
    assert.same({}, undocumented)
  end)

  it("gives every function a description, its return values, its errors and an example", function()
    parse()
    local lacking = {}
    for name, e in pairs(by_name) do
      local d = e.doc
      if d.description == "" then lacking[#lacking + 1] = name .. ": description" end
      if #d.usages == 0 then lacking[#lacking + 1] = name .. ": @usage" end
      if not e.table then
        if #d.returns == 0 then lacking[#lacking + 1] = name .. ": @return" end
        if #d.raises == 0 then lacking[#lacking + 1] = name .. ": @raise" end
      end
      for _, p in ipairs(d.params) do
        if p.text == "" then lacking[#lacking + 1] = name .. ": text of @param " .. p.name end
      end
    end
    assert.same({}, sorted(lacking))
  end)

  it("documents each function's real parameters, in order", function()
    parse()
    local fns = public_functions()
    local wrong = {}
    for name, e in pairs(by_name) do
      if not e.table then
        local documented = {}
        for _, p in ipairs(e.doc.params) do documented[#documented + 1] = p.name end
        local real = e.params
        -- the parsed parameter list is the function's: Lua says how many it takes
        local info = debug.getinfo(fns[name], "u")
        local n = #real - ((real[#real] == "...") and 1 or 0) + (e.src_name:find(":") and 1 or 0)
        if info.nparams ~= n or info.isvararg ~= (real[#real] == "...") then
          wrong[#wrong + 1] = ("%s: source says %d parameters, Lua %d"):format(name, n, info.nparams)
        end
        local ok = same(documented, real)
        if not ok then
          wrong[#wrong + 1] = ("%s: documented (%s), real (%s)"):format(name,
            table.concat(documented, ", "), table.concat(real, ", "))
        end
      end
    end
    assert.same({}, sorted(wrong))
  end)

  it("lists every error code, and only those", function()
    parse()
    local e = by_name["mydb.errors.codes"]
    assert.truthy(e, "mydb.errors.codes has no entry")
    local documented, real = {}, {}
    for _, f in ipairs(e.doc.fields) do documented[#documented + 1] = f.name end
    for code in pairs(mydb.errors.codes) do real[#real + 1] = code end
    assert.same(sorted(real), sorted(documented))
  end)

  it("runs every example against a fresh store", function()
    -- the examples show the default backend (a store on disk that mydb.open
    -- of another root and other processes see); the suite's runs on other
    -- backends (MYDB_BACKEND) check everything else of the reference
    if H.BACKEND ~= H.DEFAULT_BACKEND then
      return pending(H.BACKEND .. " backend: the examples are written for the default backend, pack")
    end
    parse()
    local failed, count = {}, 0
    for _, s in ipairs(sections) do
      for _, e in ipairs(s.entries) do
        for i, u in ipairs(e.doc.usages) do
          count = count + 1
          local dir = os.tmpname()
          os.remove(dir)
          assert(os.execute("mkdir -p " .. H.q(dir)))
          local db = mydb.open(dir .. "/store", { fsync = false })
          db:init("acme")
          local env = setmetatable({ mydb = mydb, db = db, root = dir .. "/new" }, { __index = _G })
          local chunk, err = load(u.code, "=" .. e.name .. " example " .. i, "t", env)
          local ok = chunk ~= nil
          if chunk then ok, err = pcall(chunk) end
          if not ok then failed[#failed + 1] = e.name .. " example " .. i .. ": " .. tostring(err) end
          pcall(db.close, db)
          os.execute("rm -rf " .. H.q(dir))
        end
      end
    end
    assert.same({}, failed)
    assert.is_true(count > 50)
  end)

  it("is what doc/REFERENCE.md says (make doc regenerates it)", function()
    local f = assert(io.open(H.REPO .. "/doc/REFERENCE.md"))
    local committed = f:read("a")
    f:close()
    local fresh = ref.markdown()
    if committed ~= fresh then
      -- name the first differing line, not two whole files
      local a, b = {}, {}
      for l in committed:gmatch("[^\n]*") do a[#a + 1] = l end
      for l in fresh:gmatch("[^\n]*") do b[#b + 1] = l end
      for i = 1, math.max(#a, #b) do
        if a[i] ~= b[i] then
          error(("doc/REFERENCE.md is stale (run make doc): line %d is %q, the sources give %q")
            :format(i, tostring(a[i]), tostring(b[i])))
        end
      end
    end
    assert.equal(fresh, committed)
  end)
end)
