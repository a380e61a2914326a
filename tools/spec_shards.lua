--- lua5.4 tools/spec_shards.lua N I [WEIGHTS]: the spec files of shard I
-- (1..N), space-separated, for running the suite as N processes at once.
-- Files are dealt out heaviest first, each to the lightest shard so far
-- (weights: seconds per file from WEIGHTS, default tools/spec_weights,
-- lines "spec/x_spec.lua 12.5"; a file not listed weighs 5). Every file
-- lands in exactly one shard, whatever the weights say.
local n, i = tonumber(arg[1]), tonumber(arg[2])
assert(n and i and i >= 1 and i <= n, "usage: spec_shards.lua N I [WEIGHTS]")
local weights = {}
local wf = io.open(arg[3] or "tools/spec_weights")
if wf then
  for line in wf:lines() do
    local f, w = line:match("^(%S+)%s+([%d.]+)")
    if f then weights[f] = tonumber(w) end
  end
  wf:close()
end
local files = {}
local p = assert(io.popen("find -L spec -name '*_spec.lua'"))
for f in p:lines() do files[#files + 1] = f end
p:close()
table.sort(files, function(a, b)
  local wa, wb = weights[a] or 5, weights[b] or 5
  if wa ~= wb then return wa > wb end
  return a < b
end)
local load, out = {}, {}
for s = 1, n do load[s], out[s] = 0, {} end
for _, f in ipairs(files) do
  local best = 1
  for s = 2, n do if load[s] < load[best] then best = s end end
  load[best] = load[best] + (weights[f] or 5)
  table.insert(out[best], f)
end
print(table.concat(out[i], " "))
