//! An in-process fake Kubernetes API server for tests.
//!
//! A real kube-apiserver now runs in the `..._real_apiserver_...` tests
//! (`mesh_test_support::apiserver`); this fake stays for what a real server
//! cannot be made to do: injected faults (500s, 403s, dropped watches,
//! compaction on demand), tokens it would never issue (already expired),
//! request counts, and the tests not yet ported.
//!
//! # Tests that still need it, and why
//!
//! Every other Kubernetes-mode test of mesh-runtime runs one body on both
//! servers (a `..._real_apiserver_...` twin next to the fake's test).
//!
//! - `runtime/tests/kube_lease.rs`,
//!   `a_leader_that_cannot_renew_steps_down_before_its_lease_lapses`:
//!   renewals answered with injected 500s.
//! - `runtime/tests/kube_token_review.rs`: `an_expired_token_is_reported_as_expired`
//!   (a real server issues no token shorter than 10 minutes),
//!   `api_failures_make_the_review_unavailable_not_a_refusal` (injected 500
//!   and 403), `an_unreachable_api_server_makes_the_review_unavailable` (the
//!   server dropped mid-test), and the request count of
//!   `a_live_token_for_our_audience_names_its_service_account`.
//! - `runtime/tests/kube_endpoints.rs`: `synced_waits_for_all_three_lists`
//!   (failed lists injected) and `an_empty_cluster_syncs_and_the_hub_stays_empty`
//!   (it counts the lists; a real server is never empty, it serves the
//!   `kubernetes` Service and its EndpointSlice). The relist test's
//!   compaction runs on the fake only (etcd compacts on its own schedule);
//!   the rest of that test runs on both.
//! - `runtime/tests/api/kube.rs`: the count of status patches in the
//!   serve-and-Ready test (on a real server the test compares
//!   resourceVersions instead, which misses a write that changes nothing).
//! - `runtime/tests/deploy.rs`: its RBAC checks with the runtime's
//!   ServiceAccount token; the real authorizer judges the same rules in
//!   `deploy_rbac_real_apiserver.rs`.
//! - `tests/e2e`: the booksapp mesh and the update/tampering/restart/token
//!   checks through Kubernetes mode run on both servers
//!   (`..._real_apiserver_...` twins; `tests/e2e/tests/e2e/cluster.rs` picks
//!   the server). The fake alone holds the already-expired token that the
//!   token check also offers, and only its request log shows that no request
//!   of the runtime was refused; on the real server the test reads the Ready
//!   condition the runtime wrote on every ProxyConfig under its
//!   ServiceAccount's RBAC instead.
//! - `fake-apiserver`'s own tests (`runtime/fake-apiserver/tests/`), which
//!   test the fake itself, and `bench_runtime --modes kube` (the benchmark's
//!   in-process figure; `--modes kube-real` is the real server's).
//!
//! It listens on plain HTTP on `127.0.0.1:<random port>`; a real
//! `kube::Client` ([`FakeApiServer::client`]) and the real `kubectl`
//! (through [`FakeApiServer::kubeconfig`]) both drive it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fake_apiserver::{FakeApiServer, Gvr, Verb};
//! let server = FakeApiServer::start().await?;
//! let client = server.client()?;
//! server.store().create_object(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "keys", "namespace": "mesh-system"},
//!     "data": {"k": "v"},
//! }))?;
//! server.store().compact(); // watchers get 410 Gone and relist
//! server.faults().fail_next(Verb::Watch, 2, http::StatusCode::INTERNAL_SERVER_ERROR);
//! # let _ = (client, Gvr::core("pods")); Ok(()) }
//! ```
//!
//! # What it serves
//!
//! - Discovery: `/version` (claims v1.33), `/api`, `/api/v1`, `/apis`,
//!   `/apis/<group>`, `/apis/<group>/<version>` with kinds, verbs,
//!   namespaced flags, short names and `<plural>/status` entries.
//! - For every registered type ([`Resources::standard`] or your own):
//!   get, list, watch, create, update (PUT), patch, delete,
//!   deletecollection, and get/update/patch of `/status`.
//! - One resourceVersion counter across all types; `metadata.uid`,
//!   `creationTimestamp` and `generation` (bumped when anything but
//!   metadata and status changes) filled as the real server does; no-op
//!   writes change nothing and send no event.
//! - list: `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`),
//!   `fieldSelector` on `metadata.name` and `metadata.namespace`; the list's
//!   `metadata.resourceVersion` is the store's.
//! - watch: `resourceVersion=N` replays every change after N; absent or "0"
//!   starts with a synthetic ADDED per object; an object entering or
//!   leaving the selector is ADDED or DELETED; `allowWatchBookmarks` sends a
//!   BOOKMARK every [`Options::bookmark_interval`] and one just before
//!   `timeoutSeconds` ends the stream; `sendInitialEvents=true` ends the
//!   initial events with a bookmark annotated `k8s.io/initial-events-end`.
//!   A watch from a resourceVersion older than the last [`Store::compact`]
//!   gets HTTP 200 with one `ERROR` event carrying a Status with code 410
//!   (reason Expired), then the stream ends — as the real server does, and
//!   as kube-runtime's watcher needs to relist.
//! - Optimistic concurrency: a PUT, PATCH or delete precondition with a
//!   resourceVersion other than the live one gets 409 Conflict; create of
//!   an existing name gets 409 AlreadyExists.
//! - Status subresource (types registered `with_status()`): the main
//!   resource keeps `.status` as it was, `/status` changes only `.status`,
//!   and create drops `.status` (as for a CRD with the status subresource).
//! - Patch content types: `application/merge-patch+json` (RFC 7386),
//!   `application/json-patch+json` (RFC 6902),
//!   `application/strategic-merge-patch+json` and
//!   `application/apply-patch+yaml` (see the differences below). kubectl's
//!   client-side `apply` (merge patch for custom resources, strategic merge
//!   for built-in kinds) and `apply --server-side` both work.
//! - TokenReview (`authentication.k8s.io/v1`, create only): answered from
//!   the tokens registered with [`Tokens::insert`]; a live token gives
//!   `authenticated: true` with user `system:serviceaccount:<ns>:<sa>` and
//!   the groups the real server adds; unknown, revoked, expired or
//!   wrong-audience tokens give `authenticated: false` and an `error`.
//! - kubectl (checked with v1.32 in tests/kubectl.rs): `apply -f` (client-
//!   side, and `--server-side`), `create -f`, `get` (`-A`, `-l`, `-o
//!   json|name|jsonpath`, `--watch --output-watch-events`), `label`,
//!   `patch --type=json|merge|strategic`, `delete` (which waits for the
//!   object to be gone).
//! - RBAC, opt in ([`FakeApiServer::authorizer`], [`Authorizer::load`]):
//!   a request with `Authorization: Bearer <token>`, the token registered
//!   with [`Tokens::insert`] for the API server's default audience (no
//!   audiences), is authorized as `system:serviceaccount:<ns>:<sa>` (with
//!   the groups `system:serviceaccounts`, `system:serviceaccounts:<ns>`,
//!   `system:authenticated`) by the loaded Role, ClusterRole, RoleBinding
//!   and ClusterRoleBinding objects as Kubernetes' RBAC authorizer does:
//!   apiGroups, resources with subresources (`proxyconfigs/status`,
//!   `*/status`), verbs, `*`, resourceNames (matching get, update, patch
//!   and delete by name, and list and watch whose fieldSelector requires
//!   `metadata.name=<name>`, as the real RequestInfo derives the name;
//!   never create or deletecollection), Roles and ClusterRoles bound by a
//!   RoleBinding only in its namespace, ClusterRoles bound by a
//!   ClusterRoleBinding everywhere. Denied: 403 with the real server's
//!   Forbidden message; unknown, revoked, expired or other-audience
//!   tokens: 401. Discovery and OpenAPI are open to any valid token (as
//!   `system:discovery` grants). Requests without a bearer token are
//!   never restricted, so the test's own [`FakeApiServer::client`] and
//!   kubectl keep full access; [`FakeApiServer::client_with_token`]
//!   presents a token. kubectl cannot: client-go sends a kubeconfig's
//!   credentials only over TLS, and this server has none.
//! - Test controls: [`Faults`] counts requests per verb and resource, keeps a
//!   request log and fails the next N requests of a verb with a chosen
//!   status; [`Store::drop_watches`] ends every live watch stream.
//!
//! # Where it differs from a real API server
//!
//! - No TLS (plain HTTP on loopback), no client certificates, and
//!   authentication only by registered bearer tokens. Without
//!   [`Authorizer::load`] every request is allowed. RBAC objects are
//!   loaded by the test, not served as API resources (kubectl cannot
//!   create them here); no aggregated ClusterRoles, no escalation or
//!   bind checks, no nonResourceURLs rules, no default roles except the
//!   discovery access every token has, and `impersonate`, `proxy` and
//!   selector-based authorization (AuthorizeWithSelectors) do not exist.
//! - No schemas and no validation beyond names, namespaces, apiVersion and
//!   kind: unknown fields are stored and `fieldValidation` is ignored.
//!   `/openapi/v3` serves, per group/version, only each kind's PATCH
//!   operation declaring the `fieldValidation` parameter: that is what
//!   kubectl reads to leave validation to the server (without it kubectl
//!   refuses to apply unless `--validate=false`), so kubectl validates
//!   nothing and neither does the fake. `/openapi/v2` is 404. No
//!   defaulting, no admission, no immutable fields.
//! - JSON only, never protobuf: request bodies in protobuf get 415. kubectl
//!   sends protobuf for its imperative generators of built-in kinds
//!   (`kubectl create namespace|serviceaccount|secret …`), so those fail;
//!   `kubectl create -f`/`apply -f`, `label`, `annotate`, `patch`, `get`,
//!   `delete` send JSON and work.
//! - `metadata.generation` follows the CRD rule for every type (starts at
//!   1, bumped when anything but metadata and status changes); real
//!   built-in kinds vary (a ConfigMap has no generation at all). Status
//!   subresources exist only where registered (`with_status()`).
//! - Namespaces need not exist for objects to be created in them, and
//!   deleting a Namespace does not delete its objects.
//! - Deletion is immediate: finalizers, `deletionTimestamp`, grace periods,
//!   propagation policies and garbage collection (ownerReferences) are not
//!   implemented.
//! - Server-side apply is approximated: the applied object is merged over
//!   the live one as a JSON merge patch (fields left out of the applied
//!   configuration are not removed), `managedFields` is not kept, conflicts
//!   between field managers are never reported, and the body must be JSON.
//!   Strategic merge patch is a JSON merge patch with `$` directives
//!   dropped: lists are replaced whole instead of merged by key.
//! - list ignores `limit` and `continue` (the API allows a server to return
//!   everything at once) and `resourceVersionMatch`; it always returns the
//!   latest state. `dryRun` is refused with 400 rather than ignored.
//! - Only `metadata.name` and `metadata.namespace` field selectors.
//! - Discovery is the legacy (unaggregated) form only; server-side printing
//!   (`as=Table`) is not offered, so `kubectl get` prints columns itself
//!   (NAME and AGE for custom resources; no printer columns from CRDs).
//! - History: the last [`Options::history_limit`] changes are kept for
//!   watches to replay (older → 410, like the watch cache window).
//!   [`Store::compact`] is explicit and total: it forgets all history,
//!   advances the resourceVersion by one and ends live watches, so that
//!   every client must relist. A real server compacts on a timer and keeps
//!   live watches open.
//! - Watch without `timeoutSeconds` lasts 30 minutes; the real server picks
//!   30–60 minutes. Bookmarks come at a fixed interval (default 1 s), far
//!   more often than the real server's ~1 minute, so tests see them.
//! - TokenReview tokens are opaque strings registered by the test, not JWTs;
//!   `user.uid` is not reported.

mod discovery;
mod error;
mod faults;
mod patch;
mod rbac;
mod resource;
mod select;
mod server;
mod store;
mod tokens;
mod watch;

pub use error::ApiError;
pub use faults::{Faults, Logged, Verb};
pub use patch::PatchKind;
pub use rbac::{Attributes, Authorizer};
pub use resource::{Behaviour, Gvr, MESHC_GROUP, MESHC_VERSION, ResourceType, Resources};
pub use select::Selector;
pub use store::{Change, ChangeKind, Part, Store};
pub use tokens::{TokenInfo, Tokens};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use server::App;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Options {
    pub resources: Resources,
    /// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How many changes watches can replay (default 100,000); a watch from
    /// an older resourceVersion gets 410 Gone, as from the real server's
    /// watch cache.
    pub history_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { resources: Resources::standard(), bookmark_interval: Duration::from_secs(1), history_limit: 100_000 }
    }
}

/// A running fake API server; it stops when dropped.
pub struct FakeApiServer {
    app: Arc<App>,
    shutdown: signal::Sender<bool>,
}

impl FakeApiServer {
    /// Starts with [`Resources::standard`] on a random loopback port.
    pub async fn start() -> io::Result<Self> {
        FakeApiServer::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let app = Arc::new(App {
            store: Store::new(options.resources, options.history_limit),
            tokens: Tokens::default(),
            authorizer: Authorizer::default(),
            faults: Faults::default(),
            addr: listener.local_addr()?,
            bookmark_interval: options.bookmark_interval,
        });
        let (shutdown, stop) = signal::channel(false);
        tokio::spawn(serve(listener, app.clone(), stop));
        Ok(FakeApiServer { app, shutdown })
    }

    pub fn addr(&self) -> SocketAddr {
        self.app.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.app.addr)
    }

    /// A kube client for this server (needs a Tokio runtime).
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        let uri: http::Uri =
            self.url().parse().map_err(|e: http::uri::InvalidUri| kube::Error::Service(Box::new(e)))?;
        kube::Client::try_from(kube::Config::new(uri))
    }

    /// A kube client that presents `token` as its bearer token: with
    /// [`Authorizer::load`] called, its requests are authorized as the
    /// ServiceAccount the token was registered for ([`Tokens::insert`]).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, kube::Error> {
        let uri: http::Uri =
            self.url().parse().map_err(|e: http::uri::InvalidUri| kube::Error::Service(Box::new(e)))?;
        let mut config = kube::Config::new(uri);
        config.auth_info.token = Some(token.to_string().into());
        kube::Client::try_from(config)
    }

    /// Writes a kubeconfig whose current context points at this server,
    /// with `default` as the namespace, for `kubectl --kubeconfig`.
    pub fn kubeconfig(&self, path: &Path) -> io::Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    \
             user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(path, text)
    }

    /// RBAC for bearer-token requests; off until [`Authorizer::load`].
    pub fn authorizer(&self) -> &Authorizer {
        &self.app.authorizer
    }

    pub fn store(&self) -> &Store {
        &self.app.store
    }

    pub fn tokens(&self) -> &Tokens {
        &self.app.tokens
    }

    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.app.store.drop_watches();
        let _ = self.shutdown.send(true);
    }
}

async fn serve(listener: TcpListener, app: Arc<App>, mut stop: signal::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: back off, keep serving.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (app, mut stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(|req| {
                let app = app.clone();
                async move { server::handle(&app, req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                // A broken connection concerns only its client.
                _ = conn.as_mut() => {}
                _ = stop.changed() => {}
            }
        });
    }
}
