-- spec/guarantee/crash_writer.lua - the writer that spec/guarantee_crash_spec
-- kills with SIGKILL. Arguments: root, log file, round number.
--
-- Opens the store with fsync on (the default) and runs the operation
-- schedule of crash_ops.lua (saves, puts, put_many) forever. After each
-- call RETURNS it appends "<op index> <digest or ok>\n" to the log and
-- flushes it: the line is then in the kernel, which a SIGKILL of this
-- process does not lose. So every logged operation had returned before
-- the kill, and at most one operation (the next one) was in flight.
local root, logpath, round = ...
round = assert(tonumber(round))
local ops = dofile((debug.getinfo(1, "S").source:sub(2):gsub("crash_writer%.lua$", "crash_ops.lua")))
local mydb = require "mydb"

local log = assert(io.open(logpath, "a"))
log:setvbuf("no")
local db = mydb.open(root, { fsync = true })
db:init("t")
log:write(("ready %d\n"):format(round))
local i = 0
while true do
  i = i + 1
  local op = ops.op(round, i)
  local result
  if op.kind == "save" then
    result = db:save("t", "writer", op.entry, op.value)
  elseif op.kind == "put" then
    db:put("t", "writer", ops.RECS, op.key, op.value)
    result = "ok"
  else
    db:put_many("t", "writer", ops.RECS, op.items)
    result = "ok"
  end
  log:write(("%d %s\n"):format(i, result)) -- one write(2)
end
