-- wrk script for S4 (claim storm): POST /invitations/<secret>/claim, each secret of the file
-- once; wrk ends as soon as every one is answered.
-- Usage: wrk -t1 ... -s bench/load/claim.lua URL -- <secrets file>
-- One thread (-t1): wrk's main thread sleeps for the whole -d duration whatever its threads do,
-- so the last answer interrupts it (SIGINT, which wrk handles by reporting and exiting).
local ffi = require("ffi")
ffi.cdef [[
  int getpid(void);
  int kill(int pid, int sig);
]]

function init(args)
  secrets = {}
  for line in io.lines(args[1]) do
    secrets[#secrets + 1] = line
  end
  sent, answered = 0, 0
end

function request()
  -- Past the end (other connections still wait for answers), click the last link again: what a
  -- person pressing twice does; wrk stops before counting its answer.
  sent = math.min(sent + 1, #secrets)
  return wrk.format("POST", "/invitations/" .. secrets[sent] .. "/claim",
    { ["Content-Type"] = "application/x-www-form-urlencoded" }, "")
end

function response(status, headers, body)
  answered = answered + 1
  if answered == #secrets then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end
