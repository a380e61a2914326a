-- Damage on the postgres backend (issue 15): the file backends' damage specs
-- flip bytes in files and are pending there; here the rows are damaged with
-- SQL (psql on the throwaway cluster of `make test-backends`): a read of a
-- damaged object raises corrupt, of a missing one not_found (as on the file
-- backends, spec/corrupt_spec.lua), verify names it, and the records that
-- were not touched stay readable.
local H = require "spec.helper"
local mydb = require "mydb"

local HERE = os.getenv("MYDB_PG_DIR") and H.BACKEND == "postgres"

local function need_server()
  if not HERE then
    pending("needs the throwaway PostgreSQL of make test-backends (MYDB_BACKEND=postgres)")
  end
  return HERE
end

local function fresh_schema()
  return ("spec_dmg_%d_%d"):format(os.time(), math.random(1, 1e9))
end

local function url(schema)
  return ("postgresql://%s@127.0.0.1:%s/%s?schema=%s"):format(os.getenv("PGUSER"),
    os.getenv("PGPORT"), os.getenv("PGDATABASE") or "postgres", schema)
end

-- Runs one SQL statement on the cluster; returns psql's output.
local function sql(statement)
  local p = assert(io.popen(("psql -qAtX -v ON_ERROR_STOP=1 -c %q 2>&1"):format(statement)))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, "psql: " .. out)
  return out
end

local function has(problems, kind, digest)
  for _, p in ipairs(problems) do
    if p.kind == kind and (digest == nil or p.digest == digest) then return p end
  end
  local seen = {}
  for _, p in ipairs(problems) do seen[#seen + 1] = p.kind .. " " .. tostring(p.digest) end
  error(("expected a %s problem about %s; got: %s"):format(kind, tostring(digest),
    table.concat(seen, "; ")), 2)
end

describe("postgres backend, damaged rows", function()
  it("a flipped byte in an object's row: load raises corrupt, verify names it, other entries read", function()
    if not need_server() then return end
    local schema = fresh_schema()
    local db = mydb.open(url(schema))
    db:init("t")
    local d = db:save("t", "u", "config", { colour = "blue", n = 1 })
    db:save("t", "u", "other", { keep = true })
    db:close()
    local n = sql(("UPDATE %q.objects SET bytes = overlay(bytes placing '\\x58'::bytea from 3 for 1) "
      .. "WHERE tenant = 't' AND digest = '%s' RETURNING 1"):format(schema, d))
    assert.equal("1", n:match("%d+"))
    local db2 = mydb.open(url(schema)) -- a fresh handle: nothing cached
    local ok, err = pcall(db2.load, db2, "t", "config")
    assert.is_false(ok)
    assert.equal("corrupt", err.code, tostring(err))
    assert.same({ keep = true }, db2:load("t", "other"))
    local problems = db2:verify("t")
    has(problems, "dangling_head", d)
    db2:close()
  end)

  it("a deleted object row: load raises not_found, verify reports a dangling head, a new put still works", function()
    if not need_server() then return end
    local schema = fresh_schema()
    local db = mydb.open(url(schema))
    db:init("t")
    db:put("t", "u", "users", "a", { v = 1 })
    local d = db:save("t", "u", "config", { v = 2 })
    db:close()
    sql(("DELETE FROM %q.objects WHERE tenant = 't' AND digest = '%s'"):format(schema, d))
    local db2 = mydb.open(url(schema))
    local ok, err = pcall(db2.load, db2, "t", "config")
    assert.is_false(ok)
    assert.equal("not_found", err.code, tostring(err))
    has(db2:verify("t"), "dangling_head", d)
    assert.same({ v = 1 }, db2:get("t", "users", "a"))
    db2:put("t", "u", "users", "b", { v = 3 })
    assert.same({ v = 3 }, db2:get("t", "users", "b"))
    db2:close()
  end)

  it("a head row naming a digest that is not stored: load raises not_found, verify reports a dangling head", function()
    if not need_server() then return end
    local schema = fresh_schema()
    local db = mydb.open(url(schema))
    db:init("t")
    db:save("t", "u", "config", { v = 1 })
    db:close()
    local bogus = ("ab"):rep(32)
    sql(("UPDATE %q.heads SET digest = '%s' WHERE tenant = 't' AND entry = 'config'::bytea"):format(schema, bogus))
    local db2 = mydb.open(url(schema))
    local ok, err = pcall(db2.load, db2, "t", "config")
    assert.is_false(ok)
    assert.equal("not_found", err.code, tostring(err))
    has(db2:verify("t"), "dangling_head", bogus)
    db2:close()
  end)
end)
