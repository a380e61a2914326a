-- tools/check_deps.lua OBJECT... : the dependency check of the C sources
-- (`make check-deps`). From the objects' symbol tables (nm), each object
-- depends on the objects that define the symbols it uses. Fails (exit 1)
-- on a cycle between files, or on an arrow that runs up the layers of
-- doc/ARCHITECTURE.md:
--
--   util < format < os < backend < core < lua < cli
--
-- (a part may use the parts below it and itself; one backend never uses
-- another). Prints the graph's size and every problem found.

local LAYERS = { "util", "format", "os", "backend", "core", "lua", "cli" }
local RANK = {}
for i, name in ipairs(LAYERS) do RANK[name] = i end

-- "src/backend/pack/log.c" -> "backend", "backend/pack"
local function part_of(source)
  local backend = source:match("^src/backend/([^/]+)/")
  if backend then return "backend", "backend/" .. backend end
  local p = source:match("^src/([^/]+)/")
  return p, p
end

-- An object's source file: build*/src/x/y.o -> src/x/y.c; build*/cli/x.o
-- -> src/cli/x.c (the CLI's objects are built into build/cli).
local function source_of(obj)
  local s = obj:match("(src/.+)%.o$")
  if s then return s .. ".c" end
  local cli = obj:match("/cli/([^/]+)%.o$")
  if cli then return "src/cli/" .. cli .. ".c" end
  return obj
end

local function nm(obj, flags)
  local p = assert(io.popen("nm " .. flags .. " '" .. obj:gsub("'", "'\\''") .. "'"))
  local out = p:read("a")
  p:close()
  return out
end

local files, defined, uses = {}, {}, {}
for _, obj in ipairs(arg) do
  local src = source_of(obj)
  if part_of(src) then
    files[#files + 1] = src
    uses[src] = {}
    for kind, sym in nm(obj, "--defined-only"):gmatch("%x+ (%a) ([%w_]+)") do
      if kind:match("[TDBRCV]") then defined[sym] = src end
    end
    for sym in nm(obj, "-u"):gmatch("U ([%w_]+)") do uses[src][#uses[src] + 1] = sym end
  end
end
table.sort(files)

-- file -> {file -> {symbols}}
local edges, nedges, problems = {}, 0, {}
for _, f in ipairs(files) do
  edges[f] = {}
  for _, sym in ipairs(uses[f]) do
    local g = defined[sym]
    if g and g ~= f then
      if not edges[f][g] then edges[f][g] = {}; nedges = nedges + 1 end
      table.insert(edges[f][g], sym)
    end
  end
end

-- Arrows that run up, or from one backend into another.
for _, f in ipairs(files) do
  local pf, ff = part_of(f)
  for g, syms in pairs(edges[f]) do
    local pg, fg = part_of(g)
    if RANK[pg] > RANK[pf] or (pf == "backend" and pg == "backend" and ff ~= fg) then
      problems[#problems + 1] = ("up: %s (%s) uses %s (%s): %s"):format(f, ff, g, fg,
        table.concat(syms, ", "))
    end
  end
end

-- Cycles between files: Tarjan's strongly connected components.
local index, low, onstack, stack, n = {}, {}, {}, {}, 0
local function strong(v)
  n = n + 1
  index[v], low[v] = n, n
  stack[#stack + 1] = v
  onstack[v] = true
  for w in pairs(edges[v]) do
    if not index[w] then
      strong(w)
      low[v] = math.min(low[v], low[w])
    elseif onstack[w] then
      low[v] = math.min(low[v], index[w])
    end
  end
  if low[v] == index[v] then
    local comp = {}
    repeat
      local w = table.remove(stack)
      onstack[w] = nil
      comp[#comp + 1] = w
    until w == v
    if #comp > 1 then
      table.sort(comp)
      problems[#problems + 1] = "cycle: " .. table.concat(comp, " <-> ")
    end
  end
end
for _, f in ipairs(files) do if not index[f] then strong(f) end end

print(("check-deps: %d files, %d arrows between them, %d problems"):format(#files, nedges, #problems))
table.sort(problems)
for _, p in ipairs(problems) do print("check-deps: " .. p) end
os.exit(#problems == 0 and 0 or 1)
