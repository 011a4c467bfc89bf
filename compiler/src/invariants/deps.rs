//! What an expression reads, known before it runs.
//!
//! [`Uses`] says which fields of a comprehension variable a predicate can
//! read; the edge search ([`super::driver`]) groups edges that agree on
//! those fields and evaluates the predicate once per group. [`check`]
//! rejects names no scope declares and fields the repository's maps do not
//! have, so a misspelt invariant fails even where it is never evaluated (a
//! predicate over an empty list, the right side of a short-circuit).

use super::errors::{CelError, at, children};
use super::fields::Shape;
use cel::common::ast::{Expr, LiteralValue, SourceInfo, operators};
use cel::parser::Expression;
use std::collections::BTreeMap;

/// The variables of the environment, and the shape of their elements.
pub const GLOBALS: &[(&str, Option<Shape>)] = &[
    ("clients", Some(Shape::Class)),
    ("edges", Some(Shape::Edge)),
    ("targets", Some(Shape::Target)),
    ("workloads", Some(Shape::Workload)),
    ("servers", Some(Shape::Resource)),
    ("routes", Some(Shape::Resource)),
    ("policies", Some(Shape::Resource)),
    ("egress", Some(Shape::Egress)),
];

/// Namespaces of qualified functions (`math.greatest`, `ip.isCanonical`).
const NAMESPACES: &[&str] = &["math", "strings", "lists", "ip", "optional", "base64"];

/// How a predicate uses a variable: as a whole value, or through fields
/// (two levels deep: `e.client.namespace`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uses {
    pub whole: bool,
    pub fields: BTreeMap<String, Uses>,
}

impl Uses {
    pub fn of(e: &Expression, var: &str) -> Uses {
        let mut uses = Uses::default();
        walk(e, var, &mut uses);
        uses
    }

    fn record(&mut self, path: &[&str]) {
        match path.split_first() {
            None => self.whole = true,
            Some((f, rest)) => self.fields.entry((*f).to_owned()).or_default().record(rest),
        }
    }

    pub fn field(&self, f: &str) -> Option<&Uses> {
        self.fields.get(f)
    }
}

/// `var.a.b…` (or `var["a"]["b"]…`) as `[a, b, …]`, if `e` is such a chain
/// (`has()` tests included).
fn path<'e>(e: &'e Expression, var: &str) -> Option<Vec<&'e str>> {
    let mut fields = Vec::new();
    let mut cur = e;
    loop {
        match &cur.expr {
            Expr::Select(s) => {
                fields.push(s.field.as_str());
                cur = &s.operand;
            }
            Expr::Call(c) if c.func_name == operators::INDEX && c.target.is_none() && c.args.len() == 2 => {
                let Expr::Literal(LiteralValue::String(key)) = &c.args[1].expr else { return None };
                fields.push(key.inner());
                cur = &c.args[0];
            }
            Expr::Ident(n) if n == var => {
                fields.reverse();
                return Some(fields);
            }
            _ => return None,
        }
    }
}

fn walk(e: &Expression, var: &str, uses: &mut Uses) {
    if let Some(p) = path(e, var) {
        uses.record(&p[..p.len().min(2)]);
        return;
    }
    if let Expr::Comprehension(c) = &e.expr {
        walk(&c.iter_range, var, uses);
        walk(&c.accu_init, var, uses);
        let shadowed = c.iter_var == var || c.iter_var2.as_deref() == Some(var) || c.accu_var == var;
        if !shadowed {
            [&c.loop_cond, &c.loop_step, &c.result].into_iter().for_each(|x| walk(x, var, uses));
        }
        return;
    }
    children(e).into_iter().for_each(|c| walk(c, var, uses));
}

/// What the checker knows of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    List(Shape),
    Item(Shape),
    Other,
}

struct Checker<'a> {
    env: &'a cel::Env,
    info: &'a SourceInfo,
    scope: Vec<(String, Ty)>,
}

/// Rejects undeclared names and unknown fields of the repository's maps.
pub fn check(root: &Expression, env: &cel::Env, info: &SourceInfo) -> Result<(), CelError> {
    Checker { env, info, scope: Vec::new() }.ty(root).map(|_| ())
}

impl Checker<'_> {
    fn ident(&self, e: &Expression, name: &str) -> Result<Ty, CelError> {
        if let Some((_, ty)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Ok(*ty);
        }
        if let Some((_, shape)) = GLOBALS.iter().find(|(n, _)| *n == name) {
            return Ok(shape.map_or(Ty::Other, Ty::List));
        }
        if self.env.types().find_type(name).is_some() {
            return Ok(Ty::Other);
        }
        Err(at(self.info, e.id, format!("undeclared reference to '{name}'")))
    }

    /// `net.IP`: a qualified type name, whose first part is no variable.
    fn is_type_name(&self, e: &Expression) -> bool {
        let Some(parts) = qualified_name(e) else { return false };
        let declared = |n: &str| self.scope.iter().any(|(s, _)| s == n) || GLOBALS.iter().any(|(g, _)| *g == n);
        !parts.first().is_some_and(|p| declared(p)) && self.env.types().find_type(&parts.join(".")).is_some()
    }

    fn ty(&mut self, e: &Expression) -> Result<Ty, CelError> {
        match &e.expr {
            Expr::Ident(name) => self.ident(e, name),
            Expr::Select(s) => {
                if self.is_type_name(e) {
                    return Ok(Ty::Other);
                }
                let Ty::Item(shape) = self.ty(&s.operand)? else { return Ok(Ty::Other) };
                if !shape.fields().contains(&s.field.as_str()) {
                    let msg = format!(
                        "no field `{}` on {}; its fields are {}",
                        s.field,
                        shape.noun(),
                        shape.fields().join(", ")
                    );
                    return Err(at(self.info, e.id, msg));
                }
                Ok(if s.test { Ty::Other } else { shape.child(&s.field).map_or(Ty::Other, Ty::Item) })
            }
            Expr::Call(c) => self.call(c),
            Expr::Comprehension(c) => {
                let range = self.ty(&c.iter_range)?;
                self.ty(&c.accu_init)?;
                let elem = match range {
                    Ty::List(s) => Ty::Item(s),
                    _ => Ty::Other,
                };
                let depth = self.scope.len();
                self.scope.push((c.accu_var.clone(), Ty::Other));
                self.scope.push((c.iter_var.clone(), if c.iter_var2.is_some() { Ty::Other } else { elem }));
                if let Some(v2) = &c.iter_var2 {
                    self.scope.push((v2.clone(), elem));
                }
                let body = [&c.loop_cond, &c.loop_step, &c.result].into_iter().try_for_each(|x| self.ty(x).map(|_| ()));
                self.scope.truncate(depth);
                body?;
                Ok(if keeps_elements(c) { range } else { Ty::Other })
            }
            _ => {
                for child in children(e) {
                    self.ty(child)?;
                }
                Ok(Ty::Other)
            }
        }
    }

    fn call(&mut self, c: &cel::common::ast::CallExpr) -> Result<Ty, CelError> {
        let namespaced = matches!(&c.target, Some(t) if matches!(&t.expr, Expr::Ident(n)
            if NAMESPACES.contains(&n.as_str()) && !self.scope.iter().any(|(s, _)| s == n)));
        let target = match &c.target {
            Some(t) if !namespaced => Some(self.ty(t)?),
            _ => None,
        };
        let mut args = Vec::with_capacity(c.args.len());
        for a in &c.args {
            args.push(self.ty(a)?);
        }
        Ok(match (c.func_name.as_str(), target, args.as_slice()) {
            ("reachers", None, _) => Ty::List(Shape::Class),
            ("workload", None, [_]) => Ty::List(Shape::Target),
            ("workload", None, [_, _]) => Ty::Item(Shape::Target),
            (operators::INDEX, None, [Ty::List(s), _]) => Ty::Item(*s),
            _ => Ty::Other,
        })
    }
}

/// `a.b.c` as `[a, b, c]`, if `e` is a chain of field selections on a name.
fn qualified_name(e: &Expression) -> Option<Vec<&str>> {
    match &e.expr {
        Expr::Ident(n) => Some(vec![n.as_str()]),
        Expr::Select(s) if !s.test => {
            let mut parts = qualified_name(&s.operand)?;
            parts.push(s.field.as_str());
            Some(parts)
        }
        _ => None,
    }
}

/// Whether a comprehension's result is a sublist of its range: `filter`'s
/// expansion, `cond ? @result + [x] : @result` from an empty list.
fn keeps_elements(c: &cel::common::ast::ComprehensionExpr) -> bool {
    let Expr::Call(step) = &c.loop_step.expr else { return false };
    if step.func_name != operators::CONDITIONAL {
        return false;
    }
    let Some(Expr::Call(add)) = step.args.get(1).map(|a| &a.expr) else { return false };
    let Some(Expr::List(items)) = add.args.get(1).map(|a| &a.expr) else { return false };
    matches!(items.elements.as_slice(), [x] if matches!(&x.expr, Expr::Ident(n) if *n == c.iter_var))
        && matches!(&c.accu_init.expr, Expr::List(l) if l.elements.is_empty())
}
