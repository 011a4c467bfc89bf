//! Evaluating an invariant and finding its counterexample.
//!
//! The top-level form is read from the parsed expression: a conjunction
//! (`A && B`) is evaluated conjunct by conjunct, with CEL's semantics (a
//! false conjunct wins over an error in another); `LIST.all(x, P)`,
//! `LIST.exists(x, P)` and their negations are evaluated element by
//! element, in list order, up to the first element that decides them, which
//! for `all` and `!exists` is the counterexample. Anything else is
//! evaluated whole by the interpreter and, when false, has no
//! counterexample.

use super::edges;
use super::fields::Item;
use super::functions::RequestVal;
use super::tables::Tables;
use super::tracked::Log;
use super::values::{identify, render};
use crate::query::evaluate::{self, Gate, route_meta};
use crate::query::proof::route_name;
use cel::common::ast::{ComprehensionExpr, Expr, LiteralValue, operators};
use cel::common::types::CelBool;
use cel::common::value::Val;
use cel::parser::Expression;
use cel::{Context, ExecutionError, Value};
use mesh_proxy_api::HttpRequest;
use serde::Serialize;

/// What a failing invariant was caught on. Which fields are set depends on
/// what the failing element is: a client class sets `class` (and, from
/// `reachers(target[, request])`, the target and request), an edge sets
/// class, workload, port and route, a target sets workload and port, a
/// workload sets workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counterexample {
    /// Client class id ([`crate::query::classes::Class::id`]).
    pub class: Option<usize>,
    /// Index into `outcome.resolved.workloads`.
    pub workload: Option<usize>,
    pub port: Option<u16>,
    /// The route (`HTTPRoute name`, `GRPCRoute name`, `default:…`, `connection`, `*`).
    pub route: Option<String>,
    pub request: Option<HttpRequest>,
    /// The failing element, written as CEL (lists cut after 20 elements).
    pub detail: String,
}

// The shape is the caller's API; a violation is rare and its copy cheap next to evaluating it.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum InvariantOutcome {
    Holds,
    Violated(Option<Counterexample>),
    /// True or false depending on where client pods are in the pod CIDR,
    /// which git does not hold; with the counterexample where it is false.
    Depends(Option<Counterexample>),
}

#[derive(Clone)]
pub enum Failure {
    Exec(ExecutionError),
    /// The invariant's value, of this type, is not a bool.
    NotBool(String),
}

impl From<ExecutionError> for Failure {
    fn from(e: ExecutionError) -> Self {
        Failure::Exec(e)
    }
}

/// What an evaluation needs: the context, and the tables behind its values.
pub struct Cx<'c, 'p, 'v> {
    pub ctx: &'c Context<'p, 'v>,
    pub t: &'v Tables<'v>,
    /// Where a tracked edge records its reads (see `edges.rs`).
    pub log: &'v Log,
}

/// `LIST.all(var, pred)` or `LIST.exists(var, pred)`, possibly negated.
pub struct Quantifier<'e> {
    pub range: &'e Expression,
    pub var: &'e str,
    pub pred: &'e Expression,
    /// `exists` rather than `all`.
    pub exists: bool,
    pub negated: bool,
}

impl Quantifier<'_> {
    /// Whether `pred` on an element decides the quantifier (false for
    /// `all`, true for `exists`); the search is for the first such element.
    pub fn decides(&self, pred: bool) -> bool {
        pred == self.exists
    }

    /// The outcome once the search found a deciding element (`Some`), or
    /// none: a found element is the counterexample of `all` and `!exists`.
    fn outcome(&self, found: Option<Counterexample>) -> InvariantOutcome {
        let violated_if_found = self.exists == self.negated;
        match found {
            Some(c) if violated_if_found => InvariantOutcome::Violated(Some(c)),
            Some(_) => InvariantOutcome::Holds,
            None if violated_if_found => InvariantOutcome::Holds,
            None => InvariantOutcome::Violated(None),
        }
    }
}

fn is_bool(e: &Expression, b: bool) -> bool {
    matches!(&e.expr, Expr::Literal(LiteralValue::Boolean(v)) if *v.inner() == b)
}

/// The predicate of the `all` (`fold` = `&&`, from true) or `exists`
/// (`||`, from false) macros' expansion.
fn folded<'e>(c: &'e ComprehensionExpr, fold: &str, init: bool) -> Option<&'e Expression> {
    let Expr::Call(step) = &c.loop_step.expr else { return None };
    let accu = |e: &Expression| matches!(&e.expr, Expr::Ident(n) if *n == c.accu_var);
    let ok = c.iter_var2.is_none()
        && is_bool(&c.accu_init, init)
        && accu(&c.result)
        && step.func_name == fold
        && step.target.is_none()
        && step.args.len() == 2
        && accu(&step.args[0]);
    ok.then(|| &step.args[1])
}

fn comprehension(e: &Expression, negated: bool) -> Option<Quantifier<'_>> {
    let Expr::Comprehension(c) = &e.expr else { return None };
    let (pred, exists) = match folded(c, operators::LOGICAL_AND, true) {
        Some(p) => (p, false),
        None => (folded(c, operators::LOGICAL_OR, false)?, true),
    };
    Some(Quantifier { range: &c.iter_range, var: &c.iter_var, pred, exists, negated })
}

pub fn quantifier(e: &Expression) -> Option<Quantifier<'_>> {
    match &e.expr {
        Expr::Call(not) if not.func_name == operators::LOGICAL_NOT && not.args.len() == 1 => {
            comprehension(&not.args[0], true)
        }
        _ => comprehension(e, false),
    }
}

fn conjuncts(e: &Expression) -> Option<(&Expression, &Expression)> {
    match &e.expr {
        Expr::Call(c) if c.func_name == operators::LOGICAL_AND && c.target.is_none() && c.args.len() == 2 => {
            Some((&c.args[0], &c.args[1]))
        }
        _ => None,
    }
}

fn truth(v: &dyn Val) -> Result<bool, Failure> {
    v.downcast_ref::<CelBool>().map(|b| *b.inner()).ok_or_else(|| Failure::NotBool(v.get_type().name().to_owned()))
}

pub fn top(e: &Expression, cx: &Cx) -> Result<InvariantOutcome, Failure> {
    if let Some((a, b)) = conjuncts(e) {
        let left = top(a, cx);
        if let Ok(InvariantOutcome::Violated(_)) = left {
            return left;
        }
        let right = top(b, cx);
        return match (left, right) {
            (Ok(_), right) => right,
            (Err(_), Ok(v @ InvariantOutcome::Violated(_))) => Ok(v),
            (Err(e), _) => Err(e),
        };
    }
    if let Some(q) = quantifier(e) {
        return forall(&q, cx);
    }
    let v = Value::resolve_val(e, cx.ctx)?;
    Ok(if truth(v.as_ref())? { InvariantOutcome::Holds } else { InvariantOutcome::Violated(None) })
}

/// Whether the element decides the quantifier (see [`Quantifier::decides`]).
pub fn decides<'v>(q: &Quantifier, cx: &Cx<'_, '_, 'v>, elem: Box<dyn Val + 'v>) -> Result<bool, Failure> {
    let mut scope = cx.ctx.new_inner_scope();
    scope.add_variable_as_val(q.var, elem);
    let v = Value::resolve_val(q.pred, &scope)?;
    Ok(q.decides(truth(v.as_ref())?))
}

fn forall(q: &Quantifier, cx: &Cx) -> Result<InvariantOutcome, Failure> {
    let found =
        if matches!(&q.range.expr, Expr::Ident(n) if n == "edges") { edges::search(q, cx)? } else { search(q, cx)? };
    Ok(q.outcome(found))
}

/// The first element that decides `q`, as a counterexample. With none, an
/// error on some element is the result, as CEL's `all` and `exists` have it.
fn search(q: &Quantifier, cx: &Cx) -> Result<Option<Counterexample>, Failure> {
    let range = Value::resolve_val(q.range, cx.ctx)?;
    let items = range.as_iterable().ok_or_else(|| ExecutionError::UnexpectedType {
        got: range.get_type().name().to_owned(),
        want: "iterable".to_owned(),
    })?;
    let mut pending = None;
    let mut items = items.iter();
    while let Some(elem) = items.next() {
        match decides(q, cx, elem.clone_as_boxed()) {
            Ok(false) => {}
            Ok(true) => return Ok(Some(counterexample(q, cx, elem))),
            Err(e) => {
                pending.get_or_insert(e);
            }
        }
    }
    pending.map_or(Ok(None), Err)
}

/// The failing element, mapped back to the repository.
pub fn counterexample(q: &Quantifier, cx: &Cx, elem: &dyn Val) -> Counterexample {
    let mut out = Counterexample {
        class: None,
        workload: None,
        port: None,
        route: None,
        request: None,
        detail: render(elem, 20),
    };
    match identify(elem) {
        Some(Item::Class(c)) => {
            out.class = Some(c as usize);
            reachers_target(q, cx, c as usize, &mut out);
        }
        Some(Item::Edge { class, target, entry }) => {
            let r = cx.t.targets().list[target as usize];
            out.class = Some(class as usize);
            out.workload = Some(r.workload as usize);
            out.port = Some(r.port);
            out.route = cx.t.edges_of(target).entries.get(entry as usize).map(|(n, _)| n.clone());
        }
        Some(Item::Target { workload, port }) => {
            out.workload = Some(workload as usize);
            out.port = Some(port);
        }
        Some(Item::Workload(w)) => out.workload = Some(w as usize),
        Some(Item::Egress(e)) => out.class = cx.t.egress().get(e as usize).map(|x| x.class as usize),
        Some(Item::Resource(_)) | None => {}
    }
    out
}

/// For `reachers(target[, request]).all(c, …)`: the target, the request and
/// the route it selects.
fn reachers_target(q: &Quantifier, cx: &Cx, class: usize, out: &mut Counterexample) {
    let Expr::Call(call) = &q.range.expr else { return };
    if call.func_name != "reachers" || call.target.is_some() {
        return;
    }
    let Some(Ok(target)) = call.args.first().map(|a| Value::resolve_val(a, cx.ctx)) else { return };
    let (wi, port) = match identify(target.as_ref()) {
        Some(Item::Target { workload, port }) => (workload as usize, port),
        Some(Item::Edge { target, .. }) => {
            let r = cx.t.targets().list[target as usize];
            (r.workload as usize, r.port)
        }
        _ => return,
    };
    out.workload = Some(wi);
    out.port = Some(port);
    let Some(Ok(req)) = call.args.get(1).map(|a| Value::resolve_val(a, cx.ctx)) else { return };
    let Some(req) = req.downcast_ref::<RequestVal>() else { return };
    let client = &cx.t.classes.classes[class].client;
    let gate = evaluate::gate(cx.t.o.configs[wi].as_ref(), port, client);
    let decision = evaluate::for_request(gate, client, &req.0);
    out.route = match (gate, decision.route) {
        (Gate::Server(s), Some((ri, _))) => Some(route_name(route_meta(s, ri))),
        _ => None,
    };
    out.request = Some(req.0.clone());
}
