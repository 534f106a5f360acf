-- The original course's stages, runnable beside this project's design (docs/stages.md).
-- Runs unchanged on MariaDB 10.11 and MySQL 8.4.
--
-- A campaign names the strategy it issues with. The course's stages write tables shaped like
-- the course's own: no unique key, no slot, no limit check, so their flaws can show. They are
-- kept apart from `coupon`, whose constraints would refuse exactly what the stages must show.

ALTER TABLE campaign
    ADD COLUMN strategy VARCHAR(16) NOT NULL DEFAULT 'reliable',
    ADD CONSTRAINT campaign_strategy_known
        CHECK (strategy IN ('naive', 'redis-counter', 'kafka', 'per-user', 'reliable'));

-- The course's `coupon(id, user_id)`, with the campaign so that several runs can share it.
CREATE TABLE course_coupon (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    campaign_id VARCHAR(64)     NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    written_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY course_coupon_campaign (campaign_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The course's `failed_event(id, user_id)`: written when an insert fails, never retried.
CREATE TABLE course_failed_event (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    campaign_id VARCHAR(64)     NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    created_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY course_failed_event_campaign (campaign_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
