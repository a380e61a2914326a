-- spec/powerloss/run.lua BACKEND [MAX_STATES]: the power-loss test (issue 11),
-- in the manner of ALICE (Pillai et al., OSDI 2014).
--
-- 1. Records the file-system calls of workload.lua (fsync on) with strace,
--    with the data written, and the workload's BEGIN/ACK markers.
-- 2. Replays them on a model of the file system under the weak POSIX model:
--    a file's data is durable once the file is fsynced (or fdatasynced),
--    a name (create, link, rename, unlink, mkdir) once its parent directory
--    is fsynced. Everything else may or may not have reached the disk.
-- 3. At every sync point and every marker, makes crash states from what is
--    durable and what is pending: all pending lost; all pending kept (what
--    a process kill leaves); each pending name alone kept or alone lost;
--    each pending file's new data lost (a name without its data), zeroed,
--    torn at a page (the earlier page zero, a later one written) and at a
--    byte; labelled "ordered" when ext4 data=ordered can produce them too,
--    "weak" when only a weaker file system or disk can.
-- 4. Rebuilds each distinct state as a directory and checks it in a fresh
--    process (check.lua): it opens, verify is clean, the contents are those
--    of the acknowledged calls (the call in flight all or nothing), and it
--    takes a write. Prints counts; the last line "N passed, N failed".
package.path = "./?.lua;" .. package.path

-- "loose", "pack", "loose-concurrent" or "pack-concurrent": two writer
-- processes on one tenant (pack: group commit), each with entries of its
-- own, and one value both write (deduplication).
local mode = arg[1] or "loose"
local backend = mode:match("^(%a+)")
local name = mode:find("concurrent", 1, true) and "concurrent" or "single"
local WRITERS = name == "concurrent" and 2 or 1
local MAX = tonumber(arg[2] or "1500")
local PAGE = 4096

local function sh(cmd)
  local ok = os.execute(cmd)
  if not ok then error("command failed: " .. cmd) end
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function unhex(s) return (s:gsub("\\x(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end

local tmp = os.getenv("TMPDIR") or "/tmp"
local work = io.popen("mktemp -d " .. q(tmp .. "/mydb-powerloss.XXXXXX")):read("l")
local root, logpath, tracepath = work .. "/db", work .. "/log", work .. "/trace"

-- ---- 1. record ------------------------------------------------------------
local CALLS = "openat,open,creat,mkdir,mkdirat,write,pwrite64,pwritev,writev,ftruncate,rename,renameat,"
  .. "renameat2,link,linkat,unlink,unlinkat,rmdir,fsync,fdatasync,close,lseek,dup,dup2,dup3,fcntl"
local function writer(w)
  return ("lua5.4 spec/powerloss/workload.lua %s %s %s %s %d"):format(q(root), backend, q(logpath .. w), name, w)
end
local cmd = writer(1)
if WRITERS == 2 then -- the second starts while the first writes
  cmd = "sh -c " .. q(writer(1) .. " & sleep 0.2; " .. writer(2) .. " & wait")
end
sh(("strace -f -y -xx -s 4194304 -o %s -e trace=%s %s"):format(q(tracepath), CALLS, cmd))

-- ---- 2. model -------------------------------------------------------------
local inodes, names, dnames = {}, {}, {} -- id -> {dir=, data=, durable=}; path -> id
local fds = {}                           -- "pid:fd" -> {ino=, off=, append=}
local nextino = 1
inodes[1] = { dir = true, data = "", durable = "" }
names[work], dnames[work] = 1, 1
local points = {}                        -- crash points: snapshots of the model
local acked, inflight = {}, {} -- per writer
for w = 1, WRITERS do acked[w], inflight[w] = 0, 0 end
local function is_log(p) return p:sub(1, #logpath) == logpath and p:sub(#logpath + 1):match("^%d+$") ~= nil end
local function counts_text(a, i)
  local t = {}
  for w = 1, WRITERS do t[#t + 1] = ("%d=%d:%d"):format(w, a[w], i[w]) end
  return table.concat(t, ",")
end

local function under_root(p) return p == root or p:sub(1, #root + 1) == root .. "/" end
-- ROOT's parent exists, durably, before the workload: a sync of it is
-- what makes ROOT's own name durable.
local function tracked(p) return p == work or under_root(p) end
local function parent(p) return p:match("^(.*)/[^/]*$") end
local function newino(dir)
  nextino = nextino + 1
  inodes[nextino] = { dir = dir, data = "", durable = nil }
  return nextino
end
local function join(dirpath, name)
  if name:sub(1, 1) == "/" then return name end
  return dirpath .. "/" .. name
end

local function snapshot(why)
  local ino = {}
  for id, n in pairs(inodes) do ino[id] = { dir = n.dir, data = n.data, durable = n.durable } end
  local nm, dn = {}, {}
  for p, id in pairs(names) do nm[p] = id end
  for p, id in pairs(dnames) do dn[p] = id end
  points[#points + 1] = { inodes = ino, names = nm, dnames = dn, counts = counts_text(acked, inflight), why = why }
end

local function write_at(id, off, data)
  local n = inodes[id]
  local cur = n.data
  if off > #cur then cur = cur .. ("\0"):rep(off - #cur) end
  n.data = cur:sub(1, off) .. data .. cur:sub(off + #data + 1)
end

-- Fields of one call: fd references "N<path>" and quoted strings.
local function fdref(s) local fd, p = s:match("^%s*(%-?%d+)<([^>]*)>") return fd, p and unhex(p) end
local function strings(s)
  local out = {}
  for x in s:gmatch('"(.-)"') do out[#out + 1] = unhex(x) end
  return out
end

local pending_lines = {}
local function handle(pid, call, args, ret, retpath)
  local key = function(fd) return pid .. ":" .. fd end
  if call == "openat" or call == "open" or call == "creat" then
    if ret < 0 or not retpath or not tracked(retpath) and not is_log(retpath) then return end
    local id = names[retpath]
    if not id and is_log(retpath) then id = -1 end
    if not id then
      if not (args:find("O_CREAT") or call == "creat") then return end
      id = newino(args:find("O_DIRECTORY") ~= nil)
      names[retpath] = id
    end
    if id ~= -1 and args:find("O_TRUNC") then inodes[id].data = "" end
    fds[key(ret)] = { ino = id, off = 0, append = args:find("O_APPEND") ~= nil, path = retpath }
  elseif call == "mkdir" or call == "mkdirat" then
    if ret ~= 0 then return end
    local p
    if call == "mkdir" then p = strings(args)[1] else
      local _, dp = fdref(args)
      p = join(dp or "", strings(args)[1])
    end
    if under_root(p) then names[p] = newino(true) end
  elseif call == "write" or call == "pwrite64" or call == "pwritev" or call == "writev" then
    if ret <= 0 then return end
    local fd = fdref(args)
    local f = fds[key(fd)]
    if not f then return end
    local data = table.concat(strings(args)):sub(1, ret)
    if f.ino == -1 then -- a marker
      for what, w, i in data:gmatch("(%u+) (%d+) (%d+)") do
        w, i = tonumber(w), tonumber(i)
        if what == "BEGIN" then inflight[w] = i
        else acked[w], inflight[w] = i, 0; snapshot(("ack %d.%d"):format(w, i)) end
      end
      return
    end
    local off
    if call == "pwrite64" or call == "pwritev" then off = tonumber(args:match(",%s*(%d+)%s*$"))
    elseif f.append then off = #inodes[f.ino].data
    else off = f.off end
    write_at(f.ino, off, data)
    if call == "write" or call == "writev" then f.off = off + #data end
  elseif call == "ftruncate" then
    if ret ~= 0 then return end
    local fd = fdref(args)
    local f = fds[key(fd)]
    if not f or f.ino == -1 then return end
    local len = tonumber(args:match(",%s*(%d+)%s*$"))
    local n = inodes[f.ino]
    n.data = #n.data >= len and n.data:sub(1, len) or n.data .. ("\0"):rep(len - #n.data)
  elseif call == "lseek" then
    local fd = fdref(args)
    if fds[key(fd)] and ret >= 0 then fds[key(fd)].off = ret end
  elseif call == "dup" or call == "dup2" or call == "dup3" or (call == "fcntl" and args:find("F_DUPFD")) then
    local fd = fdref(args)
    if fds[key(fd)] and ret >= 0 then fds[key(ret)] = fds[key(fd)] end
  elseif call == "close" then
    local fd = fdref(args)
    fds[key(fd)] = nil
  elseif call == "link" or call == "linkat" or call == "rename" or call == "renameat" or call == "renameat2" then
    if ret ~= 0 then return end
    local s = strings(args)
    local from, to
    if call == "link" or call == "rename" then from, to = s[1], s[2] else
      local d1, d2 = {}, {}
      for _, p in args:gmatch("(%-?%d+)<([^>]*)>") do d1[#d1 + 1] = unhex(p) end
      d2 = d1
      from, to = join(d1[1] or "", s[1]), join(d2[2] or d2[1] or "", s[2])
    end
    if not under_root(to) then return end
    local id = names[from]
    if not id then return end
    if call:find("rename") then names[from] = nil end
    names[to] = id
  elseif call == "unlink" or call == "unlinkat" or call == "rmdir" then
    if ret ~= 0 then return end
    local p = strings(args)[1]
    if call == "unlinkat" then local _, dp = fdref(args); p = join(dp or "", p) end
    names[p] = nil
  elseif call == "fsync" or call == "fdatasync" then
    if ret ~= 0 then return end
    local fd = fdref(args)
    local f = fds[key(fd)]
    if not f or f.ino == -1 then return end
    snapshot(call .. " " .. f.path:sub(#root + 2))
    local n = inodes[f.ino]
    if n.dir then
      local d = f.path
      for p in pairs(dnames) do if parent(p) == d and names[p] == nil then dnames[p] = nil end end
      for p, id in pairs(names) do if parent(p) == d then dnames[p] = id end end
    else
      n.durable = n.data
    end
  end
end

for line in io.lines(tracepath) do
  local pid, rest = line:match("^(%d+)%s+(.*)$")
  if pid then
    local call, args = rest:match("^([%w_]+)%((.*) <unfinished %.%.%.>$")
    if call then
      pending_lines[pid] = { call, args }
    else
      local rcall, rargs = rest:match("^<%.%.%. ([%w_]+) resumed>(.*)$")
      if rcall and pending_lines[pid] then
        rest = rcall .. "(" .. pending_lines[pid][2] .. rargs
        pending_lines[pid] = nil
      end
      local c, a, ret, rp = rest:match("^([%w_]+)%((.*)%)%s+=%s+(%-?%d+)(.*)$")
      if c then
        local retpath = rp:match("^<([^>]*)>")
        handle(pid, c, a, tonumber(ret), retpath and unhex(retpath))
      end
    end
  end
end
snapshot("end")

-- ---- 3. crash states ----------------------------------------------------------
local seen, states = {}, {}
local function add(pt, nm, data, label, desc)
  -- nm: path -> id; data: id -> bytes
  local paths = {}
  for p in pairs(nm) do paths[#paths + 1] = p end
  table.sort(paths)
  local sig = {}
  for _, p in ipairs(paths) do
    local id = nm[p]
    sig[#sig + 1] = p .. "=" .. (pt.inodes[id].dir and "/" or (data[id] or ""))
  end
  local s = table.concat(sig, "\0") .. "\0" .. pt.counts
  if seen[s] then return end
  seen[s] = true
  states[#states + 1] = { pt = pt, names = nm, data = data, label = label, desc = desc .. " at " .. pt.why,
                          paths = paths }
end

local function copy(t) local o = {} for k, v in pairs(t) do o[k] = v end return o end

for _, pt in ipairs(points) do
  local vol, dur = {}, {}
  for id, n in pairs(pt.inodes) do vol[id] = n.data; dur[id] = n.durable or "" end
  add(pt, pt.dnames, dur, "ordered", "all pending lost")
  add(pt, pt.names, vol, "ordered", "all pending kept")
  local all = {}
  for p in pairs(pt.names) do all[p] = true end
  for p in pairs(pt.dnames) do all[p] = true end
  for p in pairs(all) do
    if pt.names[p] ~= pt.dnames[p] then
      local a = copy(pt.dnames); a[p] = pt.names[p]
      add(pt, a, vol, "ordered", "only the name " .. p:sub(#root + 2) .. " kept")
      local b = copy(pt.names); b[p] = pt.dnames[p]
      add(pt, b, vol, "ordered", "the name " .. p:sub(#root + 2) .. " lost")
    end
  end
  for id, n in pairs(pt.inodes) do
    local d = n.durable or ""
    if not n.dir and n.data ~= d then
      local what = "file #" .. id
      for p, i in pairs(pt.names) do if i == id then what = p:sub(#root + 2) end end
      for _, base in ipairs({ { pt.names, vol, "others kept" }, { pt.dnames, dur, "others lost" } }) do
        local nm, data, others = base[1], base[2], base[3]
        local function variant(bytes, label, desc)
          local dd = copy(data); dd[id] = bytes
          add(pt, nm, dd, label, what .. ": " .. desc .. ", " .. others)
        end
        variant(d, "weak", "new data lost")
        local grown = #n.data > #d and n.data:sub(1, #d) == d
        if grown then
          local new = n.data:sub(#d + 1)
          variant(d .. ("\0"):rep(#new), "weak", "new data zeros")
          variant(d .. new:sub(1, #new // 2), "ordered", "append torn at a byte")
          -- page-torn: the first page of the new region not written, a later one written
          local first_end = PAGE - (#d % PAGE)
          if #new > first_end then
            variant(d .. ("\0"):rep(first_end) .. new:sub(first_end + 1), "weak", "append torn: first page zero")
            variant(d .. new:sub(1, first_end), "ordered", "append torn at a page")
          end
        end
        variant(n.data, "ordered", "new data kept")
      end
    end
  end
end

-- Deterministic sampling when there are too many.
local total = #states
if #states > MAX then
  local kept, step = {}, #states / MAX
  for i = 0, MAX - 1 do kept[#kept + 1] = states[math.floor(i * step) + 1] end
  states = kept
end

-- ---- 4. rebuild and check ---------------------------------------------------------
local jobs = assert(io.open(work .. "/jobs", "w"))
for i, st in ipairs(states) do
  local dir = ("%s/s%05d"):format(work, i)
  local present = {}
  for _, p in ipairs(st.paths) do -- sorted: parents first
    local par = parent(p)
    if p == work then
      present[p] = true
    elseif present[par] then
      local target = dir .. "/db" .. p:sub(#root + 1)
      local id = st.names[p]
      if st.pt.inodes[id].dir then
        sh("mkdir -p " .. q(target))
      else
        local f = assert(io.open(target, "wb"))
        f:write(st.data[id] or "")
        f:close()
      end
      present[p] = true
    end
  end
  jobs:write(("%d\t%s\t%s\t%s\t%s\n"):format(i, dir .. "/db", backend, name, st.pt.counts))
end
jobs:close()

local pass, fail, by_label, shown = 0, 0, {}, 0
local p = io.popen("lua5.4 spec/powerloss/check.lua " .. q(work .. "/jobs") .. " 2>&1")
for line in p:lines() do
  local okid = line:match("^PASS (%d+)")
  local failid, why = line:match("^FAIL (%d+): (.*)$")
  local id = tonumber(okid or failid)
  if id then
    local st = states[id]
    by_label[st.label] = by_label[st.label] or { 0, 0 }
    if okid then pass = pass + 1; by_label[st.label][1] = by_label[st.label][1] + 1
    else
      fail = fail + 1; by_label[st.label][2] = by_label[st.label][2] + 1
      if shown < 8 then
        shown = shown + 1
        print(("powerloss: %s: VIOLATION (%s) %s: %s"):format(mode, st.label, st.desc, why))
      end
    end
  else
    print("powerloss: checker: " .. line)
  end
end
p:close()
if pass + fail < #states then
  fail = fail + (#states - pass - fail)
  print("powerloss: the checker stopped early")
end
for label, c in pairs(by_label) do
  print(("powerloss: %s: %s states: %d clean, %d violations"):format(mode, label, c[1], c[2]))
end
print(("powerloss: %s: %d sync points and markers, %d distinct crash states%s, %d checked, %d violations")
  :format(mode, #points, total, total > #states and (" (sampled to " .. #states .. ")") or "", pass + fail, fail))
if fail == 0 then sh("rm -rf " .. q(work)) else print("powerloss: states kept in " .. work) end
print(("%d passed, %d failed"):format(pass, fail))
os.exit(fail == 0 and 0 or 1)
