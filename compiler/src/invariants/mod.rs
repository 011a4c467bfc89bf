//! Invariants: CEL expressions over a repository's reachability, e.g.
//!
//! ```text
//! reachers(workload("payments/db", "pg")).all(c, c.namespace == "payments")
//! ```
//!
//! An invariant is a CEL expression (the `cel` crate, with the standard
//! macros and functions) that must evaluate to `bool`. It holds when it is
//! `true`; when it is `false` it is violated, with a counterexample when its
//! top-level form says what one is (below); when it cannot be evaluated, it
//! is an error placed in the expression's text.
//!
//! # Values
//!
//! The repository's objects are maps (`type(x) == map`); selecting a field
//! they lack is an error, and so, before evaluation, is writing one
//! (`c.namespce`) where the checker can tell what `c` is.
//!
//! A **client class** (clients no policy tells apart; see `meshc
//! who-can-reach`) has:
//!
//! | field | type | |
//! |---|---|---|
//! | `kind` | string | `workload`, `identity`, `unmeshed`, `kubelet`, `external`, `localhost` or `cidr`: the kind of the class's first member |
//! | `name` | string | the first member's workload name, identity (pattern), CIDR, or its kind |
//! | `namespace` | string | the first member's namespace, `""` if none |
//! | `identity` | string | the mTLS identity the first member presents, `""` if plaintext |
//! | `id` | int | the class id, as in `meshc who-can-reach` |
//! | `members` | list(string) | every member's label: `Deployment/ns/name`, `identity:…`, `cidr:…`, `kubelet`, … |
//! | `labels` | map(string, string) | the pod labels of the first member, only when it is a workload (`has(c.labels)`) |
//! | `cluster` | string | the cluster's name in a multicluster repository (`clusters:` in `meshc.yaml`), `""` otherwise |
//!
//! A **target** (a workload port) has `namespace`, `name`, `kind` (the
//! workload's: strings), `port` (int), `portName` (string, `""` if the port
//! has no name), `workload` (string, `Kind/namespace/name`) and `cluster`
//! (string, as a client class's).
//!
//! A **workload** has `kind`, `namespace`, `name` (strings), `meshed`
//! (bool), `identity` (string, `""` if not meshed), `ports` (list(int): its
//! target ports), `labels` (map(string, string): pod labels) and `cluster`
//! (string, as a client class's). In a multicluster repository each cluster's
//! invariants run on that cluster, so every value's `cluster` is its name:
//! an invariant shared by several clusters can tell them apart
//! (`workloads.all(w, w.cluster != "edge" || !w.meshed)`).
//!
//! An **edge** (a client class allowed on a target, on one route) has
//! `client` (client class), `target` (target), `route` (string:
//! `HTTPRoute name`, `GRPCRoute name`, `default:name`, `connection` for
//! non-HTTP traffic, or `*` where nothing is enforced: no proxy or a
//! skipped port) and `partial` (bool: the client is allowed on some routes
//! of the port but not all). Every class gets its own edge, also where a
//! port admits everyone. As in `meshc matrix`, the pod's own localhost
//! traffic, which every proxy allows, is no edge: the `localhost` class is
//! in `clients` but in no `edges` and no `reachers(...)`, while
//! `reachable("localhost", t)` is true.
//!
//! A **resource** has `kind`, `namespace` (`""` if cluster-scoped), `name`
//! and `apiVersion` (strings).
//!
//! An **egress edge** (a fact of a client's egress policy that lets traffic
//! out of the cluster; the `egress` rows of `meshc matrix --format json`) has
//! `client` (client class), `namespace` (string: the client workloads'
//! namespace the edge holds for; egress turns on it, not on the class),
//! `kind` (string: `route` (an EgressNetwork route forwards what it matches),
//! `trafficPolicy` (an `Allow` EgressNetwork forwards any other traffic to
//! its networks), `uncovered` (addresses no EgressNetwork that applies covers
//! get Linkerd's egress-fallback) or `no-proxy` (a workload without a proxy:
//! nothing polices it)), `egressNetwork` (string `namespace/name`, `""` for
//! `uncovered` and `no-proxy`), `route` (string `HTTPRoute name` or
//! `GRPCRoute name`, `""` unless `kind` is `route`), `port` (int: the
//! destination port the route serves, `0` otherwise), `verdict` (string:
//! `allow`, or `partial` when some of the route's backends are invalid) and
//! `backends` (list(string): `original`, `svc/ns/name:port` when redirected to
//! a Service, or `invalid: …`). A `Deny` EgressNetwork's default route is no
//! edge.
//!
//! A **request** (`request(...)`) is a value of type `meshc.Request`, only
//! passed to `reachable` and `reachers`.
//!
//! # Variables
//!
//! | variable | type |
//! |---|---|
//! | `clients` | list(client class), by class id |
//! | `workloads` | list(workload), in input order |
//! | `targets` | list(target): every workload's ports, workload by workload |
//! | `edges` | list(edge): for each target, each route, each allowed class by id |
//! | `servers` | list(resource): the Servers |
//! | `routes` | list(resource): HTTPRoutes (both API groups) and GRPCRoutes |
//! | `policies` | list(resource): AuthorizationPolicies, ServerAuthorizations, MeshTLSAuthentications, NetworkAuthentications |
//! | `egress` | list(egress edge): by client class, then client namespace, then fact |
//!
//! # Functions
//!
//! | function | result | |
//! |---|---|---|
//! | `workload(ref)` | list(target) | the workload's targets (the ports `meshc who-can-reach` answers for); `ref` is `ns/name` or `kind/ns/name` (`deploy`, `sts`, … accepted) |
//! | `workload(ref, port)` | target | `port` an int, or a container port name (string) |
//! | `reachable(client, target)` | bool | allowed on at least one route of the port |
//! | `reachable(client, target, request)` | bool | that request is allowed (the route it selects, or a connection) |
//! | `reachers(target)` | list(client class) | the classes `reachable` on the port, by class id |
//! | `reachers(target, request)` | list(client class) | the classes allowed that request |
//! | `request(method, path)` | request | `path` must start with `/` and may carry `?query` |
//! | `request(method, path, headers)` | request | `headers`: map(string, string); `host` (or `:authority`) also sets the host |
//!
//! A `client` argument is a client class, a workload (its class), or a
//! string as `meshc reach --from` takes it (`kubelet`, `sa:ns/name`,
//! `deploy/ns/name`, `ip:10.0.0.1`, an identity, …). A `target` argument is
//! a target, an edge (its target), or a string `WORKLOAD:PORT`
//! (`books/books:service`). Verdicts are the proxy's own decision
//! functions' (with a request), or the class sets `meshc matrix` computes,
//! which the property tests hold equal to them.
//!
//! Besides CEL's standard library and macros (`all`, `exists`,
//! `exists_one`, `map`, `filter`, `has`, `size`, `in`, `matches`,
//! `startsWith`, `endsWith`, `contains`, conversions), the environment has:
//!
//! - the strings extension: `charAt`, `indexOf`, `lastIndexOf`,
//!   `lowerAscii`, `upperAscii`, `replace`, `split`, `substring`, `trim`,
//!   `reverse`, `format`, `join` (on lists), `strings.quote`;
//! - the lists extension: `distinct`, `flatten`, `reverse`, `slice`, `sort`,
//!   `sortBy`, `lists.range`;
//! - the math extension: `math.greatest`, `math.least`, `math.abs`, …;
//! - Kubernetes' IP and CIDR library: `isIP(string)`, `ip(string)` (type
//!   `net.IP`), `ip.isCanonical(string)`, `ip.family()`,
//!   `ip.isUnspecified()`, `ip.isLoopback()`, `ip.isLinkLocalMulticast()`,
//!   `ip.isLinkLocalUnicast()`, `ip.isGlobalUnicast()`, `isCIDR(string)`,
//!   `cidr(string)` (type `net.CIDR`), `cidr.containsIP(ip or string)`,
//!   `cidr.containsCIDR(cidr or string)`, `cidr.ip()`, `cidr.masked()`,
//!   `cidr.prefixLength()`, `string(ip or cidr)`.
//!
//! # Pod addresses
//!
//! Git does not hold where a pod is (see `podNetworks`). An invariant is
//! evaluated with only the edges, `reachable` and `reachers` answers that
//! hold wherever a client pod is and, when it read any that depend on the
//! pod CIDR, again with those present too. When the two answers differ the
//! invariant depends on the pod CIDR: it fails as `invariant-violated`,
//! saying so, with the counterexample of the evaluation where it is false.
//!
//! # Counterexamples
//!
//! When the invariant is `LIST.all(x, P)` or `!LIST.exists(x, P)`, alone
//! or as a conjunct of `&&`, and is false, the counterexample is the first
//! element of LIST, in list order, for which it fails: a client class, an
//! edge, a target or a workload is mapped back to class, workload, port and
//! route (for `reachers(t[, request]).all(...)`, the target is `t`, and the
//! route the one the request selects). Other false invariants, including
//! `LIST.exists(x, P)` that finds nothing, have none.
//!
//! # Errors
//!
//! Syntax errors carry the parser's line and column. Undeclared names and
//! unknown fields of the repository's maps are found before evaluation, at
//! their place. Other errors (wrong argument types, a missing key, an
//! unknown function) are found while evaluating, so a branch never
//! evaluated raises none; they are placed at the first node that could
//! have raised them (the function, field or operator named), else at 1:1,
//! as is a result that is not a bool. As in CEL, an element for which
//! `all`'s predicate is false wins over an error on another element, and
//! so does a false conjunct of `&&`.
//!
//! An expression is at most 8,192 characters and 48 levels of brackets
//! deep: the `cel` crate recurses with large frames, and a stack overflow
//! would end the process.
//!
//! # Cost
//!
//! Values are handles on the checked repository, not copies, made when an
//! expression reads them. `LIST.all(...)`, `LIST.exists(...)` and their
//! negations over `edges` at the top level (or as conjuncts) are searched
//! without listing the edges: P is evaluated only on an edge that differs
//! from all edges before it in a value P reads (see `edges.rs`). On the
//! 10,000-workload benchmark (35 million class-route edges) such an
//! invariant takes 1-60 ms after a one-time 0.15 s, where evaluating P on
//! every edge would take over a minute. P that uses `e` itself (`e ==
//! other`, `f(e)`) is evaluated on every edge. `edges` anywhere else
//! (`edges.filter(...)`, a nested comprehension) is listed, 24 bytes an
//! edge (0.8 GB for the benchmark); `size(edges)`, `edges[i]` and `x in
//! edges` are not.

/// Inside an `impl Val`: the capability accessors (`as_indexer`, …) that
/// hand out the value itself, which is how every meshc value implements them.
macro_rules! self_capabilities {
    ($($cap:ident),* $(,)?) => { $( self_capabilities!(@one $cap); )* };
    (@one adder) => {
        fn as_adder<'b, 'v>(&'b self) -> Option<&'b (dyn cel::common::traits::Adder + 'v)> where Self: 'v { Some(self) }
    };
    (@one indexer) => {
        fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn cel::common::traits::Indexer + 'v)> where Self: 'v { Some(self) }
    };
    (@one iterable) => {
        fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn cel::common::traits::Iterable + 'v)> where Self: 'v { Some(self) }
    };
    (@one sizer) => {
        fn as_sizer(&self) -> Option<&dyn cel::common::traits::Sizer> { Some(self) }
    };
    (@one container) => {
        fn as_container(&self) -> Option<&dyn cel::common::traits::Container> { Some(self) }
    };
}

mod deps;
mod driver;
mod edgelist;
mod edges;
mod errors;
mod fields;
mod functions;
mod limits;
mod net;
mod tables;
mod tracked;
mod trie;
mod values;

pub use driver::{Counterexample, InvariantOutcome};
pub use errors::CelError;

use crate::pipeline::Outcome;
use crate::query::classes::Classes;
use cel::common::value::CowVal;
use cel::context::VariableResolver;
use fields::Item;
use std::sync::{Arc, OnceLock};
use tables::{Tables, World};
use values::{Record, RecordList};

/// The invariant environment of one checked repository: build it once and
/// check any number of invariants, from any number of threads.
pub struct Env<'o> {
    tables: Tables<'o>,
    /// The same repository with every edge that depends on the pod CIDR present.
    possible: Tables<'o>,
    cel: Result<Arc<cel::Env>, String>,
}

fn cel_env() -> Result<cel::Env, cel::DeclarationError> {
    let mut env = cel::Env::stdlib();
    env.add_extension(cel::extensions::strings)?;
    env.add_extension(cel::extensions::lists)?;
    env.add_extension(cel::extensions::math)?;
    env.add_extension(net::extension)?;
    Ok(env)
}

impl<'o> Env<'o> {
    pub fn new(o: &'o Outcome, classes: &'o Classes<'o>) -> Self {
        let cel = cel_env().map(Arc::new).map_err(|e| e.to_string());
        Env {
            tables: Tables::new(o, classes, World::Definite),
            possible: Tables::new(o, classes, World::Possible),
            cel,
        }
    }

    /// Evaluates one invariant: once with only the edges allowed wherever a
    /// client pod is and, when it read something that depends on the pod
    /// CIDR, again with those edges too. Answers that differ make it
    /// `Depends`, with the counterexample of the world where it fails.
    pub fn check(&self, expr: &str) -> Result<InvariantOutcome, CelError> {
        let definite = self.check_in(&self.tables, expr)?;
        if !self.tables.depends_seen() {
            return Ok(definite);
        }
        let possible = self.check_in(&self.possible, expr)?;
        Ok(match (definite, possible) {
            (InvariantOutcome::Holds, InvariantOutcome::Holds) => InvariantOutcome::Holds,
            (InvariantOutcome::Violated(c), InvariantOutcome::Violated(_)) => InvariantOutcome::Violated(c),
            (InvariantOutcome::Violated(c), _) | (_, InvariantOutcome::Violated(c)) => InvariantOutcome::Depends(c),
            // check_in answers Holds or Violated only.
            (d @ InvariantOutcome::Depends(_), _) | (_, d @ InvariantOutcome::Depends(_)) => d,
        })
    }

    fn check_in(&self, tables: &Tables<'o>, expr: &str) -> Result<InvariantOutcome, CelError> {
        // The cel crate recurses once per nesting level and per operand of a
        // chain (`a + b + …`), with large frames: a stack overflow would abort
        // the process. Bound the text, then run on a thread with room for it.
        limits::check(expr)?;
        let internal = || CelError::at_start("internal error: cannot start the CEL evaluation thread");
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new().name("meshc-cel".into()).stack_size(limits::STACK);
            let handle = worker.spawn_scoped(s, || self.check_here(tables, expr)).map_err(|_| internal())?;
            handle.join().unwrap_or_else(|_| Err(CelError::at_start("internal error: the CEL evaluation failed")))
        })
    }

    fn check_here(&self, tables: &Tables<'o>, expr: &str) -> Result<InvariantOutcome, CelError> {
        let env = self.cel.as_ref().map_err(|e| CelError::at_start(format!("internal error: {e}")))?;
        let program = env.compile(expr).map_err(|e| errors::from_parse(&e))?;
        let (root, info) = (program.expression(), program.source_info());
        deps::check(root, env, info)?;
        let vars = Vars::new(tables);
        let mut ctx = cel::Context::with_env(Arc::clone(env));
        ctx.set_variable_resolver(&vars);
        functions::register(&mut ctx).map_err(|e| CelError::at_start(format!("internal error: {e}")))?;
        let cx = driver::Cx { ctx: &ctx, t: vars.t, log: &vars.log };
        // The interpreter is a dependency: should it panic on some input, that
        // is this invariant's error, not the end of the run.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver::top(root, &cx)));
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(driver::Failure::Exec(e))) => Err(errors::from_exec(&e, root, info)),
            Ok(Err(driver::Failure::NotBool(ty))) => {
                Err(CelError::at_start(format!("an invariant must evaluate to bool; this one evaluates to {ty}")))
            }
            Err(_) => Err(CelError::at_start("internal error: the CEL interpreter failed on this expression")),
        }
    }
}

/// The variables of one evaluation; lists are made on first use.
struct Vars<'t> {
    t: &'t Tables<'t>,
    calls: functions::Calls<'t>,
    lists: [OnceLock<RecordList<'t>>; 8],
    edges: edgelist::EdgeList<'t>,
    log: tracked::Log,
}

impl<'t> Vars<'t> {
    fn new(t: &'t Tables<'t>) -> Self {
        Vars {
            t,
            calls: functions::Calls { t },
            lists: Default::default(),
            edges: edgelist::EdgeList::new(t),
            log: tracked::Log::default(),
        }
    }

    fn records(&self, items: impl Iterator<Item = Item>) -> RecordList<'t> {
        RecordList(items.map(|item| Record { t: self.t, item }).collect())
    }

    fn list(&self, i: usize) -> RecordList<'t> {
        let t = self.t;
        let resources = |ids: &Vec<u32>| self.records(ids.iter().map(|&r| Item::Resource(r)));
        match deps::GLOBALS[i].0 {
            "clients" => self.records((0..t.classes.len() as u32).map(Item::Class)),
            "workloads" => self.records((0..t.o.resolved.workloads.len() as u32).map(Item::Workload)),
            "targets" => {
                self.records(t.targets().list.iter().map(|r| Item::Target { workload: r.workload, port: r.port }))
            }
            "servers" => resources(&t.resources().servers),
            "routes" => resources(&t.resources().routes),
            "egress" => self.records((0..t.egress().len() as u32).map(Item::Egress)),
            _ => resources(&t.resources().policies),
        }
    }
}

impl VariableResolver for Vars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            functions::CALLS => return Some(CowVal::Borrowed(&self.calls)),
            "edges" => return Some(CowVal::Borrowed(&self.edges)),
            _ => {}
        }
        let i = deps::GLOBALS.iter().position(|(n, _)| *n == variable)?;
        Some(CowVal::Borrowed(self.lists[i].get_or_init(|| self.list(i))))
    }
}
