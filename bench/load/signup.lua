-- wrk script for S1: every request a new, valid sign-up through the JSON API.
-- Usage: wrk ... -s bench/load/signup.lua URL -- <run tag>
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  tag = args[1] or "run"
  n = 0
end
function request()
  n = n + 1
  local body = string.format('{"email":"load-%s-%d-%d@example.org","postcode":"%05d"}',
    tag, tid, n, 10115)
  return wrk.format("POST", "/api/v1/registrations",
    { ["Content-Type"] = "application/json" }, body)
end
