//! Kubernetes quantities (`resource.Quantity`: `1`, `500m`, `0.5`, `2Ki`,
//! `1e3`), as a ServiceProfile's `dstOverrides[].weight` is written.
//!
//! Two grammars matter. The CRD's `pattern` (what the API server checks)
//! allows a decimal exponent (`1e1.5`); apimachinery's `ParseQuantity`
//! (what Linkerd's destination controller decodes the object with) takes
//! only a whole exponent. [`matches_crd_pattern`] is the first, [`parse`]
//! the second.

/// A parsed quantity: `digits × 10^exp10 × 2^exp2`, negative when `negative`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    digits: u128,
    exp10: i32,
    exp2: u32,
}

/// The CRD's pattern:
/// `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`.
pub fn matches_crd_pattern(s: &str) -> bool {
    let Some(rest) = signed_number(s) else { return false };
    match rest.as_bytes() {
        [] => true,
        [b'K' | b'M' | b'G' | b'T' | b'P' | b'E', b'i'] => true,
        [b'n' | b'u' | b'm' | b'k' | b'M' | b'G' | b'T' | b'P' | b'E'] => true,
        [b'e' | b'E', ..] => signed_number(&rest[1..]) == Some(""),
        _ => false,
    }
}

/// What follows an optional sign and a number (`5`, `5.`, `5.25`, `.25`),
/// or None when there is no number.
fn signed_number(s: &str) -> Option<&str> {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let int = s.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &s[int..];
    match rest.strip_prefix('.') {
        Some(frac) => {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            (int > 0 || n > 0).then_some(&frac[n..])
        }
        None => (int > 0).then_some(rest),
    }
}

/// `ParseQuantity`'s reading of `s`, or why it fails.
pub fn parse(s: &str) -> Result<Quantity, String> {
    if !matches_crd_pattern(s) {
        return Err(format!("`{s}` is not a Kubernetes quantity"));
    }
    let negative = s.starts_with('-');
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_len = body.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = body.split_at(number_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let (mut exp10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e => {
            let exponent = &e[1..];
            let exp10 = exponent.parse::<i32>().map_err(|_| {
                format!(
                    "`{s}`: the exponent `{exponent}` is not a whole number, which Kubernetes' quantity parser requires"
                )
            })?;
            (exp10, 0)
        }
    };
    // Leading zeros add nothing; trailing fraction zeros only scale.
    let frac = frac.trim_end_matches('0');
    let all = format!("{}{frac}", int.trim_start_matches('0'));
    let digits = if all.is_empty() { 0 } else { all.parse::<u128>().map_err(|_| format!("`{s}` is out of range"))? };
    exp10 = exp10.checked_sub(frac.len() as i32).ok_or_else(|| format!("`{s}` is out of range"))?;
    Ok(Quantity { negative: negative && digits != 0, digits, exp10, exp2 })
}

impl Quantity {
    /// apimachinery's `MilliValue`: `ceil(q × 1000)`, or None past i64.
    pub fn milli_value(&self) -> Option<i64> {
        let mut n: i128 = i128::try_from(self.digits).ok()?;
        n = n.checked_mul(1i128.checked_shl(self.exp2)?)?;
        if self.negative {
            n = -n;
        }
        let exp = self.exp10.saturating_add(3);
        let value = if exp >= 0 {
            n.checked_mul(10i128.checked_pow(exp.unsigned_abs())?)?
        } else {
            match 10i128.checked_pow(exp.unsigned_abs()) {
                // Rounded up, as `ScaledValue` does (towards positive infinity).
                Some(d) => n.div_euclid(d) + i128::from(n.rem_euclid(d) != 0),
                None => i128::from(n > 0),
            }
        };
        i64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> Option<i64> {
        parse(s).ok()?.milli_value()
    }

    #[test]
    fn the_crd_pattern() {
        for ok in ["1", "+1", "-1", "0.5", ".5", "5.", "500m", "2Ki", "1E", "1e3", "1E-3", "1e1.5", "1e+.5", "3u"] {
            assert!(matches_crd_pattern(ok), "{ok}");
        }
        for bad in ["", ".", "m", "1.2.3", "1 m", "1mi", "1KiB", "1e", "e3", "1x", "@@ Not/Matching @@", "--1", "1i"] {
            assert!(!matches_crd_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn milli_values_as_apimachinery_computes_them() {
        assert_eq!(milli("1"), Some(1000));
        assert_eq!(milli("900m"), Some(900));
        assert_eq!(milli("0.5"), Some(500));
        assert_eq!(milli(".25"), Some(250));
        assert_eq!(milli("2k"), Some(2_000_000));
        assert_eq!(milli("1Ki"), Some(1_024_000));
        assert_eq!(milli("1e-3"), Some(1));
        assert_eq!(milli("1E2"), Some(100_000));
        assert_eq!(milli("-1"), Some(-1000));
        assert_eq!(milli("0.000"), Some(0));
        assert_eq!(milli("-0"), Some(0));
        // Below a milli, rounded up (towards positive infinity).
        assert_eq!(milli("1u"), Some(1));
        assert_eq!(milli("1500u"), Some(2));
        assert_eq!(milli("-1500u"), Some(-1));
        assert_eq!(milli("0.0001"), Some(1));
        // Past i64.
        assert_eq!(milli("10E"), None);
        assert_eq!(milli("1e40"), None);
    }

    #[test]
    fn a_decimal_exponent_matches_the_pattern_but_does_not_parse() {
        assert!(matches_crd_pattern("1e1.5"));
        assert!(parse("1e1.5").unwrap_err().contains("not a whole number"));
        assert!(parse("abc").is_err());
    }
}
