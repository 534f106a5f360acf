-- Where a campaign's own history begins. Runs unchanged on MariaDB 10.11 and MySQL 8.4.
--
-- first_epoch: the life of the campaign's first gate. That gate is built like a rebuild, from
-- what MySQL and Kafka already hold for the campaign id (rows, open failed events, unread
-- events: left by an earlier campaign of the same id, or produced before it was created), and
-- its build raised a fence (`gate_fence`, same epoch) at the topic's high watermarks. Events
-- below that fence predate the campaign: the verifier names them leftovers of an earlier
-- incarnation instead of counting them as the run's. NULL until the first gate is built (and
-- for campaigns whose first gate predates this migration).
ALTER TABLE campaign
    ADD COLUMN first_epoch BIGINT UNSIGNED NULL;
