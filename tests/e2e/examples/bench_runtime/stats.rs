//! Percentiles and medians of measurements.

use std::time::Duration;

/// The `p`-th percentile (nearest rank) of `values`; `None` when empty.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut v = values.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len().max(1)) - 1).copied()
}

pub fn median(values: &[Duration]) -> Option<Duration> {
    percentile(values, 50.0)
}

pub fn median_f64(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len().checked_sub(1)? / 2).copied()
}

pub fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
}

/// `median (min–max)` over runs.
pub fn spread(values: &[Duration]) -> String {
    let (min, max) = (values.iter().min(), values.iter().max());
    match (median(values), min, max) {
        (Some(m), Some(lo), Some(hi)) => {
            format!("{:.0} ms ({:.0}–{:.0})", m.as_secs_f64() * 1e3, lo.as_secs_f64() * 1e3, hi.as_secs_f64() * 1e3)
        }
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
