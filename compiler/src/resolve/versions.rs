//! What the cluster's Linkerd release does not serve (docs/semantics/versions.md):
//! an object of a policy or route kind its policy controller does not
//! watch has no effect, so it is reported and left out before decoding,
//! and a field the release does not read is reported where it is written.

use crate::findings::{Code, Finding, ResourceId};
use crate::load::RawObject;
use crate::load::objects::span_of;
use crate::load::yaml::{Node, Value};
use crate::settings::version::{Feature, LinkerdVersion, kind_since};

/// `objects` without those `version` does not serve, with a finding for each.
pub fn unserved(objects: Vec<RawObject>, version: LinkerdVersion, findings: &mut Vec<Finding>) -> Vec<RawObject> {
    let mut kept = Vec::with_capacity(objects.len());
    for o in objects {
        let group = o.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if let Some(since) = kind_since(group, &o.kind).filter(|&since| version.minor < since) {
            let msg = format!(
                "{} ({}) is served since Linkerd 2.{since}; Linkerd {version} ignores it (or the API server rejects it \
                 without the CRD), so meshc leaves it out",
                id_of(&o),
                o.api_version
            );
            let at = o.node.get("kind").map_or_else(|| o.span(), |k| span_of(o.source, k));
            findings.push(Finding::new(Code::UnsupportedByVersion, at, msg).resource(id_of(&o)));
            continue;
        }
        if o.kind == "Service" && o.api_version == "v1" && !version.has(Feature::AppProtocol) {
            app_protocols(&o, version, findings);
        }
        kept.push(o);
    }
    kept
}

/// Values of a Service port's `appProtocol` that Linkerd reads since 2.18
/// (policy-controller `core/src/outbound.rs`, `AppProtocol::from_str`);
/// others mean nothing to Linkerd in any release.
const LINKERD_APP_PROTOCOLS: &[&str] = &["http", "kubernetes.io/h2c", "linkerd.io/tcp", "linkerd.io/opaque"];

fn app_protocols(o: &RawObject, version: LinkerdVersion, findings: &mut Vec<Finding>) {
    let Some(Value::Seq(ports)) = o.node.get("spec").and_then(|s| s.get("ports")).map(|p| &p.value) else {
        return;
    };
    for p in ports {
        let Some(node) = p.get("appProtocol") else { continue };
        let Some(value) = node.as_str().filter(|v| LINKERD_APP_PROTOCOLS.contains(&v.to_ascii_lowercase().as_str()))
        else {
            continue;
        };
        let msg = format!(
            "appProtocol `{value}` on {} is read by Linkerd since 2.{}; Linkerd {version} ignores it, so the port's \
             protocol comes from the opaque-ports list and detection",
            id_of(o),
            Feature::AppProtocol.since()
        );
        let f = Finding::new(Code::UnsupportedByVersion, span_of(o.source, node), msg).resource(id_of(o));
        findings.push(f.hint("use config.linkerd.io/opaque-ports on the Service to mark an opaque port"));
    }
}

fn id_of(o: &RawObject) -> ResourceId {
    let meta = |k: &str| o.node.get("metadata").and_then(|m| m.get(k)).and_then(Node::as_str).map(str::to_owned);
    ResourceId {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        namespace: meta("namespace"),
        name: meta("name").unwrap_or_default(),
    }
}
