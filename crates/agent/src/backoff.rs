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

#[cfg(test)]
mod tests {
    use super::*;

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
