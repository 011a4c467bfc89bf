//! The API server a Kubernetes-mode test runs against: the in-process fake
//! (which can inject faults) or a real kube-apiserver (the harness of
//! `mesh_test_support::apiserver`, for the tests named `..._real_apiserver_...`):
//! the process's shared one, or one of the test's own where the runtime
//! watches cluster-wide objects another test must not see. A test written
//! against [`Server`] runs on both.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use mesh_test_support::apiserver::RealApiServer;
use std::sync::atomic::{AtomicU32, Ordering};

pub enum Server {
    Fake(FakeApiServer),
    Real(&'static RealApiServer),
    /// A real server this test alone uses; it stops when the test drops it.
    OwnReal(RealApiServer),
}

impl Server {
    pub async fn fake() -> Server {
        Server::Fake(FakeApiServer::start().await.expect("the fake API server starts"))
    }

    /// The process's real API server; `None` after the loud skip when `go`
    /// is missing outside CI.
    pub fn real(test: &str) -> Option<Server> {
        RealApiServer::shared(test).map(Server::Real)
    }

    /// A real server of the test's own (a fresh store: no other test's
    /// ProxyConfigs or MeshBundle); `None` after the loud skip when `go` is
    /// missing outside CI.
    pub fn own_real(test: &str) -> Option<Server> {
        RealApiServer::start(test).map(Server::OwnReal)
    }

    pub async fn client(&self) -> kube::Client {
        match self {
            Server::Fake(server) => server.client().expect("a client for the fake API server"),
            Server::Real(server) => server.client().await,
            Server::OwnReal(server) => server.client().await,
        }
    }

    /// The real server, if this is one.
    pub fn real_server(&self) -> Option<&RealApiServer> {
        match self {
            Server::Fake(_) => None,
            Server::Real(server) => Some(server),
            Server::OwnReal(server) => Some(server),
        }
    }

    /// The fake, if this is it: the tests that inject faults need it.
    pub fn fake_server(&self) -> Option<&FakeApiServer> {
        match self {
            Server::Fake(server) => Some(server),
            Server::Real(_) | Server::OwnReal(_) => None,
        }
    }

    /// A namespace for the calling test alone. The fake's store is the test's
    /// own and needs no Namespace object; the real server is shared by every
    /// test of the process and refuses objects in a namespace that does not
    /// exist, so a fresh one is created there. A server of the test's own
    /// gets the namespace `base` itself.
    pub async fn namespace(&self, base: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = match self {
            Server::Fake(_) => return base.to_owned(),
            Server::Real(_) => format!("{base}-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
            Server::OwnReal(_) => base.to_owned(),
        };
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns =
            Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        api.create(&PostParams::default(), &ns).await.unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        name
    }
}
