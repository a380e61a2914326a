-- spec/guarantee/load_ops.lua - the operation schedule of the load test
-- (spec/guarantee_load_spec.lua): operation i (from 1) of process p. Every
-- process works on the same two tenants and the same entries; each owns its
-- record keys, so the final content and counts are known exactly.
local M = {}

M.TENANTS = { "a", "b" }

--- {kind =, tenant =, entry =, key =, items =, value =} of operation i of
-- process p. kinds: put, put_many, save, hot (put over the process's own
-- hot key), get, load, history.
function M.op(p, i)
  local tenant = M.TENANTS[(i // 10) % 2 + 1]
  local m = i % 10
  local v = { p = p, i = i }
  if m <= 2 then
    return { kind = "put", tenant = tenant, entry = "shared", key = ("p%d-%04d"):format(p, i), value = v }
  elseif m == 3 then
    return { kind = "put_many", tenant = tenant, entry = "shared",
             items = { [("p%d-%04d-a"):format(p, i)] = v, [("p%d-%04d-b"):format(p, i)] = v } }
  elseif m == 4 then
    return { kind = "save", tenant = tenant, entry = "doc", value = v }
  elseif m == 5 then
    return { kind = "hot", tenant = tenant, entry = "shared", key = ("p%d-hot"):format(p), value = v }
  elseif m <= 7 then
    -- read back the record this process put 6 operations ago (same tenant)
    local j = i - 6
    if j >= 1 then
      local back = M.op(p, j)
      return { kind = "get", tenant = tenant, entry = "shared", key = back.key, value = back.value }
    end
    return { kind = "get", tenant = tenant, entry = "shared", key = "absent" }
  elseif m == 8 then
    return { kind = "load", tenant = tenant, entry = "doc" }
  else
    return { kind = "history", tenant = tenant, entry = "doc" }
  end
end

--- The expected end state for n processes of ops operations each:
-- {tenant = {records = {key = value}, shared_versions =, doc_versions =,
--  by_user = {user = versions}}}
function M.expected(n, ops)
  local e = {}
  for _, t in ipairs(M.TENANTS) do e[t] = { records = {}, shared_versions = 0, doc_versions = 0, by_user = {} } end
  for p = 1, n do
    for i = 1, ops do
      local op = M.op(p, i)
      local t = e[op.tenant]
      local user = "proc" .. p
      if op.kind == "put" or op.kind == "hot" then
        t.records[op.key] = op.value
        t.shared_versions = t.shared_versions + 1
        t.by_user[user] = (t.by_user[user] or 0) + 1
      elseif op.kind == "put_many" then
        for k, v in pairs(op.items) do t.records[k] = v end
        t.shared_versions = t.shared_versions + 1
        t.by_user[user] = (t.by_user[user] or 0) + 1
      elseif op.kind == "save" then
        t.doc_versions = t.doc_versions + 1
        t.by_user[user] = (t.by_user[user] or 0) + 1
      end
    end
  end
  return e
end

return M
