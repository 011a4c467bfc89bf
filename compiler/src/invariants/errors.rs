//! Errors in an invariant, placed in its text.
//!
//! Parse errors carry the parser's position. The interpreter's errors carry
//! none, so they are placed at the first node of the expression that could
//! have raised them: the identifier or function named, the field missing,
//! the operator applied to the wrong types. When nothing matches, the error
//! is placed at line 1, column 1.

use cel::ExecutionError;
use cel::common::ast::{EntryExpr, Expr, LiteralValue, SourceInfo};
use cel::parser::{Expression, ParseErrors};
use serde::Serialize;

/// An invariant that cannot be evaluated, and where in its text (1-based).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CelError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for CelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for CelError {}

impl CelError {
    pub fn at_start(message: impl Into<String>) -> Self {
        CelError { line: 1, column: 1, message: message.into() }
    }
}

pub fn from_parse(errors: &ParseErrors) -> CelError {
    let Some(first) = errors.errors.first() else { return CelError::at_start("syntax error") };
    let line = u32::try_from(first.pos.0).unwrap_or(1).max(1);
    let column = u32::try_from(first.pos.1).unwrap_or(1).max(1);
    let more = match errors.errors.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    let msg = first.msg.strip_prefix("Syntax error: ").unwrap_or(&first.msg);
    CelError { line, column, message: format!("syntax error: {msg}{more}") }
}

/// The 1-based line and column of node `id`.
pub fn position(info: &SourceInfo, id: u64) -> (u32, u32) {
    let Some((start, _)) = info.offset_for(id) else { return (1, 1) };
    line_column(info, start as usize)
}

fn line_column(info: &SourceInfo, offset: usize) -> (u32, u32) {
    let (mut line, mut column) = (1u32, 1u32);
    for c in info.source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

pub fn at(info: &SourceInfo, id: u64, message: impl Into<String>) -> CelError {
    let (line, column) = position(info, id);
    CelError { line, column, message: message.into() }
}

pub fn from_exec(err: &ExecutionError, root: &Expression, info: &SourceInfo) -> CelError {
    let Some(node) = culprit(err, root) else { return CelError::at_start(err.to_string()) };
    let (line, column) = named_call_start(info, node).unwrap_or_else(|| position(info, node.id));
    CelError { line, column, message: err.to_string() }
}

/// A named call is placed by the parser at its `(`: place it at its name.
fn named_call_start(info: &SourceInfo, node: &Expression) -> Option<(u32, u32)> {
    let Expr::Call(c) = &node.expr else { return None };
    let name = c.func_name.rsplit('.').next()?;
    if !name.starts_with(|ch: char| ch.is_ascii_alphabetic()) {
        return None;
    }
    let (start, _) = info.offset_for(node.id)?;
    let chars: Vec<char> = info.source.chars().collect();
    let start = start as usize;
    let begin = start.checked_sub(name.chars().count())?;
    let written: String = chars.get(begin..start)?.iter().collect();
    (chars.get(start) == Some(&'(') && written == name).then(|| line_column(info, begin))
}

fn operator(name: &str) -> &'static [&'static str] {
    match name {
        "add" => &["_+_"],
        "sub" => &["_-_"],
        "mul" => &["_*_"],
        "div" => &["_/_"],
        "rem" => &["_%_"],
        _ => &[],
    }
}

/// The first node that could have raised `err`.
fn culprit<'e>(err: &ExecutionError, root: &'e Expression) -> Option<&'e Expression> {
    let call = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        find(root, &|e| matches!(&e.expr, Expr::Call(c) if names.contains(&c.func_name)))
    };
    match err {
        ExecutionError::UndeclaredReference(name) => find(root, &|e| match &e.expr {
            Expr::Ident(n) => n == name.as_str(),
            Expr::Call(c) => c.func_name == name.as_str(),
            _ => false,
        }),
        ExecutionError::NoSuchKey(key) => find(root, &|e| match &e.expr {
            Expr::Select(s) => s.field == key.as_str(),
            Expr::Call(c) if c.func_name == "_[_]" => {
                matches!(c.args.get(1).map(|a| &a.expr), Some(Expr::Literal(LiteralValue::String(s))) if s.inner() == key.as_str())
            }
            _ => false,
        }),
        ExecutionError::NoSuchOverload(o) => call(&[o.function()]),
        ExecutionError::FunctionError { function, .. } => find(root, &|e| match &e.expr {
            Expr::Call(c) => c.func_name == *function || c.func_name.ends_with(&format!(".{function}")),
            _ => false,
        }),
        ExecutionError::UnsupportedBinaryOperator(op, ..) | ExecutionError::Overflow(op, ..) => call(operator(op)),
        ExecutionError::ValuesNotComparable(..) => call(&["_<_", "_<=_", "_>_", "_>=_"]),
        ExecutionError::DivisionByZero(_) => call(&["_/_"]),
        ExecutionError::RemainderByZero(_) => call(&["_%_"]),
        ExecutionError::IndexOutOfBounds(_) => call(&["_[_]"]),
        ExecutionError::UnexpectedType { want, .. } if want == "bool" => call(&["_&&_", "_||_", "!_", "_?_:_"]),
        _ => None,
    }
}

/// The first node, in source order of a pre-order walk, that `hit` accepts.
pub fn find<'e>(e: &'e Expression, hit: &dyn Fn(&Expression) -> bool) -> Option<&'e Expression> {
    if hit(e) {
        return Some(e);
    }
    children(e).into_iter().find_map(|c| find(c, hit))
}

pub fn children(e: &Expression) -> Vec<&Expression> {
    match &e.expr {
        Expr::Call(c) => c.target.iter().map(|t| t.as_ref()).chain(c.args.iter()).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m.entries.iter().flat_map(|e| entry_children(&e.expr)).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(|e| entry_children(&e.expr)).collect(),
        Expr::Select(s) => vec![s.operand.as_ref()],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_children(e: &EntryExpr) -> Vec<&Expression> {
    match e {
        EntryExpr::StructField(f) => vec![&f.value],
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
    }
}
