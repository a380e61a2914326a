-- spec/powerloss/workload.lua ROOT BACKEND LOG [NAME WRITER]: runs the
-- calls of ops.lua (workload NAME, default "single", as writer WRITER,
-- default 1) with fsync on, writing "BEGIN w i" before and "ACK w i" after
-- each call to LOG, unbuffered, so that the system-call trace itself says
-- which calls had returned at any point.
package.path = "./?.lua;" .. package.path
local mydb = require "mydb"
local ops = require "spec.powerloss.ops"

local root, backend, logpath = arg[1], arg[2], arg[3]
local name, w = arg[4] or "single", tonumber(arg[5] or "1")
local log = assert(io.open(logpath, "w"))
log:setvbuf("no")
local db = mydb.open(root, { backend = backend, segment_bytes = 4096 })
for i, op in ipairs(ops.calls(name, w)) do
  log:write(("BEGIN %d %d\n"):format(w, i))
  ops.run(db, op)
  log:write(("ACK %d %d\n"):format(w, i))
end
db:close()
log:close()
