//! Defaults shared by every binary: the addresses of the local stack (`scripts/stack`) and of
//! `docker-compose.yml`, so that nothing needs configuring on a machine that runs either.

/// Redis, as `scripts/stack up` starts it. Env: `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// MariaDB or MySQL, with the project's database and account. Env: `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "mysql://coupons:coupons@127.0.0.1:3306/coupons";
/// The Kafka bootstrap servers. Env: `KAFKA_BROKERS`.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";
/// Where the api listens. Env: `API_ADDR`.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8080";

/// The topic of `CouponIssued` events (the original course's name). Env: `KAFKA_TOPIC`.
pub const DEFAULT_TOPIC: &str = "coupon_create";
/// Partitions the api and the consumer create the topic with, when it is missing.
pub const DEFAULT_TOPIC_PARTITIONS: i32 = 6;
/// The consumer group that writes coupons. Env: `KAFKA_GROUP`.
pub const DEFAULT_CONSUMER_GROUP: &str = "coupon-writer";
/// The campaign that exists out of the box.
pub const DEFAULT_CAMPAIGN: &str = "default";

/// The topic the course's Kafka stages send to (the course calls it `coupon_create`; ours has
/// that name). Env: `COURSE_TOPIC`.
pub const DEFAULT_COURSE_TOPIC: &str = "course_coupon_create";
/// The course's consumer group. Env: `COURSE_GROUP`.
pub const DEFAULT_COURSE_GROUP: &str = "group_1";
