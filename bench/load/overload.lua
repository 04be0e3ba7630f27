-- wrk script for S6 (overload): unique valid sign-ups, as signup.lua, but paced to an offered
-- rate instead of "as fast as answers come back". Each thread keeps a schedule (its share of the
-- rate) and every connection that becomes free waits for the next slot, so the offered load
-- stays put while the service rejects quickly; only when every connection waits for an answer
-- does the rate fall below the target (scripts/bench-load reports the rate actually offered).
-- Usage: wrk -t T -c C ... -s bench/load/overload.lua URL -- <run tag> <requests/s in all> <T>
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us() -- CLOCK_MONOTONIC (1), microseconds
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local count = 0
function setup(thread)
  thread:set("tid", count)
  count = count + 1
end

function init(args)
  tag = args[1] or "overload"
  per_thread = tonumber(args[2]) / tonumber(args[3])
  n, slots, start = 0, 0, nil
end

function delay()
  if start == nil then
    start = now_us()
  end
  slots = slots + 1
  local wait_ms = (start + slots * 1e6 / per_thread - now_us()) / 1000
  if wait_ms < 0 then
    return 0
  end
  return wait_ms
end

function request()
  n = n + 1
  local body = string.format('{"email":"load-%s-%d-%d@example.org","postcode":"%05d"}',
    tag, tid, n, 10115)
  return wrk.format("POST", "/api/v1/registrations",
    { ["Content-Type"] = "application/json" }, body)
end
