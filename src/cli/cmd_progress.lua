--- mydb.cmd.progress: a status line on stderr for long work, only when
-- stderr is a terminal (scripts and pipes see nothing).
--
-- The API reports no intermediate progress, so the line shows the work
-- under way with a spinner step per call of tick(), then the time taken.
local progress = {}

local tty -- cached: is stderr a terminal?

local function is_tty()
  if tty == nil then
    tty = os.getenv("MYDB_PROGRESS") == "1"
        or (os.getenv("MYDB_PROGRESS") ~= "0" and os.execute("test -t 2") == true)
  end
  return tty
end

local SPIN = { "|", "/", "-", "\\" }

--- Starts a status line; returns {tick=, done=}. Silent when not a terminal.
function progress.start(label)
  local p = { n = 0 }
  local t0 = os.clock()
  local on = is_tty()
  function p.tick()
    if not on then return end
    p.n = p.n + 1
    io.stderr:write(("\r%s %s"):format(label, SPIN[p.n % 4 + 1]))
    io.stderr:flush()
  end
  function p.done(ok)
    if not on then return end
    io.stderr:write(("\r%s %s (%.2f s)\n"):format(label, ok == false and "failed" or "done", os.clock() - t0))
    io.stderr:flush()
  end
  p.tick()
  return p
end

return progress
