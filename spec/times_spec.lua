-- Every call that takes a time accepts seconds since the epoch and ISO 8601
-- strings (issue 16, part 2): dates.parse, db:log since/until,
-- db:changes since, REV@{T}.
local mydb = require "mydb"
local dates = require "mydb.dates"

describe("times", function()
  it("parses seconds, dates, and ISO 8601 with zones and fractions", function()
    assert.equal(0, dates.parse("1970-01-01"))
    assert.equal(86400 + 3661, dates.parse("1970-01-02 01:01:01"))
    assert.equal(86400 + 3661, dates.parse("1970-01-02T01:01:01Z"))
    assert.equal(86400 + 3661 - 7200, dates.parse("1970-01-02T01:01:01+02:00"))
    assert.equal(86400 + 3661 + 5400, dates.parse("1970-01-02T01:01:01-0130"))
    assert.equal(1.25, dates.parse("1970-01-01T00:00:01.25Z"))
    assert.equal(1700000000, dates.parse("1700000000"))
    assert.equal(12.5, dates.parse(12.5))
    for _, bad in ipairs { "yesterday", "2026-13-01", "2026-01-01T25:00:00", "2026-01-01T00:00:00+2",
                           "2026-01-01 00:00", "2026-01-01T00:00:00.", {} } do
      assert.is_nil(dates.parse(bad), tostring(bad))
    end
  end)

  describe("in the API", function()
    local db
    before_each(function()
      db = mydb.open(os.tmpname() .. "-t", { backend = "memory" })
      db:init("acme")
      db:put("acme", "u", "c", "k", 1)
    end)
    after_each(function() db:close() end)

    local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%S", t) .. "Z" end

    it("db:log since/until take ISO 8601 as they take seconds", function()
      local t = db:log("acme")[1].time
      assert.equal(1, #db:log("acme", { since = iso(math.floor(t)) }))
      assert.equal(0, #db:log("acme", { since = iso(math.floor(t) + 2) }))
      assert.equal(0, #db:log("acme", { ["until"] = iso(math.floor(t) - 2) }))
      assert.equal(1, #db:log("acme", { ["until"] = iso(math.floor(t) + 2) }))
      assert.same(db:log("acme", { since = math.floor(t) }), db:log("acme", { since = iso(math.floor(t)) }))
      local ok, e = pcall(db.log, db, "acme", { since = "last week" })
      assert.is_false(ok)
      assert.equal("invalid_argument", e.code)
      assert.matches("ISO 8601", e.message)
    end)

    it("db:changes since takes ISO 8601", function()
      local t = db:log("acme")[1].time
      assert.equal(1, #db:changes("acme", iso(math.floor(t) - 1)))
      assert.equal(0, #db:changes("acme", iso(math.floor(t) + 2)))
      local ok, e = pcall(db.changes, db, "acme", "soon")
      assert.is_false(ok)
      assert.equal("invalid_argument", e.code)
    end)

    it("REV@{T} takes ISO 8601 with a zone", function()
      local id = db:resolve("acme", "main")
      local t = math.floor(db:log("acme")[1].time) + 1
      assert.equal(id, db:resolve("acme", "main@{" .. iso(t) .. "}"))
      local plus2 = os.date("!%Y-%m-%dT%H:%M:%S", t + 7200) .. "+02:00"
      assert.equal(id, db:resolve("acme", "main@{" .. plus2 .. "}"))
    end)
  end)
end)
