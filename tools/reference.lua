--- tools/reference.lua: the API reference (doc/REFERENCE.md) from the
-- LDoc comments of the sources, and the parser spec/reference_spec.lua
-- checks them with.
--
--   lua5.4 tools/reference.lua > doc/REFERENCE.md     (what `make doc` does)
--
-- A documented function is a block of comment lines that starts with `---`
-- and is followed by a `function NAME(PARAMS)` line. Tags, as LDoc reads
-- them: @param NAME TEXT, @return TEXT, @raise TEXT, @usage (the lines
-- after it, up to the next tag, are Lua code: the spec runs each one).
-- The same comments feed LDoc (`make doc` also writes build/doc/ with it
-- when lua-ldoc is installed).
local M = {}

-- The files of the public API, in the reference's order: the file, the
-- section title, and how a function name of the source reads in the API.
M.SOURCES = {
  { file = "lua/mydb/init.lua", title = "mydb: the module", names = { ["mydb."] = "mydb.", ["Db:"] = "db:" } },
  { file = "lua/mydb/batch.lua", title = "The batch builder (db:batch)", names = { ["b:"] = "b:" } },
  { file = "lua/mydb/view.lua", title = "Views (db:at)", names = { ["View:"] = "view:" } },
  { file = "lua/mydb/serializer.lua", title = "Classes", names = {
      ["serializer.register_class"] = "mydb.register_class",
      ["serializer.unregister_class"] = "mydb.unregister_class" } },
  { file = "lua/mydb/handlers.lua", title = "mydb.handlers: type handlers", names = { ["handlers."] = "mydb.handlers." } },
  { file = "lua/mydb/policies.lua", title = "mydb.policies: use_refs policies", names = { ["policies."] = "mydb.policies." } },
  { file = "lua/mydb/resolvers.lua", title = "mydb.resolvers: merge resolvers", names = { ["resolvers."] = "mydb.resolvers." } },
  { file = "lua/mydb/errors.lua", title = "mydb.errors: error values and codes", names = { ["errors."] = "mydb.errors." } },
}

-- The repository root (the sources' paths are relative to it).
local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/tools/reference%.lua$") or "."

local function read(path)
  local f = assert(io.open(ROOT .. "/" .. path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

-- The API name of a source name (nil: not part of the public API).
local function api_name(names, src)
  local best
  for prefix, api in pairs(names) do
    if src:sub(1, #prefix) == prefix and (not best or #prefix > #best) then best = prefix end
  end
  if not best then return nil end
  local rest = src:sub(#best + 1)
  if rest:sub(1, 1) == "_" then return nil end -- private by convention
  return names[best] .. rest
end

-- Splits a doc block (lines without their comment marks) into a
-- description and tags.
local function parse_block(lines)
  local doc = { description = {}, params = {}, returns = {}, raises = {}, usages = {}, fields = {} }
  local cur -- the list the current line continues
  for _, line in ipairs(lines) do
    local tag, rest = line:match("^%s*@(%w+)%s*(.*)$")
    if tag == "param" or tag == "field" then
      local name, text = rest:match("^(%S+)%s*(.*)$")
      local list = tag == "param" and doc.params or doc.fields
      list[#list + 1] = { name = name, text = { text } }
      cur = list[#list].text
    elseif tag == "return" or tag == "raise" then
      local list = tag == "return" and doc.returns or doc.raises
      list[#list + 1] = { rest }
      cur = list[#list]
    elseif tag == "usage" then
      doc.usages[#doc.usages + 1] = { code = {} }
      cur = doc.usages[#doc.usages].code
      if rest ~= "" then cur[#cur + 1] = rest end
    elseif tag then
      error("unknown doc tag @" .. tag)
    else
      cur = cur or doc.description
      cur[#cur + 1] = line
    end
  end
  local function trim(t) return (table.concat(t, "\n"):gsub("^%s+", ""):gsub("%s+$", "")) end
  doc.description = trim(doc.description)
  for _, p in ipairs(doc.params) do p.text = trim(p.text) end
  for _, f in ipairs(doc.fields) do f.text = trim(f.text) end
  for i, r in ipairs(doc.returns) do doc.returns[i] = trim(r) end
  for i, r in ipairs(doc.raises) do doc.raises[i] = trim(r) end
  for _, u in ipairs(doc.usages) do u.code = table.concat(u.code, "\n"):gsub("%s+$", "") end
  return doc
end

--- The documented functions of one source: a list of {name=, src_name=,
-- params= (the source's parameter names), line=, doc=} in source order,
-- and the undocumented public functions' {name=, line=}.
function M.parse_file(spec)
  local lines = {}
  for line in (read(spec.file) .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  local entries, bare, block = {}, {}, nil
  for i, line in ipairs(lines) do
    local body = line:match("^%s*%-%-%-(.*)$")
    if body and not line:match("^%s*%-%-%-%-") then
      block = { (body:gsub("^ ", "")) }
    elseif block and line:match("^%s*%-%-") then
      local text = line:match("^%s*%-%-(.*)$")
      block[#block + 1] = (text:gsub("^ ", ""))
    else
      local src, params = line:match("^%s*function%s+([%w_%.:]+)%s*%(([^)]*)%)")
      local tsrc = not src and line:match("^([%w_%.]+)%s*=%s*{")
      local name = (src or tsrc) and api_name(spec.names, src or tsrc)
      if name and tsrc then
        -- a documented table (errors.codes): its keys are @field tags
        if block then
          entries[#entries + 1] = { name = name, src_name = tsrc, line = i, file = spec.file,
                                    table = true, doc = parse_block(block) }
        end
      elseif name then
        local plist = {}
        for p in params:gmatch("[^,%s]+") do plist[#plist + 1] = p end
        if block then
          entries[#entries + 1] = { name = name, src_name = src, params = plist, line = i,
                                    file = spec.file, doc = parse_block(block) }
        else
          bare[#bare + 1] = { name = name, line = i, file = spec.file }
        end
      end
      block = nil
    end
  end
  return entries, bare
end

--- Every source's entries: sections {title=, file=, entries=}, a map
-- name -> entry, and the undocumented public functions.
function M.parse_all()
  local sections, by_name, bare = {}, {}, {}
  for _, spec in ipairs(M.SOURCES) do
    local entries, b = M.parse_file(spec)
    sections[#sections + 1] = { title = spec.title, file = spec.file, entries = entries }
    for _, e in ipairs(entries) do by_name[e.name] = e end
    for _, x in ipairs(b) do bare[#bare + 1] = x end
  end
  return sections, by_name, bare
end

-- The documented parameter names (those of the doc, not of the source).
local function signature(e)
  local names = {}
  for _, p in ipairs(e.doc.params) do names[#names + 1] = p.name end
  if e.table then return e.name end
  return e.name .. "(" .. table.concat(names, ", ") .. ")"
end

--- The reference as Markdown.
function M.markdown()
  local sections = M.parse_all()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("# mydb API reference")
  w("")
  w("Generated by `make doc` (tools/reference.lua) from the LDoc comments of the sources;")
  w("do not edit: spec/reference_spec.lua fails when this file differs from the sources, when a")
  w("public function has no entry, when a documented parameter list is not the function's, or")
  w("when an example fails. Every example runs against a fresh store: `db` is a handle on it with")
  w("tenant \"acme\" initialized, `root` a fresh directory for other stores. Errors are raised as")
  w("mydb error values `{code=, message=}` (see mydb.errors at the end).")
  w("")
  for _, s in ipairs(sections) do
    w("- [" .. s.title .. "](#" .. s.title:lower():gsub("[^%w%s%-]", ""):gsub("%s", "-") .. ")")
  end
  for _, s in ipairs(sections) do
    w("")
    w("## " .. s.title)
    w("")
    w("Source: `" .. s.file .. "`.")
    for _, e in ipairs(s.entries) do
      local d = e.doc
      w("")
      w("### `" .. signature(e) .. "`")
      w("")
      w(d.description)
      if #d.params > 0 then
        w("")
        w("Parameters:")
        w("")
        for _, p in ipairs(d.params) do w("- `" .. p.name .. "`: " .. p.text:gsub("\n", " ")) end
      end
      if #d.fields > 0 then
        w("")
        w("Fields:")
        w("")
        for _, f in ipairs(d.fields) do w("- `" .. f.name .. "`: " .. f.text:gsub("\n", " ")) end
      end
      if #d.returns > 0 then
        w("")
        for _, r in ipairs(d.returns) do w("Returns: " .. r:gsub("\n", " ")) ; w("") end
        out[#out] = nil
      end
      if #d.raises > 0 then
        w("")
        for _, r in ipairs(d.raises) do w("Raises: " .. r:gsub("\n", " ")) ; w("") end
        out[#out] = nil
      end
      for _, u in ipairs(d.usages) do
        w("")
        w("```lua")
        w(u.code)
        w("```")
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

if arg and arg[0] and arg[0]:match("reference%.lua$") and ... == nil then
  io.write(M.markdown())
end

return M
