-- Give slots back to the pool: an admission whose event was certainly not published (undone by
-- its api), or admissions the reconciler revoked (recorded in MySQL first).
-- KEYS: marker, winners, released; ARGV: the gate's epoch, then user1, seq1, ..., userN, seqN
-- Only while the gate is in that life, and each only if its user still holds that very slot;
-- otherwise the reconciler decides. Returns how many slots went back to the pool.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local released = 0
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('RPUSH', KEYS[3], ARGV[i + 1])
    released = released + 1
  end
end
return released
