-- Install a built gate, atomically: a rebuilt gate only if no gate is live, releasing the
-- rebuild lock; a campaign's first gate over whatever Redis holds for its id (a gate an earlier
-- campaign of that id left), keeping the lock until MySQL records the gate (the caller unlocks).
-- KEYS: marker, winners, next_seq, released, rebuild_lock, redis_run
-- ARGV: lock token, new epoch, next_seq, 'first' or 'rebuild', n (winner count),
--       user1, seq1, ..., userN, seqN, then the free slots
-- Returns 1 installed, 0 a live gate exists (nothing touched), -1 the lock is not ours.
if ARGV[4] ~= 'first' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('GET', KEYS[5]) ~= ARGV[1] then return -1 end
-- Read before any write: a server whose INFO cannot be read must leave the gate untouched.
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if not run then return redis.error_reply('ERR the gate needs INFO server to report run_id') end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  redis.call('HSET', KEYS[2], ARGV[6 + 2 * i], ARGV[7 + 2 * i])
end
redis.call('SET', KEYS[3], ARGV[3])
for i = 6 + 2 * n, #ARGV do
  redis.call('RPUSH', KEYS[4], ARGV[i])
end
redis.call('SET', KEYS[6], run)
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[4] ~= 'first' then redis.call('DEL', KEYS[5]) end
return 1
