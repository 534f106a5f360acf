-- The reconciler's lease: one api at a time reconciles.
-- KEYS: the lease key; ARGV: this process's lease token, the lease's time to live in ms
-- Returns 1 when this process holds the lease (taken or renewed), 0 when another does.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
