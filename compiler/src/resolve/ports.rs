//! Port list annotations (`config.linkerd.io/opaque-ports`, `skip-inbound-ports`, ...).

use mesh_proxy_api::PortRange;

/// Parses `"80,443,4000-4100"`. A name or malformed entry makes the whole list
/// invalid (Linkerd's `parse_portset` rejects the annotation as a whole).
pub fn parse_port_ranges(value: &str) -> Result<Vec<PortRange>, String> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once('-') {
            Some((a, b)) => PortRange { start: port(a, part)?, end: port(b, part)? },
            None => {
                let p = port(part, part)?;
                PortRange { start: p, end: p }
            }
        };
        if range.start > range.end {
            return Err(format!("`{part}` is an empty range"));
        }
        out.push(range);
    }
    out.sort();
    Ok(out)
}

fn port(s: &str, part: &str) -> Result<u16, String> {
    s.trim().parse::<u16>().map_err(|_| format!("`{part}` is not a port number or range"))
}

pub fn contains(ranges: &[PortRange], port: u16) -> bool {
    ranges.iter().any(|r| r.contains(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_ranges_and_rejects_names() {
        let r = parse_port_ranges("8080, 4000-4002,25").unwrap();
        assert!(contains(&r, 4001) && contains(&r, 25) && !contains(&r, 4003));
        assert!(parse_port_ranges("8080,http").is_err());
        assert!(parse_port_ranges("9-3").is_err());
        assert_eq!(parse_port_ranges("").unwrap(), vec![]);
    }
}
