//! Bounds on an expression's text, checked before the parser sees it.
//!
//! The cel crate recurses once or more per nesting level (its ANTLR parser
//! stops at 96 levels, but only after recursing that far) and per operand
//! of a chain such as `a + b + …` or `x.f().g()…`, and its frames are large
//! (a debug build overflows 8 MB at 47 nested lists). A stack overflow
//! aborts the whole process, so the text is bounded here: a length and a
//! nesting depth far above any invariant's, under which the worst chains
//! were measured to need less than 64 MB of stack in a debug build; the
//! evaluation thread gets [`STACK`].

use super::errors::CelError;

/// Deepest nesting of brackets and prefix operators accepted.
pub const MAX_NESTING: usize = 48;

/// Longest expression accepted, in characters.
pub const MAX_LENGTH: usize = 8192;

/// Stack of the evaluation thread: address space, committed only as used.
pub const STACK: usize = 256 << 20;

pub fn check(expr: &str) -> Result<(), CelError> {
    let n = expr.chars().count();
    if n > MAX_LENGTH {
        return Err(CelError::at_start(format!("the expression is {n} characters long; the limit is {MAX_LENGTH}")));
    }
    nesting(expr)
}

/// Rejects text nested deeper than [`MAX_NESTING`]: brackets, and runs of
/// prefix operators (`!`, `-`), outside string literals.
fn nesting(expr: &str) -> Result<(), CelError> {
    let (mut line, mut column) = (1u32, 0u32);
    let mut depth = 0usize;
    let mut prefix = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        column += 1;
        if c == '\n' {
            (line, column) = (line + 1, 0);
        }
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '!' | '-' => prefix += 1,
            _ if c.is_whitespace() => {}
            _ => prefix = 0,
        }
        if depth + prefix > MAX_NESTING {
            let message = format!("the expression nests deeper than {MAX_NESTING} levels here");
            return Err(CelError { line, column, message });
        }
    }
    Ok(())
}
