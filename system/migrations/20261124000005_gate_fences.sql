-- What the gate took back, so that a late event cannot undo it. Runs unchanged on MariaDB 10.11
-- and MySQL 8.4.
--
-- gate_fence: a rebuild that installed life `epoch` of a campaign's gate read Kafka up to
-- `end_offset` on each partition. An event admitted by an older life that sits at or past that
-- offset was not seen by the rebuild, which may have handed its slot to someone else: the
-- consumer refuses it. `end_offset` is NULL while the rebuild reads the high watermarks; the
-- consumer waits for it.
CREATE TABLE gate_fence (
    campaign_id     VARCHAR(64)     NOT NULL,
    epoch           BIGINT UNSIGNED NOT NULL,
    kafka_partition INT             NOT NULL,
    end_offset      BIGINT          NULL,
    created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (campaign_id, epoch, kafka_partition)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- revoked_admission: the reconciler released slot `seq`, which `user_id` held with no event, no
-- row and no failed event to show for it past the delivery deadline. An event for that user and
-- slot admitted in an epoch below `below_epoch` is refused; the gate's own epoch had moved to
-- `below_epoch` before the release, so a later admission of the same user is not.
CREATE TABLE revoked_admission (
    campaign_id VARCHAR(64)     NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    seq         INT UNSIGNED    NOT NULL,
    below_epoch BIGINT UNSIGNED NOT NULL,
    revoked_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (campaign_id, user_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
