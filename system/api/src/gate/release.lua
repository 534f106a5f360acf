-- Undo one admission whose event was certainly not published.
-- KEYS: winners, released; ARGV: user id, seq
-- Only if the user still holds that very slot: it leaves the gate and the slot is reused.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
