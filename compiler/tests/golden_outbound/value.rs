//! The typed values an assertion compares: the expected text is parsed as
//! the type of the field it names, so `2m` and `120s` are the same timeout
//! and `30 s` is an error rather than a silent mismatch.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Milliseconds; `None` is no timeout (`none`).
    Duration(Option<u64>),
    /// Parts per million, written as a decimal ratio (`0.25`).
    Ratio(u32),
    Int(u64),
    Bool(bool),
    Text(String),
    /// Comma-separated, in order; `none` is the empty list.
    List(Vec<String>),
}

impl Value {
    pub fn list<I: IntoIterator<Item = String>>(items: I) -> Value {
        Value::List(items.into_iter().collect())
    }

    /// `expected` read as a value of the same type as `self`.
    pub fn parse_like(&self, expected: &str) -> Result<Value, String> {
        let e = expected.trim();
        match self {
            Value::Duration(_) => parse_duration(e).map(Value::Duration),
            Value::Ratio(_) => parse_ratio(e).map(Value::Ratio),
            Value::Int(_) => e.parse().map(Value::Int).map_err(|_| format!("`{e}` is not a whole number")),
            Value::Bool(_) => match e {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("`{e}` is not true or false")),
            },
            Value::Text(_) => Ok(Value::Text(e.to_string())),
            Value::List(_) if e == "none" => Ok(Value::List(Vec::new())),
            Value::List(_) => Ok(Value::list(e.split(',').map(|s| s.trim().to_string()))),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Duration(None) => f.write_str("none"),
            Value::Duration(Some(ms)) => f.write_str(&format_duration(*ms)),
            Value::Ratio(ppm) => write!(f, "{}", f64::from(*ppm) / 1e6),
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => f.write_str(t),
            Value::List(items) if items.is_empty() => f.write_str("none"),
            Value::List(items) => f.write_str(&items.join(", ")),
        }
    }
}

const UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// `none`, or a decimal and a unit (`300ms`, `1.5s`, `2m`, `1h`) that is a
/// whole number of milliseconds.
fn parse_duration(text: &str) -> Result<Option<u64>, String> {
    if text == "none" {
        return Ok(None);
    }
    // `ms` before `m` and `s`: the longest unit that ends the text.
    let (number, scale) = UNITS
        .iter()
        .filter_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, *scale)))
        .min_by_key(|(n, _)| n.len())
        .ok_or_else(|| format!("`{text}` is not a duration (a number and ms, s, m or h, or none)"))?;
    let micro = parse_decimal_micro(number).ok_or_else(|| format!("`{text}` is not a duration"))?;
    let scaled = micro.checked_mul(scale).ok_or_else(|| format!("`{text}` is too long"))?;
    if !scaled.is_multiple_of(1_000_000) {
        return Err(format!("`{text}` is not a whole number of milliseconds"));
    }
    Ok(Some(scaled / 1_000_000))
}

/// A decimal ratio (`0.25`) in parts per million.
fn parse_ratio(text: &str) -> Result<u32, String> {
    parse_decimal_micro(text)
        .and_then(|ppm| u32::try_from(ppm).ok())
        .ok_or_else(|| format!("`{text}` is not a ratio (a decimal with at most 6 places)"))
}

/// A non-negative decimal with at most six places, times 10^6, exactly.
fn parse_decimal_micro(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 6 || (text.contains('.') && frac.is_empty())
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(frac)
}

fn format_duration(ms: u64) -> String {
    let (unit, scale) =
        UNITS.iter().rev().find(|(_, scale)| ms != 0 && ms.is_multiple_of(*scale)).copied().unwrap_or(("ms", 1));
    format!("{}{unit}", ms / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_milliseconds() {
        assert_eq!(parse_duration("300ms"), Ok(Some(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Some(1500)));
        assert_eq!(parse_duration("2m"), Ok(Some(120_000)));
        assert_eq!(parse_duration("1h"), Ok(Some(3_600_000)));
        assert_eq!(parse_duration("none"), Ok(None));
        assert!(parse_duration("30 s").is_err());
        assert!(parse_duration("1.0005s").is_err());
        assert!(parse_duration("10").is_err());
        assert_eq!(format_duration(120_000), "2m");
        assert_eq!(format_duration(1500), "1500ms");
    }

    #[test]
    fn ratios_read_as_parts_per_million() {
        assert_eq!(parse_ratio("0.25"), Ok(250_000));
        assert_eq!(parse_ratio("1"), Ok(1_000_000));
        assert!(parse_ratio(".5").is_err());
        assert!(parse_ratio("0.1234567").is_err());
    }
}
