//! The apply route's body parsing, which every apply pays before anything reaches Redis:
//! `cargo bench -p coupon-api --bench apply_body`.

use coupon_api::routes::apply::{ApplyBody, UniqueKeys};

fn main() {
    divan::main();
}

/// The body a burst sends: exactly one `user_id`.
const BODY: &[u8] = br#"{"user_id":3361090000133}"#;

/// The route's way: a JSON value whose keys are checked for duplicates, then the one field.
#[divan::bench]
fn unique_keys_then_fields() -> u64 {
    let UniqueKeys(value) =
        serde_json::from_slice(divan::black_box(BODY)).expect("a valid body parses");
    ApplyBody::parse(value)
        .expect("a valid body is an apply")
        .user_id
        .get()
}

/// The anchor: serde straight into a struct (what the bare reference apply does), without the
/// route's refusal of a body that is no object, its positive-id check and its messages.
#[divan::bench]
fn plain_struct() -> u64 {
    #[derive(serde::Deserialize)]
    struct Plain {
        user_id: u64,
    }
    let plain: Plain = serde_json::from_slice(divan::black_box(BODY)).expect("parses");
    plain.user_id
}
