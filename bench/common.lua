--- What the benchmark scripts share: the anchor's documents, argument
-- parsing and shell quoting. Loaded with dofile from the script's folder.
local core = require "mydb.core"

local common = {}

function common.sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- --name value pairs (a bare --name is true) into a table.
function common.parse_args(argv)
  local a = {}
  local i = 1
  while i <= #argv do
    local k = argv[i]:match("^%-%-(.+)$")
    if not k then error("bad argument " .. argv[i]) end
    local v = argv[i + 1]
    if v == nil or v:sub(1, 2) == "--" then a[k] = true; i = i + 1
    else a[k] = tonumber(v) or v; i = i + 2 end
  end
  return a
end

-- The anchor's documents: a ~1 KiB dict and a ~100 B record (same fields).
-- Payload strings are shared by length, so that holding 100,000 documents
-- does not measure the benchmark's own memory.
local pads = {}
local function pad(n)
  local p = pads[n]
  if not p then p = ("p"):rep(n); pads[n] = p end
  return p
end

function common.doc_1k(i)
  local d = { id = i, name = ("entry-%06d"):format(i), tags = { "a", "b", "c" },
              counters = { x = i, y = i * 2 }, payload = "" }
  d.payload = pad(1024 - #core.encode(d))
  return d
end

function common.rec_100(i)
  local d = { id = i, name = ("user-%06d"):format(i), email = ("u%06d@example.org"):format(i), note = "" }
  d.note = ("n"):rep(math.max(0, 100 - #core.encode(d)))
  return d
end

--- Bytes this process has written so far (/proc/self/io wchar; 0 where
-- there is none).
function common.wchar()
  local f = io.open("/proc/self/io")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("wchar:%s*(%d+)")) or 0
end

--- The median of a list of numbers (nil for an empty list).
function common.median(t)
  local s = table.move(t, 1, #t, 1, {})
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- A small deterministic generator: rng(seed)(n) -> 0 .. n-1, the same
-- sequence on every run.
function common.rng(seed)
  local x = seed
  return function(n)
    x = (x * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (x >> 16) % n
  end
end

return common
