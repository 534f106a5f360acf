-- The gate's epoch: one number per life of a campaign's Redis gate, from a counter kept where
-- Redis cannot lose it. Every initialisation or rebuild takes the next value, so two lives of
-- the same gate never share an epoch, even when both start within the same millisecond or
-- Redis lost everything in between. Runs unchanged on MariaDB 10.11 and MySQL 8.4.

ALTER TABLE campaign
    ADD COLUMN gate_epoch BIGINT UNSIGNED NOT NULL DEFAULT 0;
