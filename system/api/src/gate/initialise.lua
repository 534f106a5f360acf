-- Initialise an empty gate for a campaign that never had one, in life ARGV[1], on this Redis
-- server (its run_id recorded for the restart check). Nothing happens if a gate exists.
-- KEYS: marker, redis_run; ARGV: the epoch
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if not run then return redis.error_reply('ERR the gate needs INFO server to report run_id') end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], run)
  return 1
end
return 0
