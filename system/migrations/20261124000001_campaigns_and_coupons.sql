-- The issuance schema. Runs unchanged on MariaDB 10.11 and MySQL 8.4.
--
-- The database refuses over-issue and duplicates by itself, even if Redis lost its data:
--   UNIQUE(campaign_id, user_id)  one coupon per user per campaign
--   UNIQUE(campaign_id, seq)      one coupon per slot
--   CHECK(seq BETWEEN 1 AND campaign_limit), with (campaign_id, campaign_limit) a foreign key
--   to the campaign's own (id, coupon_limit): so no row can carry a slot beyond the limit.

CREATE TABLE campaign (
    id            VARCHAR(64)  NOT NULL,
    coupon_limit  INT UNSIGNED NOT NULL,
    opens_at      DATETIME(3)  NULL,
    closes_at     DATETIME(3)  NULL,
    -- Set when the Redis gate was first initialised. A campaign whose gate was initialised but
    -- whose Redis marker is gone has lost its gate state and must be rebuilt before admitting.
    gate_initialised_at DATETIME(3) NULL,
    created_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY campaign_id_limit (id, coupon_limit),
    CONSTRAINT campaign_limit_positive CHECK (coupon_limit >= 1),
    CONSTRAINT campaign_window_ordered CHECK (closes_at IS NULL OR opens_at IS NULL OR closes_at > opens_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE coupon (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    campaign_id     VARCHAR(64)     NOT NULL,
    user_id         BIGINT UNSIGNED NOT NULL,
    seq             INT UNSIGNED    NOT NULL,
    campaign_limit  INT UNSIGNED    NOT NULL,
    issued_at       DATETIME(3)     NOT NULL,
    written_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    -- Where the event came from, so the verifier can point at it.
    kafka_partition INT             NOT NULL,
    kafka_offset    BIGINT          NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY coupon_one_per_user (campaign_id, user_id),
    UNIQUE KEY coupon_one_per_slot (campaign_id, seq),
    CONSTRAINT coupon_user_positive CHECK (user_id >= 1),
    CONSTRAINT coupon_seq_within_limit CHECK (seq BETWEEN 1 AND campaign_limit),
    CONSTRAINT coupon_campaign FOREIGN KEY (campaign_id, campaign_limit)
        REFERENCES campaign (id, coupon_limit)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The original's FailedEvent, made useful: the raw payload and the reason are kept, and the
-- retry worker re-processes open rows until they are resolved.
CREATE TABLE failed_event (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    kafka_partition INT             NOT NULL,
    kafka_offset    BIGINT          NOT NULL,
    payload         BLOB            NOT NULL,
    campaign_id     VARCHAR(64)     NULL,
    user_id         BIGINT UNSIGNED NULL,
    reason          VARCHAR(64)     NOT NULL,
    detail          TEXT            NOT NULL,
    status          VARCHAR(16)     NOT NULL DEFAULT 'open',
    attempts        INT UNSIGNED    NOT NULL DEFAULT 0,
    created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    -- A redelivered message is captured once.
    UNIQUE KEY failed_event_source (kafka_partition, kafka_offset),
    KEY failed_event_status (status),
    CONSTRAINT failed_event_status_known CHECK (status IN ('open', 'resolved'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

INSERT INTO campaign (id, coupon_limit) VALUES ('default', 100);
