-- A failed event keeps at most the first 16 KiB of its payload, with the whole payload's size
-- and SHA-256. A record of any size must be capturable (the BLOB column holds 65,535 bytes and
-- strict mode refuses more), so one oversized record can no longer stop a consumer, and it is
-- still identified. Runs unchanged on MariaDB 10.11 and MySQL 8.4.

ALTER TABLE failed_event
    ADD COLUMN payload_bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
    ADD COLUMN payload_sha256 CHAR(64) NOT NULL DEFAULT '';
