-- mydb.open, db:close, tostring (issue 2 §3 and §5).
local H = require "spec.helper"
local mydb = require "mydb"

describe("mydb", function()
  describe("open", function()
    local dir
    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rmrf(dir) end)

    it("creates the store at the given root", function()
      local db = mydb.open(dir .. "/db", { fsync = false })
      db:init("t")
      db:save("t", "u", "e", 1)
      db:close()
      H.needs_files("no files")
      assert.is_true(H.file_exists(dir .. "/db/t/" .. (H.BACKEND == "pack" and "pack/start" or "head")))
    end)

    it("uses .mytools_db in the working directory when root is nil", function()
      local out, ok = H.run_lua([[
        local mydb = require "mydb"
        local db = mydb.open(nil, { fsync = false })
        db:init("acme")
        db:save("acme", "alice", "config", { theme = "dark" })
        db:close()
        local db2 = mydb.open()
        print(db2:load("acme", "config").theme)
        db2:close()
      ]], { cwd = dir, memory_ok = true })
      assert.is_true(ok, out)
      assert.equal("dark\n", out)
      assert.is_true(H.file_exists(dir .. "/.mytools_db/.mydb") and H.file_exists(dir .. "/.mytools_db/acme"))
    end)

    it("defaults to fsync = true when opts are omitted", function()
      -- durability is the default: the call must work and store data
      local db = mydb.open(dir .. "/db")
      db:init("t")
      local d = db:save("t", "u", "e", { x = 1 })
      assert.equal(d, db:get_digest("t", "e"))
      db:close()
    end)

    it("accepts cache_bytes = 0", function()
      local db = mydb.open(dir .. "/db", { fsync = false, cache_bytes = 0 })
      db:init("t")
      db:save("t", "u", "e", { x = 1 })
      assert.same({ x = 1 }, db:load("t", "e"))
      db:close()
    end)

    describe("with bad arguments", function()
      local function assert_invalid(...)
        H.assert_error_code(mydb.open, "invalid_argument", ...)
      end

      it("refuses a root that is not a string", function()
        assert_invalid(42)
        assert_invalid(true)
        assert_invalid({})
        assert_invalid(print)
      end)

      it("refuses an empty root", function()
        assert_invalid("")
      end)

      it("refuses a root containing NUL", function()
        assert_invalid(dir .. "/a\0b")
        assert.same({}, H.listing(dir))
      end)

      it("refuses opts that are not a table", function()
        assert_invalid(dir .. "/db", "fsync")
        assert_invalid(dir .. "/db", true)
        assert_invalid(dir .. "/db", 1)
      end)

      it("refuses an unknown option", function()
        local err = H.assert_error_code(mydb.open, "invalid_argument", dir .. "/db", { fsinc = false })
        assert.truthy(err.message:find("fsinc", 1, true))
      end)

      it("refuses a non-boolean fsync", function()
        assert_invalid(dir .. "/db", { fsync = 0 })
        assert_invalid(dir .. "/db", { fsync = "no" })
      end)

      it("refuses a bad cache_bytes", function()
        assert_invalid(dir .. "/db", { cache_bytes = -1 })
        assert_invalid(dir .. "/db", { cache_bytes = 1.5 })
        assert_invalid(dir .. "/db", { cache_bytes = "big" })
      end)

      it("raises io when the root cannot be created", function()
        H.needs_files("no root directory is made")
        H.write_file(dir .. "/file", "x")
        local err = H.assert_error_code(mydb.open, "io", dir .. "/file/db")
        assert.truthy(err.message:find("Not a directory", 1, true), err.message)
        H.assert_error_code(mydb.open, "io", dir .. "/file")
        assert.same({ "./file" }, H.listing(dir))
      end)

      it("creates nothing on disk when the arguments are bad", function()
        pcall(mydb.open, dir .. "/db", { bogus = 1 })
        pcall(mydb.open, dir .. "/db", { fsync = "x" })
        assert.same({}, H.listing(dir))
      end)
    end)
  end)

  describe("db:close", function()
    local S = H.use_store()

    it("is idempotent", function()
      S.db:close()
      assert.has_no.errors(function() S.db:close() end)
      assert.has_no.errors(function() S.db:close() end)
    end)

    it("works with a to-be-closed variable", function()
      do
        local db <close> = mydb.open(S.root, { fsync = false })
        db:init("t")
      end
      assert.is_true(S.db:is_initialized("t"))
    end)

    it("makes every later call raise closed", function()
      S.db:init("t")
      S.db:save("t", "u", "e", { a = 1 })
      local d = S.db:get_digest("t", "e")
      S.db:close()
      local db = S.db
      local calls = {
        function() db:init("t") end,
        function() db:is_initialized("t") end,
        function() db:save("t", "u", "e", 2) end,
        function() db:load("t", "e") end,
        function() db:load("t", "e", d) end,
        function() db:put("t", "u", "c", "k", 1) end,
        function() db:put_many("t", "u", "c", { k = 1 }) end,
        function() db:get("t", "c") end,
        function() db:get("t", "c", "k") end,
        function() db:exists("t", "e") end,
        function() db:history("t", "e") end,
        function() db:get_digest("t", "e") end,
        function() db:meta("t", "e") end,
        function() db:records("t", "c") end,
      }
      for i, fn in ipairs(calls) do
        local ok, err = pcall(H.assert_error_code, fn, "closed")
        assert(ok, ("call #%d: %s"):format(i, tostring(err)))
      end
    end)

    it("leaves the data readable by a new handle", function()
      H.needs_disk("the store goes with its last handle")
      S.db:init("t")
      S.db:save("t", "u", "e", { a = 1 })
      S.db:close()
      local db2 = S.open_again()
      assert.same({ a = 1 }, db2:load("t", "e"))
    end)
  end)

  describe("methods called with a dot", function()
    local S = H.use_store({ tenant = "t" })

    it("raise invalid_argument instead of misreading the arguments", function()
      local db = S.db
      local cases = {
        init = { "t" },
        is_initialized = { "t" },
        save = { "t", "u", "e", 1 },
        load = { "t", "e" },
        put = { "t", "u", "e", "k", 1 },
        put_many = { "t", "u", "e", { k = 1 } },
        get = { "t", "e" },
        exists = { "t", "e" },
        history = { "t", "e" },
        get_digest = { "t", "e" },
        meta = { "t", "e" },
        records = { "t", "e" },
        close = {},
      }
      for name, args in pairs(cases) do
        local ok, err = pcall(H.assert_error_code, db[name], "invalid_argument", table.unpack(args))
        assert(ok, ("db.%s: %s"):format(name, tostring(err)))
      end
      -- and nothing was written by the mistaken save
      assert.is_false(db:exists("t", "e"))
    end)

    it("names the method in the message", function()
      local err = H.assert_error_code(S.db.save, "invalid_argument", "t", "u", "e", 1)
      assert.truthy(err.message:find("db:save", 1, true), err.message)
    end)
  end)

  describe("tostring(db)", function()
    local S = H.use_store()

    it("shows the root", function()
      assert.equal("mydb.db (" .. S.root .. ")", tostring(S.db))
    end)

    it("says closed after close", function()
      S.db:close()
      assert.equal("mydb.db (" .. S.root .. ", closed)", tostring(S.db))
    end)
  end)

  describe("_VERSION", function()
    it("is a string starting with mydb", function()
      assert.is_string(mydb._VERSION)
      assert.truthy(mydb._VERSION:match("^mydb "))
    end)
  end)

  describe("errors", function()
    it("lists every code of the contract", function()
      for _, code in ipairs({ "invalid_argument", "not_initialized", "not_found", "type_mismatch",
        "unsupported_value", "corrupt", "io" }) do
        assert.is_string(mydb.errors.codes[code], code)
      end
    end)

    it("formats error values as mydb: <code>: <message>", function()
      local e = mydb.errors.new("not_found", "nothing here")
      assert.equal("mydb: not_found: nothing here", tostring(e))
      assert.is_true(mydb.errors.is(e, "not_found"))
      assert.is_false(mydb.errors.is(e, "corrupt"))
      assert.is_false(mydb.errors.is("mydb: not_found: x"))
    end)
  end)
end)
