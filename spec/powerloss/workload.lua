-- spec/powerloss/workload.lua ROOT BACKEND LOG: runs the calls of ops.lua
-- with fsync on, writing "BEGIN i" before and "ACK i" after each call to
-- LOG, unbuffered, so that the system-call trace itself says which calls
-- had returned at any point.
package.path = "./?.lua;" .. package.path
local mydb = require "mydb"
local ops = require "spec.powerloss.ops"

local root, backend, logpath = arg[1], arg[2], arg[3]
local log = assert(io.open(logpath, "w"))
log:setvbuf("no")
local db = mydb.open(root, { backend = backend, segment_bytes = 4096 })
for i, op in ipairs(ops.list()) do
  log:write(("BEGIN %d\n"):format(i))
  ops.run(db, op)
  log:write(("ACK %d\n"):format(i))
end
db:close()
log:close()
