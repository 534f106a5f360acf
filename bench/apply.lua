-- wrk script: POST one apply per request, each with a user id no other request uses.
-- The campaign comes from the CAMPAIGN env var (default "default").
local campaign = os.getenv("CAMPAIGN") or "default"
local next_thread = 1

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

local counter = 0

function request()
  counter = counter + 1
  local user = thread_id * 100000000 + counter
  return wrk.format("POST", "/campaigns/" .. campaign .. "/apply",
    { ["Content-Type"] = "application/json" },
    '{"user_id":' .. user .. '}')
end
