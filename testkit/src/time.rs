//! Clock helpers: the engine speaks nanoseconds since the epoch (`timeNano`) and takes
//! `since`/`until` as `seconds.nanoseconds`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch, as the engine stamps its events.
pub fn now_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A `since`/`until` argument of the events API for an engine time in nanoseconds.
pub fn engine_time_arg(nano: i64) -> String {
    format!("{}.{:09}", nano / 1_000_000_000, nano % 1_000_000_000)
}

/// Median (the mean of the middle two of an even count) and worst of a list of figures
/// (printed by tests and benches, never asserted); `(0, 0)` for none.
pub fn median_worst(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_time_arg_pads_the_nanoseconds() {
        assert_eq!(engine_time_arg(1_700_000_000_000_000_042), "1700000000.000000042");
    }

    #[test]
    fn median_worst_of_an_odd_and_an_empty_list() {
        assert_eq!(median_worst(vec![3.0, 1.0, 2.0]), (2.0, 3.0));
        assert_eq!(median_worst(vec![4.0, 1.0, 3.0, 2.0]), (2.5, 4.0));
        assert_eq!(median_worst(vec![]), (0.0, 0.0));
    }
}
