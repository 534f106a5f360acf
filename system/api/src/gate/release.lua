-- Undo one admission whose event was certainly not published.
-- KEYS: marker, winners, released; ARGV: user id, seq, the epoch that admitted it
-- Only if the gate is still in that life and the user still holds that very slot: the user
-- leaves the gate and the slot is reused. Otherwise the reconciler decides.
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('RPUSH', KEYS[3], ARGV[2])
  return 1
end
return 0
