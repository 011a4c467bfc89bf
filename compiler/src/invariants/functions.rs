//! The reachability functions: `workload`, `reachable`, `reachers` and
//! `request`.
//!
//! Functions added to a CEL context must be `'static`, and the repository
//! is borrowed. So each function forwards its arguments to [`Calls`], a
//! value bound to a variable no expression can name (`@meshc`), which holds
//! the tables and answers by being indexed with `[name, args...]`.

use super::fields::Item;
use super::tables::Tables;
use super::values::{Record, RecordList, identify};
use crate::query::evaluate::{self, Verdict};
use crate::query::reach::{parse_client, parse_target};
use crate::query::workload_ref;
use cel::common::traits::Indexer;
use cel::common::types::{CelBool, CelInt, CelList, CelMap, CelString, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{Context, ExecutionError, FunctionContext};
use mesh_proxy_api::{Client, HttpRequest};
use std::any::Any;

/// The variable [`Calls`] is bound to; `@` keeps it out of expressions.
pub const CALLS: &str = "@meshc";

const FORWARDED: &[&str] = &["workload", "reachable", "reachers"];

type Function =
    Box<dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError> + Send + Sync>;

/// Adds the functions to `ctx`.
pub fn register(ctx: &mut Context) -> Result<(), cel::DeclarationError> {
    for name in FORWARDED {
        ctx.add_function(name, Box::new(forward) as Function)?;
    }
    ctx.add_function("request", Box::new(request) as Function)
}

fn forward<'c, 'v>(ftx: &mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError> {
    if ftx.this.is_some() {
        return Err(ftx.error("is a function, not a method: call it as name(args)"));
    }
    let Some(CowVal::Borrowed(calls)) = ftx.ptx.get_variable(CALLS) else {
        return Err(ftx.error("the repository is not bound (internal error)"));
    };
    let mut items: Vec<Box<dyn Val + 'v>> = vec![Box::new(CelString::from(ftx.name.to_owned()))];
    items.extend(ftx.args.drain(..).map(CowVal::into_owned));
    let call = CelList::from(items);
    let indexer = calls.as_indexer().ok_or_else(|| ftx.error("internal error"))?;
    Ok(CowVal::Owned(indexer.get(&call)?.into_owned()))
}

/// Holds the tables for the forwarded functions.
#[derive(Clone, Copy)]
pub struct Calls<'t> {
    pub t: &'t Tables<'t>,
}

static CALLS_TYPE: Type = Type::new_unspecified_type("meshc.functions");

impl std::fmt::Debug for Calls<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("meshc functions")
    }
}

impl<'t> Val for Calls<'t> {
    fn get_type(&self) -> &Type {
        &CALLS_TYPE
    }
    fn cel_type() -> &'static Type {
        &CALLS_TYPE
    }
    self_capabilities!(indexer);
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }
}

impl<'t> Indexer for Calls<'t> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let Some(call) = idx.downcast_ref::<CelList>() else {
            return Err(ExecutionError::function_error("@meshc", "internal error"));
        };
        let (name, args) = match call.inner() {
            [name, args @ ..] => (name.downcast_ref::<CelString>().map(|s| s.inner().to_owned()), args),
            [] => (None, &[][..]),
        };
        let name = name.unwrap_or_default();
        let args: Vec<&dyn Val> = args.iter().map(|a| a.as_ref()).collect();
        let fail = |m: String| ExecutionError::function_error(&name, m);
        let out: Box<dyn Val + 't> = match name.as_str() {
            "workload" => workload(self.t, &args).map_err(fail)?,
            "reachable" => Box::new(CelBool::from(reachable(self.t, &args).map_err(fail)?)),
            "reachers" => reachers(self.t, &args).map_err(fail)?,
            _ => return Err(ExecutionError::undeclared_reference(&name)),
        };
        Ok(CowVal::Owned(out))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

fn type_name(v: &dyn Val) -> String {
    v.get_type().name().to_owned()
}

fn string_arg<'a>(v: &'a dyn Val, what: &str) -> Result<&'a str, String> {
    v.downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| format!("{what} must be a string, got {}", type_name(v)))
}

/// `workload(ref)`: the workload's targets; `workload(ref, port)`: one target.
fn workload<'t>(t: &'t Tables<'t>, args: &[&dyn Val]) -> Result<Box<dyn Val + 't>, String> {
    let (reference, port) = match args {
        [r] => (*r, None),
        [r, p] => (*r, Some(*p)),
        _ => return Err(format!("takes a workload reference and an optional port, got {} arguments", args.len())),
    };
    let reference = string_arg(reference, "the workload reference")?;
    let wi = workload_ref::find(&t.o.resolved, reference)?;
    let Some(port) = port else {
        let targets = t.targets();
        let (start, end) = targets.by_workload[wi];
        let items = targets.list[start as usize..end as usize]
            .iter()
            .map(|r| Record { t, item: Item::Target { workload: r.workload, port: r.port } });
        return Ok(Box::new(RecordList(items.collect())));
    };
    let port = if let Some(n) = port.downcast_ref::<CelInt>() {
        u16::try_from(*n.inner()).map_err(|_| format!("port {} is out of range", n.inner()))?
    } else {
        let name = string_arg(port, "the port (a number or a container port name)")?;
        match parse_target(t.o, &format!("{reference}:{name}"))? {
            (_, Some(p)) => p,
            (_, None) => return Err(format!("no port `{name}`")),
        }
    };
    Ok(Box::new(Record { t, item: Item::Target { workload: wi as u32, port } }))
}

/// A client argument: a client class, or what a class can be derived from,
/// at every place it may be (see `query::places`).
struct ClientArg {
    at: Vec<Client>,
    class: Option<usize>,
}

fn client_arg(t: &Tables, v: &dyn Val) -> Result<ClientArg, String> {
    let classes = t.classes;
    match identify(v) {
        Some(Item::Class(c)) => {
            let class = classes.classes.get(c as usize).ok_or("no such client class")?;
            Ok(ClientArg { at: class.at.clone(), class: Some(c as usize) })
        }
        Some(Item::Workload(w)) => {
            let w = &t.o.resolved.workloads[w as usize];
            let client = crate::query::clients::workload_client(w, &classes.addrs);
            let kind = crate::query::clients::ClientKind::Workload;
            Ok(ClientArg { class: classes.class_of(kind, &client), at: classes.addrs.at_places(kind, &client) })
        }
        Some(_) => Err(
            "the client must be a client class (from `clients`, `reachers` or an edge), a workload or a client string"
                .into(),
        ),
        None => {
            let spec = string_arg(v, "the client")?;
            let view = parse_client(t.o, classes, spec)?;
            let at = view.at.into_iter().map(|(_, c)| c).collect();
            Ok(ClientArg { at, class: view.class })
        }
    }
}

fn target_arg(t: &Tables, v: &dyn Val) -> Result<(usize, u16), String> {
    match identify(v) {
        Some(Item::Target { workload, port }) => Ok((workload as usize, port)),
        Some(Item::Edge { target, .. }) => {
            let r = t.targets().list[target as usize];
            Ok((r.workload as usize, r.port))
        }
        Some(_) => {
            Err("the target must be a target (from `workload(ref, port)`, `targets` or an edge's `target`)".into())
        }
        None if v.get_type().kind() == cel::common::types::Kind::List => {
            Err("the target is a list: `workload(ref)` without a port lists every port; name one, or iterate".into())
        }
        None => match parse_target(t.o, string_arg(v, "the target")?)? {
            (wi, Some(port)) => Ok((wi, port)),
            (_, None) => Err("a target string needs a port: WORKLOAD:PORT".into()),
        },
    }
}

fn request_arg(v: &dyn Val) -> Result<&HttpRequest, String> {
    v.downcast_ref::<RequestVal>()
        .map(|r| &r.0)
        .ok_or_else(|| format!("the request must be made with request(method, path[, headers]), got {}", type_name(v)))
}

/// Whether `req` from the client, at each of its places, is allowed, as the
/// tables' world counts a verdict that depends on the place.
fn allows(t: &Tables, wi: usize, port: u16, at: &[Client], req: &HttpRequest) -> bool {
    let config = t.o.configs[wi].as_ref();
    let allowed: Vec<bool> = at
        .iter()
        .map(|c| evaluate::for_request(evaluate::gate(config, port, c), c, req).verdict == Verdict::Allow)
        .collect();
    t.counts(&allowed)
}

/// `reachable(client, target[, request])`.
fn reachable(t: &Tables, args: &[&dyn Val]) -> Result<bool, String> {
    let (c, target, req) = match args {
        [c, target] => (*c, *target, None),
        [c, target, r] => (*c, *target, Some(request_arg(*r)?)),
        _ => return Err(format!("takes a client, a target and an optional request, got {} arguments", args.len())),
    };
    let client = client_arg(t, c)?;
    let (wi, port) = target_arg(t, target)?;
    if let Some(req) = req {
        return Ok(allows(t, wi, port, &client.at, req));
    }
    if let Some(class) = client.class.filter(|c| !t.localhost().contains(c)) {
        return Ok(match t.target_id(wi, port) {
            Some(id) => t.edges_of(id).admits(class as u32),
            None => t.compute(wi, port).admits(class as u32),
        });
    }
    // Localhost is in no edge list, and a client no member of the repository
    // behaves like is in no class: ask the proxy's decision functions.
    let config = t.o.configs[wi].as_ref();
    let allowed: Vec<bool> = client
        .at
        .iter()
        .map(|c| evaluate::per_route(evaluate::gate(config, port, c), c).iter().any(|d| d.verdict == Verdict::Allow))
        .collect();
    Ok(t.counts(&allowed))
}

/// `reachers(target[, request])`: the client classes allowed, by class id.
fn reachers<'t>(t: &'t Tables<'t>, args: &[&dyn Val]) -> Result<Box<dyn Val + 't>, String> {
    let (target, req) = match args {
        [target] => (*target, None),
        [target, r] => (*target, Some(request_arg(*r)?)),
        _ => return Err(format!("takes a target and an optional request, got {} arguments", args.len())),
    };
    let (wi, port) = target_arg(t, target)?;
    let ids: Vec<u32> = match req {
        Some(req) => {
            let all = t.classes.classes.iter().filter(|c| !t.localhost().contains(&c.id));
            all.filter(|c| allows(t, wi, port, &c.at, req)).map(|c| c.id as u32).collect()
        }
        None => match t.target_id(wi, port) {
            Some(id) => t.edges_of(id).any(),
            None => t.compute(wi, port).any(),
        },
    };
    Ok(Box::new(RecordList(ids.into_iter().map(|c| Record { t, item: Item::Class(c) }).collect())))
}

/// An HTTP request made by `request(method, path[, headers])`.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestVal(pub HttpRequest);

static REQUEST_TYPE: Type = Type::new_unspecified_type("meshc.Request");

impl Val for RequestVal {
    fn get_type(&self) -> &Type {
        &REQUEST_TYPE
    }
    fn cel_type() -> &'static Type {
        &REQUEST_TYPE
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<RequestVal>().is_some_and(|o| o == self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for RequestVal {}

fn request<'c, 'v>(ftx: &mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let this = ftx.this.as_ref().map(|t| t.as_ref());
    let args: Vec<&dyn Val> = this.into_iter().chain(ftx.args.iter().map(|a| a.as_ref())).collect();
    let req = make_request(&args).map_err(|m| ftx.error(m))?;
    Ok(CowVal::owned(RequestVal(req)))
}

fn make_request(args: &[&dyn Val]) -> Result<HttpRequest, String> {
    let (method, path, headers) = match args {
        [m, p] => (*m, *p, None),
        [m, p, h] => (*m, *p, Some(*h)),
        _ => return Err(format!("takes a method, a path and optional headers, got {} arguments", args.len())),
    };
    let method = string_arg(method, "the method")?;
    let path = string_arg(path, "the path")?;
    if !path.starts_with('/') {
        return Err(format!("the path `{path}` must start with /"));
    }
    let mut req = HttpRequest::new(method, path);
    let Some(headers) = headers else { return Ok(req) };
    let map = headers.downcast_ref::<CelMap>().ok_or_else(|| {
        format!("the headers must be a map of strings, like {{'x-user': 'alice'}}, got {}", type_name(headers))
    })?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in map.inner() {
        let name = string_arg(k.inner(), "a header name")?;
        pairs.push((name.to_owned(), string_arg(v.as_ref(), "a header value")?.to_owned()));
    }
    // Header order matters to no route match, but keeps requests comparable.
    pairs.sort();
    for (name, value) in pairs {
        if name.eq_ignore_ascii_case("host") || name == ":authority" {
            req.host = Some(value.clone());
        }
        req = req.with_header(&name, &value);
    }
    Ok(req)
}
