//! HTTP: routing requests to discovery, the store, watches and TokenReview.

use crate::discovery;
use crate::error::ApiError;
use crate::faults::{Faults, Logged, Verb};
use crate::patch::PatchKind;
use crate::rbac::{self, Attributes, Authorizer};
use crate::resource::{Behaviour, Gvr, ResourceType};
use crate::select::Selector;
use crate::store::{Part, Store};
use crate::tokens::Tokens;
use crate::watch::{self, WatchRequest};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Request bodies above this are refused (the real server's limit is 3 MiB
/// for objects; lists of ProxyConfigs are applied one object at a time).
const MAX_BODY: usize = 16 << 20;
/// A watch without `timeoutSeconds` lasts this long (the real server
/// picks 30–60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Everything a request handler needs; shared by all connections.
pub(crate) struct App {
    pub store: Store,
    pub tokens: Tokens,
    pub authorizer: Authorizer,
    pub faults: Faults,
    pub addr: SocketAddr,
    pub bookmark_interval: Duration,
}

/// What a path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Version,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    OpenApiRoot,
    OpenApi(String),
    Resource(Target),
    Unknown,
}

/// A resource path: the collection, or one object (or its status).
#[derive(Debug, PartialEq, Eq)]
struct Target {
    gvr: Gvr,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

pub(crate) async fn handle(app: &App, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let query = parse_query(req.uri().query());
    let route = route(req.uri().path());
    let (verb, resource) = classify(&route, &method, &query);
    let attrs = attributes(&route, verb, &query);
    let response = match app.faults.admit(verb, &resource) {
        Some(status) => error(&ApiError::new(status, "InternalError", format!("injected failure ({status})"))),
        None => match app.authorizer.check(&app.tokens, req.headers(), attrs.as_ref()) {
            Err(denied) => error(&denied),
            Ok(()) => dispatch(app, route, &method, &query, req).await.unwrap_or_else(|e| error(&e)),
        },
    };
    app.faults.record(Logged { verb, resource, method: method.to_string(), uri, status: response.status().as_u16() });
    Ok(response)
}

async fn dispatch(
    app: &App,
    route: Route,
    method: &Method,
    query: &HashMap<String, String>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, ApiError> {
    let resources = app.store.resources();
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource");
    match route {
        Route::Version => Ok(json_response(StatusCode::OK, &discovery::version())),
        Route::CoreVersions => Ok(json_response(StatusCode::OK, &discovery::core_versions(app.addr))),
        Route::GroupList => Ok(json_response(StatusCode::OK, &discovery::group_list(resources))),
        Route::Group(g) => {
            discovery::group(resources, &g).map(|v| json_response(StatusCode::OK, &v)).ok_or_else(not_found)
        }
        Route::ResourceList(g, v) => {
            discovery::resource_list(resources, &g, &v).map(|v| json_response(StatusCode::OK, &v)).ok_or_else(not_found)
        }
        Route::OpenApiRoot => Ok(json_response(StatusCode::OK, &discovery::openapi_root(resources))),
        Route::OpenApi(key) => discovery::openapi_group_version(resources, &key)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(not_found),
        Route::Unknown => Err(not_found()),
        Route::Resource(target) => {
            let t = resources.get(&target.gvr).ok_or_else(not_found)?.clone();
            check_scope(&t, &target).ok_or_else(not_found)?;
            let content_type =
                req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            if matches!(*method, Method::POST | Method::PUT) {
                require_json(&content_type)?;
            }
            let body = read_body(method, req).await?;
            resource(app, &t, target, Call { method, query, content_type: &content_type, body })
        }
    }
}

/// A request's method, query, content type and body.
struct Call<'a> {
    method: &'a Method,
    query: &'a HashMap<String, String>,
    content_type: &'a str,
    body: Bytes,
}

/// Handles a request on a registered resource type.
fn resource(app: &App, t: &ResourceType, target: Target, call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let Call { method, query, content_type, body } = call;
    let store = &app.store;
    let (gvr, ns) = (&t.gvr, target.namespace.as_deref());
    let part = if target.status { Part::Status } else { Part::Main };
    if t.behaviour == Behaviour::TokenReview {
        return match (method, &target.name) {
            (&Method::POST, None) => Ok(json_response(StatusCode::CREATED, &app.tokens.review(&parse_json(&body)?))),
            _ => Err(ApiError::method_not_allowed(format!("{gvr} accepts only create"))),
        };
    }
    let Some(name) = target.name.as_deref() else {
        return collection(app, t, ns, method, query, body);
    };
    match *method {
        Method::GET => Ok(json_response(StatusCode::OK, &store.get(gvr, ns, name)?)),
        Method::PUT => Ok(json_response(StatusCode::OK, &store.update(gvr, ns, name, parse_json(&body)?, part)?)),
        Method::PATCH => {
            reject_dry_run(query)?;
            let kind = PatchKind::from_content_type(content_type)?;
            if kind == PatchKind::Apply && query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::bad_request("fieldManager is required for apply requests"));
            }
            let (object, created) = store.patch(gvr, ns, name, kind, &body, part)?;
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(json_response(code, &object))
        }
        Method::DELETE if !target.status => {
            reject_dry_run(query)?;
            let options: Value = if body.is_empty() { Value::Null } else { parse_json(&body)? };
            let precondition = options["preconditions"]["resourceVersion"].as_str();
            Ok(json_response(StatusCode::OK, &store.delete(gvr, ns, name, precondition)?))
        }
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported on {gvr}/{name}"))),
    }
}

/// list, watch, create and deletecollection.
fn collection(
    app: &App,
    t: &ResourceType,
    ns: Option<&str>,
    method: &Method,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let selector = Selector::parse(
        query.get("labelSelector").map(String::as_str),
        query.get("fieldSelector").map(String::as_str),
    )?;
    match *method {
        Method::GET if is_watch(query) => watch_response(app, t, ns, selector, query),
        Method::GET => {
            let (items, rv) = app.store.list(&t.gvr, ns, &selector)?;
            Ok(json_response(StatusCode::OK, &list_object(t, items, rv)))
        }
        Method::POST => {
            reject_dry_run(query)?;
            Ok(json_response(StatusCode::CREATED, &app.store.create(&t.gvr, ns, parse_json(&body)?)?))
        }
        Method::DELETE => {
            reject_dry_run(query)?;
            let (items, _) = app.store.list(&t.gvr, ns, &selector)?;
            let mut deleted = Vec::new();
            for item in items {
                let (item_ns, name) = (item["metadata"]["namespace"].as_str(), item["metadata"]["name"].as_str());
                match app.store.delete(&t.gvr, item_ns, name.unwrap_or(""), None) {
                    Ok(gone) => deleted.push(gone),
                    Err(e) if e.code == StatusCode::NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
            let rv = app.store.resource_version();
            Ok(json_response(StatusCode::OK, &list_object(t, deleted, rv)))
        }
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported on {}", t.gvr))),
    }
}

fn watch_response(
    app: &App,
    t: &ResourceType,
    ns: Option<&str>,
    selector: Selector,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let timeout = match query.get("timeoutSeconds") {
        Some(s) => {
            Duration::from_secs(s.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {s:?}")))?)
        }
        None => DEFAULT_WATCH_TIMEOUT,
    };
    let req = WatchRequest {
        resource: t.clone(),
        namespace: ns.map(str::to_owned),
        selector,
        from: watch::parse_from(query.get("resourceVersion").map(String::as_str))?,
        bookmarks: flag("allowWatchBookmarks"),
        initial_events: flag("sendInitialEvents"),
        timeout,
    };
    let body = watch::start(app.store.clone(), req, app.bookmark_interval);
    let body = BoxBody::new(body.map_err(|never| match never {}));
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache, private"));
    Ok(response)
}

fn list_object(t: &ResourceType, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", t.kind),
        "apiVersion": t.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

/// The verb and resource a request counts under, before it runs.
fn classify(route: &Route, method: &Method, query: &HashMap<String, String>) -> (Verb, String) {
    let Route::Resource(target) = route else {
        return (Verb::Discovery, String::new());
    };
    let verb = match (method, target.name.is_some()) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if is_watch(query) => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, _) => Verb::Create,
        (&Method::PUT, _) => Verb::Update,
        (&Method::PATCH, _) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => Verb::Get,
    };
    (verb, target.gvr.plural.clone())
}

/// What RBAC sees of a resource request (None for discovery and unknown paths).
fn attributes(route: &Route, verb: Verb, query: &HashMap<String, String>) -> Option<Attributes> {
    let Route::Resource(target) = route else { return None };
    let verb = match verb {
        Verb::Get => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
        Verb::Discovery => return None,
    };
    let name = match verb {
        "list" | "watch" => rbac::selector_name(query.get("fieldSelector").map(String::as_str)),
        _ => target.name.clone(),
    };
    // A Namespace object is its own namespace, as the real RequestInfo has it.
    let namespace = match (target.gvr.group.as_str(), target.gvr.plural.as_str()) {
        ("", "namespaces") => target.name.clone(),
        _ => target.namespace.clone(),
    };
    Some(Attributes {
        verb: verb.into(),
        group: target.gvr.group.clone(),
        resource: target.gvr.plural.clone(),
        subresource: target.status.then(|| "status".to_string()),
        namespace,
        name,
    })
}

fn is_watch(query: &HashMap<String, String>) -> bool {
    query.get("watch").is_some_and(|v| v == "true" || v == "1")
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["api", "v1"] => Route::ResourceList(String::new(), "v1".into()),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Route::GroupList,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", rest @ ..] => Route::OpenApi(rest.join("/")),
        _ => Route::Unknown,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    // `namespaces/<ns>/<plural>/…`, except the namespace object's own
    // subresources (`namespaces/<ns>/status`, `…/finalize`).
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if *plural != "status" && *plural != "finalize" => {
            (Some(ns.to_string()), std::iter::once(*plural).chain(more.iter().copied()).collect::<Vec<_>>())
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, status) = match rest.as_slice() {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(name.to_string()), false),
        [plural, name, "status"] => (*plural, Some(name.to_string()), true),
        _ => return Route::Unknown,
    };
    Route::Resource(Target { gvr: Gvr::new(group, version, plural), namespace, name, status })
}

/// Whether the path's scope fits the type: a namespace only for namespaced
/// types, an object name for namespaced types only with a namespace, and
/// `/status` only where the type has it.
fn check_scope(t: &ResourceType, target: &Target) -> Option<()> {
    let ok = match (t.namespaced, &target.namespace, &target.name) {
        (false, Some(_), _) => false,
        (true, None, Some(_)) => false,
        _ => !target.status || t.status,
    };
    ok.then_some(())
}

async fn read_body(method: &Method, req: Request<hyper::body::Incoming>) -> Result<Bytes, ApiError> {
    if *method == Method::GET {
        return Ok(Bytes::new());
    }
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", e.to_string()))
}

/// The query string's parameters (the last of repeated ones).
pub(crate) fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// Only JSON bodies: protobuf (which kubectl sends for built-in kinds)
/// gets 415, and client-go then retries in JSON.
fn require_json(content_type: &str) -> Result<(), ApiError> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.is_empty() || essence == "application/json" || essence == "application/yaml" {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json (got {essence:?})"
        ),
    ))
}

fn reject_dry_run(query: &HashMap<String, String>) -> Result<(), ApiError> {
    match query.get("dryRun") {
        Some(_) => Err(ApiError::bad_request("dryRun is not supported by the fake API server")),
        None => Ok(()),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))
}

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let body = BoxBody::new(Full::new(Bytes::from(bytes)).map_err(|never| match never {}));
    let mut response = Response::new(body);
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn error(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(g: &str, v: &str, plural: &str, ns: Option<&str>, name: Option<&str>, status: bool) -> Route {
        Route::Resource(Target {
            gvr: Gvr::new(g, v, plural),
            namespace: ns.map(str::to_owned),
            name: name.map(str::to_owned),
            status,
        })
    }

    #[test]
    fn routes() {
        assert_eq!(route("/api/v1/pods"), target("", "v1", "pods", None, None, false));
        assert_eq!(route("/api/v1/namespaces"), target("", "v1", "namespaces", None, None, false));
        assert_eq!(route("/api/v1/namespaces/x"), target("", "v1", "namespaces", None, Some("x"), false));
        assert_eq!(route("/api/v1/namespaces/x/status"), target("", "v1", "namespaces", None, Some("x"), true));
        assert_eq!(route("/api/v1/namespaces/x/pods/p/status"), target("", "v1", "pods", Some("x"), Some("p"), true));
        assert_eq!(
            route("/apis/meshc.io/v1alpha1/meshbundles/b"),
            target("meshc.io", "v1alpha1", "meshbundles", None, Some("b"), false)
        );
        assert_eq!(route("/apis/meshc.io/v1alpha1"), Route::ResourceList("meshc.io".into(), "v1alpha1".into()));
        assert_eq!(route("/api/v1/namespaces/x/pods/p/log"), Route::Unknown);
        assert_eq!(route("/openapi/v2"), Route::Unknown);
    }
}
