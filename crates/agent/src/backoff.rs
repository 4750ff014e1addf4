//! Retry delays: capped exponential backoff with jitter, so that thousands of
//! stores coming back from the same outage do not return in lockstep. A leaf.

use std::time::Duration;

/// First retry delay after a failed run; doubles per consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest retry delay (never later than the job's own schedule either).
pub const BACKOFF_CAP: Duration = Duration::from_secs(120);

/// The delay before retry `failures` (≥ 1): capped exponential, ±25 % jitter.
pub fn backoff(failures: u32) -> Duration {
    jitter(backoff_nominal(failures))
}

/// [`backoff`] without the jitter (the offline status's estimate).
pub fn backoff_nominal(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(BACKOFF_CAP)
}

/// ±25 % so that many stores do not come back in lockstep.
pub fn jitter(d: Duration) -> Duration {
    let f = 0.75 + fastrand::f64() * 0.5;
    d.mul_f64(f)
}

/// Over how long the stores of a chain come back after the central did.
pub const RETURN_WINDOW: Duration = Duration::from_secs(30);

/// A store's fixed place in `window`, from a hash of its id (FNV-1a): after
/// a central restart the chain's stores come back spread over the window,
/// each at the same offset every time, instead of all at once.
pub fn spread(store: &str, window: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in store.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let millis = window.as_millis().max(1) as u64;
    Duration::from_millis(h % millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chains_stores_come_back_spread_over_the_window() {
        let w = Duration::from_secs(30);
        assert_eq!(spread("loja-0001", w), spread("loja-0001", w), "fixed");
        let mut per_tenth = [0u32; 10];
        for i in 0..2000 {
            let d = spread(&format!("loja-{i:04}"), w);
            assert!(d < w);
            per_tenth[(d.as_millis() * 10 / w.as_millis()) as usize] += 1;
        }
        // Every tenth of the window gets some of the 2,000 (about 200 each).
        assert!(
            per_tenth.iter().all(|n| (100..300).contains(n)),
            "{per_tenth:?}"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1);
        assert!(
            first >= Duration::from_millis(1500) && first <= Duration::from_millis(2500),
            "{first:?}"
        );
        let third = backoff(3);
        assert!(
            third >= Duration::from_secs(6) && third <= Duration::from_secs(10),
            "{third:?}"
        );
        for n in [10, 20, 40, u32::MAX] {
            assert!(backoff(n) <= BACKOFF_CAP.mul_f64(1.25), "{n}");
        }
    }
}
