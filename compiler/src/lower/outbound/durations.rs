//! The two duration grammars outbound policy uses (semantics reference §8.2).

/// Linkerd's own grammar (annotations, Gateway `timeouts.request`): one
/// non-negative integer and one unit of `ms`, `s`, `m`, `h`, `d`; bare `0`
/// is allowed. No fractions, no composites (`1h30m`), no negatives.
pub fn parse_linkerd(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    if num.is_empty() {
        return Err(format!("`{s}` does not start with a whole number"));
    }
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("`{s}` has no unit (ms, s, m, h or d)")),
        other => {
            return Err(format!(
                "`{s}`: `{other}` is not one unit of ms, s, m, h, d (Linkerd accepts no fractions or composite durations)"
            ));
        }
    };
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is out of range"))?;
    n.checked_mul(scale).ok_or_else(|| format!("`{s}` is out of range"))
}

/// Go's `time.ParseDuration` (Kubernetes durations: ServiceProfile
/// `timeout` and `ttl`, Linkerd HTTPRoute `timeouts`): a sequence of
/// decimal numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, e.g.
/// `1.5s` or `1h30m`; rounded down to whole milliseconds.
pub fn parse_go(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(format!("`{s}` is not a non-negative duration"));
    }
    let mut rest = t.trim_start_matches('+');
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (num, tail) = rest.split_at(n);
        let u = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("`{s}`: missing or unknown unit `{unit}` (ns, us, ms, s, m, h)")),
        };
        total_ns += decimal_times(num, scale).ok_or_else(|| format!("`{s}`: `{num}` is not a number"))?;
        rest = tail;
    }
    u64::try_from(total_ns / 1_000_000).map_err(|_| format!("`{s}` is out of range"))
}

/// `num` (digits, optionally with one fraction) times `scale`, truncated.
fn decimal_times(num: &str, scale: u128) -> Option<u128> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int.checked_mul(scale)?;
    let mut unit = scale;
    for d in frac.bytes().take(18) {
        unit /= 10;
        value += u128::from(d - b'0') * unit;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkerd_grammar() {
        assert_eq!(parse_linkerd("0"), Ok(0));
        assert_eq!(parse_linkerd("250ms"), Ok(250));
        assert_eq!(parse_linkerd("10s"), Ok(10_000));
        assert_eq!(parse_linkerd("2m"), Ok(120_000));
        assert_eq!(parse_linkerd("1d"), Ok(86_400_000));
        for bad in ["1h30m", "1.5s", "-1s", "10", "s", "", "5 s", "99999999999999999999d"] {
            assert!(parse_linkerd(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn go_grammar() {
        assert_eq!(parse_go("1.5s"), Ok(1500));
        assert_eq!(parse_go("1h30m"), Ok(5_400_000));
        assert_eq!(parse_go("300ms"), Ok(300));
        assert_eq!(parse_go("0"), Ok(0));
        assert_eq!(parse_go("1500us"), Ok(1));
        assert_eq!(parse_go(".5s"), Ok(500));
        for bad in ["10", "-1s", "1x", "", "1..5s", "s"] {
            assert!(parse_go(bad).is_err(), "{bad} must be rejected");
        }
    }
}
