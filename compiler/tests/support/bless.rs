//! Golden outputs: compare with the stored text, or store it under
//! `MESHC_BLESS=1` (review the diff before committing; refused under CI).

use std::path::Path;

/// `Ok` when `got` equals the text at `expected` (or it was just rewritten);
/// else where the two first differ.
pub fn bless_or_compare(expected: &Path, got: &str) -> Result<(), String> {
    if mesh_test_support::blessing() {
        return std::fs::write(expected, got).map_err(|e| e.to_string());
    }
    let want = std::fs::read_to_string(expected).map_err(|e| format!("{}: {e}", expected.display()))?;
    if got == want {
        return Ok(());
    }
    let first = got
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(got.lines().count().min(want.lines().count()));
    Err(format!(
        "output differs from line {}:\n  got:      {}\n  expected: {}",
        first + 1,
        got.lines().nth(first).unwrap_or("<end>"),
        want.lines().nth(first).unwrap_or("<end>")
    ))
}
