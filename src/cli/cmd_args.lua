--- mydb.cmd.args: the `mydb` command line -> {command=, pos={...}, opt={...}}.
--
-- Global options may come before or after the subcommand; a subcommand's
-- own options are declared in its spec: spec.flags (name -> true, no
-- value) and spec.values (name -> true, takes the next argument or
-- --name=VALUE). Short forms: -n N, -m MSG, -d, -h. "--" ends the options.
-- A usage error is raised as {usage = message} (exit status 2).
local args = {}

local GLOBAL_VALUES = { db = true, tenant = true, branch = true, user = true }
local GLOBAL_FLAGS = { json = true, help = true }
local SHORT = { n = "n", m = "message", d = "delete", h = "help", f = "force" }

local function usage(fmt, ...) error({ usage = fmt:format(...) }, 0) end
args.usage = usage

--- Parses argv (a list). commands: name -> spec. Returns the parse.
function args.parse(argv, commands)
  local r = { pos = {}, opt = {} }
  local i, only_pos = 1, false
  local function spec() return r.command and commands[r.command] or {} end
  while i <= #argv do
    local a = argv[i]
    if only_pos or a == "-" or a:sub(1, 1) ~= "-" then
      if r.command == nil and not only_pos then
        r.command = a
        if not commands[a] then usage("unknown command '%s' (try 'mydb --help')", a) end
      else
        r.pos[#r.pos + 1] = a
      end
    elseif a == "--" then
      only_pos = true
    else
      local name, val = a:match("^%-%-([%w_-]+)=(.*)$")
      if not name then
        name = a:match("^%-%-([%w_-]+)$")
        if not name and a:match("^%-%a$") then name = SHORT[a:sub(2)] end
        if not name then
          if a:match("^%-%d") then -- a negative number is a value
            r.pos[#r.pos + 1] = a
            i = i + 1
            goto continue
          end
          usage("unknown option '%s'", a)
        end
      end
      local s = spec()
      local takes = GLOBAL_VALUES[name] or (s.values and s.values[name])
      local flag = GLOBAL_FLAGS[name] or (s.flags and s.flags[name])
      if takes then
        if val == nil then
          i = i + 1
          val = argv[i]
          if val == nil then usage("option '--%s' needs a value", name) end
        end
        r.opt[name] = val
      elseif flag then
        if val ~= nil then usage("option '--%s' takes no value", name) end
        r.opt[name] = true
      else
        usage("unknown option '%s'%s", a, r.command and (" for '" .. r.command .. "'") or "")
      end
    end
    i = i + 1
    ::continue::
  end
  return r
end

return args
