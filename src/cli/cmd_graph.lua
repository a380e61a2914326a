--- mydb.cmd.graph: a commit list drawn as `git log --graph` draws it.
--
-- commits: newest first, each {id=, parents={...}} (db:log's order, every
-- parent of merges followed). Each commit's line starts with its lane:
-- "*" in its column, "|" in the others; a merge opens a lane ("|\"), a
-- lane whose next commit is already in another lane closes into it ("|/").
local graph = {}

local function index_of(list, v)
  for i, x in ipairs(list) do
    if x == v then return i end
  end
end

local function lanes(n, mark_at, mark)
  local t = {}
  for i = 1, n do t[i] = i == mark_at and mark or "|" end
  return table.concat(t, " ")
end

-- The line drawn when a new lane opens right of col (old_n lanes before).
local function opening(col, old_n)
  local s = {}
  for i = 1, col do s[#s + 1] = (i > 1 and " " or "") .. "|" end
  s[#s + 1] = "\\"
  for _ = col + 1, old_n do s[#s + 1] = " \\" end
  return table.concat(s)
end

-- The line drawn when lane `gone` closes into the lane on its left.
local function closing(gone, old_n)
  local s = {}
  for i = 1, gone - 1 do s[#s + 1] = (i > 1 and " " or "") .. "|" end
  s[#s + 1] = "/"
  for _ = gone + 1, old_n do s[#s + 1] = " /" end
  return table.concat(s)
end

--- Lines of the graph; label(commit) is the text after the lanes.
function graph.lines(commits, label)
  local out, cols = {}, {}
  for _, c in ipairs(commits) do
    local col = index_of(cols, c.id)
    if not col then
      cols[#cols + 1] = c.id
      col = #cols
    end
    out[#out + 1] = lanes(#cols, col, "*") .. " " .. label(c)
    local parents = c.parents or {}
    local first = parents[1]
    local n = #cols
    if first == nil then
      table.remove(cols, col)
      if col <= #cols then out[#out + 1] = closing(col, n) end
    else
      local other = index_of(cols, first)
      if other and other ~= col then
        -- the first parent is already drawn: this lane joins it
        local gone = math.max(other, col)
        table.remove(cols, gone)
        cols[math.min(other, col)] = first
        out[#out + 1] = closing(gone, n)
      else
        cols[col] = first
      end
      for k = 2, #parents do
        if not index_of(cols, parents[k]) then
          local at = index_of(cols, first) or col
          table.insert(cols, at + 1, parents[k])
          out[#out + 1] = opening(at, #cols - 1)
        end
      end
    end
  end
  return out
end

return graph
