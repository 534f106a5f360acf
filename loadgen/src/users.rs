//! Which user id each request carries. Ids are spread over a wide range (as real user ids are)
//! but derived from the seed, so a run can be repeated exactly.

/// splitmix64: a fast, well-mixed bijection on u64, the usual way to turn a counter into a
/// reproducible stream of distinct-looking numbers.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy)]
pub struct UserPlan {
    seed: u64,
    hot_fraction: f64,
}

/// How many hot ids the hot requests share.
pub const HOT_USERS: u64 = 8;

impl UserPlan {
    pub fn new(seed: u64, hot_fraction: f64) -> Self {
        Self { seed, hot_fraction }
    }

    /// The own id of virtual user `index`: distinct for distinct indexes, never 0, below 2^53
    /// (safe as a JSON number anywhere).
    pub fn user_id(&self, index: usize) -> u64 {
        // mix is a bijection, so distinct indexes give distinct ids before the range fold; the
        // index in the low bits keeps them distinct after it.
        let high = mix(self.seed ^ mix(index as u64)) % 1_000_000;
        high * 10_000_000 + index as u64 + 1
    }

    /// The id request `request` of user `index` carries: usually the user's own, sometimes
    /// (with probability `hot_fraction`) one of [`HOT_USERS`] shared hot ids.
    pub fn id_for_request(&self, index: usize, request: u64) -> u64 {
        let roll = mix(self.seed.wrapping_add(0xA5A5) ^ mix(request)) as f64 / u64::MAX as f64;
        if roll < self.hot_fraction {
            let hot = mix(self.seed ^ request) % HOT_USERS;
            // Hot ids sit far above every regular id (those stay below 10^13), so they never
            // collide with one; they are valid u64 user ids for the api.
            9_000_000_000_000_000 + hot
        } else {
            self.user_id(index)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_distinct_positive_and_reproducible() {
        let plan = UserPlan::new(7, 0.0);
        let ids: HashSet<u64> = (0..100_000).map(|i| plan.user_id(i)).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|id| *id > 0 && *id < 1 << 53));
        assert_eq!(plan.user_id(5), UserPlan::new(7, 0.0).user_id(5));
        assert_ne!(plan.user_id(5), UserPlan::new(8, 0.0).user_id(5));
    }

    #[test]
    fn hot_fraction_concentrates_requests_on_few_ids() {
        let plan = UserPlan::new(1, 0.3);
        let hot = (0..10_000u64)
            .filter(|r| plan.id_for_request(*r as usize, *r) >= 9_000_000_000_000_000)
            .count();
        assert!(
            (2_500..3_500).contains(&hot),
            "{hot} hot requests of 10000 at 0.3"
        );
        let distinct_hot: HashSet<u64> = (0..10_000u64)
            .map(|r| plan.id_for_request(r as usize, r))
            .filter(|id| *id >= 9_000_000_000_000_000)
            .collect();
        assert!(distinct_hot.len() <= HOT_USERS as usize);
        assert!(
            (0..1000u64).all(|r| UserPlan::new(1, 0.0).id_for_request(3, r) == plan.user_id(3))
        );
    }
}
