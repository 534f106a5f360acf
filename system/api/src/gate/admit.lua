-- The gate: one atomic step for one (campaign, user) apply.
-- KEYS: marker, winners (hash user -> seq), next_seq, released (list of free slots)
-- ARGV: user id, limit
-- Returns {verdict, seq, epoch}: {"issued", seq} | {"already", seq} | {"sold_out", 0}, with the
-- marker's value (the gate's epoch), or {"lost", 0, ""} when the marker is gone.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost', 0, ''} end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then return {'already', tonumber(held), epoch} end
local seq = redis.call('LPOP', KEYS[4])
if not seq then
  local taken = tonumber(redis.call('GET', KEYS[3]) or '0')
  if taken >= tonumber(ARGV[2]) then return {'sold_out', 0, epoch} end
  seq = redis.call('INCR', KEYS[3])
end
redis.call('HSET', KEYS[2], ARGV[1], seq)
return {'issued', tonumber(seq), epoch}
