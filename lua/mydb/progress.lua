--- mydb.progress: the one-line progress bar of long work (gc, repack,
-- copy, verify, fetch, push, clone, the mydb command's import), drawn on
-- stderr only when stderr is a terminal, so scripts and pipes see nothing.
--
-- MYDB_PROGRESS=0 turns it off; MYDB_PROGRESS=1 turns it on even when
-- stderr is not a terminal and draws every update at once (what a test
-- reads: no timing). On a terminal the bar appears once the work has taken
-- a second, redrawn at most ten times a second, and erased at the end.
local core = require "mydb.core"

local progress = {}

local now = core.monotonic

local mode -- "off", "tty" or "forced", found on first use

local function current_mode()
  if mode == nil then
    local env = os.getenv("MYDB_PROGRESS")
    if env == "1" then mode = "forced"
    elseif env == "0" then mode = "off"
    else mode = os.execute("test -t 2") == true and "tty" or "off" end
  end
  return mode
end

local WIDTH = 30

--- A bar for the work what ("verify", "fetch", ...): p.update(label, done
-- [, total]) draws "what label [####....] done/total" (without total:
-- "what label: done"); p.done() ends the line. enabled false: silent.
function progress.bar(what, enabled)
  local p = {}
  local m = enabled == false and "off" or current_mode()
  local t0, last, shown = now(), 0, false
  function p.update(label, done, total)
    if m == "off" then return end
    if m == "tty" then
      local t = now()
      if t - t0 < 1 or t - last < 0.1 then return end
      last = t
    end
    shown = true
    local line
    if total and total > 0 then
      local fill = math.min(WIDTH, math.floor(WIDTH * done / total))
      line = ("%s %s [%s%s] %d/%d"):format(what, label, ("#"):rep(fill), ("."):rep(WIDTH - fill), done, total)
    else
      line = ("%s %s: %d"):format(what, label, done)
    end
    io.stderr:write("\r", line:sub(1, 100), "\27[K")
    if m == "forced" then io.stderr:write("\n") end -- (one update a line, for whoever reads it)
    io.stderr:flush()
  end
  function p.done()
    if shown and m == "tty" then io.stderr:write("\r\27[K") io.stderr:flush() end
  end
  return p
end

--- A bar (as progress.bar) that is also a to-be-closed value: `local bar
-- <close> = progress.closing(what)` ends its line however the block ends.
function progress.closing(what, enabled)
  local p = progress.bar(what, enabled)
  return setmetatable(p, { __close = function() p.done() end })
end

return progress
