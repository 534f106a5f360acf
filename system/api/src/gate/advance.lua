-- Move the gate to its next life, keeping every winner, if it is still in the life expected.
-- KEYS: marker; ARGV: the live epoch, the next epoch
-- Returns 1 moved, 0 the gate had moved on or is lost (nothing touched).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
