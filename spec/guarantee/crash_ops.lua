-- spec/guarantee/crash_ops.lua - the deterministic operation schedule of the
-- crash writer: operation i of round r is known to the driver too, so that
-- it can tell whether the one operation in flight at the kill committed.
local M = {}

M.RECS = "recs"
M.DOCS = { "doc1", "doc2", "doc3" }

--- Operation i (from 1) of round r:
-- {kind = "save", entry =, value =} | {kind = "put", key =, value =}
-- | {kind = "put_many", items = {key = value}}
function M.op(r, i)
  local m = i % 5
  if m == 1 or m == 3 then
    return { kind = "save", entry = M.DOCS[i % 3 + 1],
             value = { round = r, seq = i, pad = ("p"):rep((r * 37 + i) % 300) } }
  elseif m == 2 or m == 4 then
    -- new keys and overwrites of a few hot ones
    local key = (i % 4 == 2) and ("r%d-%d"):format(r, i) or ("hot%d"):format(i % 7)
    return { kind = "put", key = key, value = { round = r, seq = i } }
  else
    local v = { round = r, seq = i }
    return { kind = "put_many", items = {
      [("m%d-%d-a"):format(r, i)] = v, [("m%d-%d-b"):format(r, i)] = v, [("hot%d"):format(i % 7)] = v } }
  end
end

return M
