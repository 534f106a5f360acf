-- The gate: one atomic step for one (campaign, user) apply.
-- KEYS: marker, winners (hash user -> seq), next_seq, released (list of free slots), redis_run
-- ARGV: user id, limit, opens_at_ms or '', closes_at_ms or '' (the sale window, half-open),
--       '1' to check that Redis has not restarted since the gate was built, or ''
-- Returns {verdict, seq, epoch}: {"issued", seq} | {"already", seq} | {"sold_out", 0}, with the
-- marker's value (the gate's epoch); {"not_open", 0, ""} or {"closed", 0, ""} outside the window
-- by Redis's own clock, so every api agrees on it whatever its clock says; {"lost", 0, ""} when
-- the marker is gone, or when Redis restarted since the gate was built (its data may have lost
-- the last admissions: the marker is dropped, and the gate is rebuilt from MySQL and Kafka).
local opens, closes = ARGV[3] or '', ARGV[4] or ''
if opens ~= '' or closes ~= '' then
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  if opens ~= '' and now_ms < tonumber(opens) then return {'not_open', 0, ''} end
  if closes ~= '' and now_ms >= tonumber(closes) then return {'closed', 0, ''} end
end
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost', 0, ''} end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then return {'already', tonumber(held), epoch} end
-- Only a slot handed out can be handed out twice: the restart check guards that step alone.
if ARGV[5] == '1' then
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  if not run then return redis.error_reply('ERR the gate needs INFO server to report run_id') end
  if redis.call('GET', KEYS[5]) ~= run then
    redis.call('DEL', KEYS[1])
    return {'lost', 0, ''}
  end
end
local seq = redis.call('LPOP', KEYS[4])
if not seq then
  local taken = tonumber(redis.call('GET', KEYS[3]) or '0')
  if taken >= tonumber(ARGV[2]) then return {'sold_out', 0, epoch} end
  seq = redis.call('INCR', KEYS[3])
end
redis.call('HSET', KEYS[2], ARGV[1], seq)
return {'issued', tonumber(seq), epoch}
