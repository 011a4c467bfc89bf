//! The duration grammar of mesh-proxy's and mesh-runtime's flags. Policy
//! uses two others, Linkerd's and Go's, each in one module of its own
//! (`meshc::lower::outbound::durations`), since only meshc reads policy:
//! the proxy receives milliseconds in its ProxyConfig.

use std::time::Duration;

/// `500ms`, `10s`, `2m`: one integer and a unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| format!("{s}: missing unit (ms, s, m)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s}: expected a number then ms, s or m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(|| format!("{s}: too long")),
        _ => Err(format!("{s}: unknown unit `{unit}` (ms, s, m)")),
    }
}

/// A certificate lifetime: [`parse_duration`]'s units plus
/// hours and days.
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let hours = |n: &str, per: u64| -> Result<Duration, String> {
        let n: u64 = n.parse().map_err(|_| format!("{s}: expected a number then s, m, h or d"))?;
        n.checked_mul(per * 3600).map(Duration::from_secs).ok_or_else(|| format!("{s}: too long"))
    };
    let d = if let Some(n) = s.strip_suffix('h') {
        hours(n, 1)?
    } else if let Some(n) = s.strip_suffix('d') {
        hours(n, 24)?
    } else {
        parse_duration(s)?
    };
    if d.is_zero() {
        return Err(format!("{s}: must be longer than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime;
    use std::time::Duration;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_lifetime("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_lifetime("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_lifetime("0h").is_err());
        assert!(parse_lifetime("h").is_err());
        assert!(parse_lifetime("99999999999999999999d").is_err());
        assert!(parse_lifetime("18446744073709551615d").is_err());
    }
}
