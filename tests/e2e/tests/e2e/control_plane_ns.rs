//! One identity format across meshc, mesh-runtime and mesh-proxy when the
//! control plane is not in `linkerd`: booksapp-rest built with
//! `controlPlaneNamespace: mesh-system`, the runtime told the same with its
//! flags, proxies told the same with theirs and given certificates by the
//! runtime. Every status a real (m)TLS client sees must be the one
//! `meshc reach` predicts; clients check each server's certificate against
//! the identity meshc computed, so a runtime or proxy building the name any
//! other way fails the handshake.

use super::clients::Req;
use super::coverage::Checks;
use super::inbound::{self, Mode};
use super::mesh;
use mesh_proxy_api::ClientTls;
use meshc::query::classes::Classes;
use meshc::query::evaluate::Verdict;
use meshc::query::places::Place;
use meshc::query::reach::{self, ClientView};
use std::path::{Path, PathBuf};

const CONTROL_PLANE_NAMESPACE: &str = "mesh-system";

/// Runs the check; returns what was checked, every status as `meshc reach` predicts.
pub async fn booksapp_with_mesh_system_control_plane() -> Checks {
    let tmp = tempfile::tempdir().unwrap();
    let repo = booksapp_in(tmp.path());
    let build = mesh::build_dir(&repo);
    let suffix = format!(".serviceaccount.identity.{CONTROL_PLANE_NAMESPACE}.cluster.local");
    for w in build.outcome.resolved.workloads.iter().filter(|w| w.meshed.is_ok()) {
        assert!(w.identity.ends_with(&suffix), "meshc named {}/{} `{}`", w.namespace, w.name, w.identity);
    }
    let allowed = identified_allows(&build);
    assert!(allowed > 0, "meshc reach allows no mTLS client anywhere: the check would prove nothing about mTLS");
    println!("meshc reach allows {allowed} (identified client, workload, port) GET / requests");
    inbound::check_build(&build, "booksapp-rest (controlPlaneNamespace: mesh-system)", Mode::Runtime).await
}

/// A copy of booksapp-rest whose meshc.yaml names another control plane namespace.
fn booksapp_in(dir: &Path) -> PathBuf {
    let repo = dir.join("booksapp-rest");
    mesh_test_support::copy_tree(&mesh::example("booksapp-rest"), &repo);
    let settings = repo.join("meshc.yaml");
    let text = std::fs::read_to_string(&settings).unwrap();
    let line = "controlPlaneNamespace: linkerd";
    assert!(text.contains(line), "booksapp-rest's meshc.yaml no longer says `{line}`");
    let text = text.replace(line, &format!("controlPlaneNamespace: {CONTROL_PLANE_NAMESPACE}"));
    std::fs::write(&settings, text).unwrap();
    repo
}

/// How many `GET /` requests from identified (mTLS) client classes meshc
/// reach allows, over every meshed workload and port.
fn identified_allows(build: &mesh::Build) -> usize {
    let o = &build.outcome;
    let classes = Classes::derive(&o.resolved, &o.configs);
    let identified = classes.classes.iter().filter(|c| matches!(c.client.tls, ClientTls::Identified(_)));
    let get = Req::get("/").to_api();
    let mut allowed = 0;
    for class in identified {
        for (wi, w) in o.resolved.workloads.iter().enumerate() {
            let Some(config) = &o.configs[wi] else { continue };
            for port in meshc::query::who::target_ports(w, Some(config)) {
                // The representative where it stands, as inbound::check_build sends from it.
                let here = [(Place { addr: class.client.addr, within: Vec::new() }, class.client.clone())];
                let view = ClientView::of_client(class.label.clone(), class.members[0].kind, &here, Some(class.id));
                let predicted = reach::reach(o, view, wi, port, Some(&get));
                allowed += usize::from(predicted.verdicts[0].verdict == Verdict::Allow);
            }
        }
    }
    allowed
}
