//! Server findings: policy that the proxy cannot enforce.

use crate::findings::{Code, Finding};
use crate::resolve::{Resolved, ports};
use std::collections::BTreeMap;

pub fn check(r: &Resolved, findings: &mut Vec<Finding>) {
    on_unmeshed(r, findings);
    skipped_ports(r, findings);
}

fn on_unmeshed(r: &Resolved, findings: &mut Vec<Finding>) {
    let mut selected: Vec<(&usize, &Vec<usize>)> = r.bindings.selected.iter().collect();
    selected.sort();
    for (&s, workloads) in selected {
        let unmeshed: Vec<_> = workloads.iter().map(|&wi| &r.workloads[wi]).filter(|w| !w.is_meshed()).collect();
        let Some(first) = unmeshed.first() else {
            continue;
        };
        let server = &r.resources[s];
        let names: Vec<String> = unmeshed.iter().map(|w| format!("{} {}", w.kind, w.name)).collect();
        let why = first.meshed.as_ref().err().cloned().unwrap_or_default();
        let msg = format!(
            "Server {} selects {} without a Linkerd proxy ({} is not meshed: {why}); nothing is enforced there and every client is allowed",
            server.name(),
            names.join(", "),
            names[0]
        );
        let f = Finding::new(Code::PolicyOnUnmeshed, server.span_at(&["spec", "podSelector"]), msg)
            .resource(server.id.clone());
        findings.push(f.hint("enable injection (`linkerd.io/inject: enabled`) on the namespace or pod template"));
    }
}

fn skipped_ports(r: &Resolved, findings: &mut Vec<Finding>) {
    let mut by_server: BTreeMap<(usize, u16), Vec<&str>> = BTreeMap::new();
    for (wi, bound) in r.bindings.ports.iter().enumerate() {
        let w = &r.workloads[wi];
        if !w.is_meshed() {
            continue;
        }
        for (&port, &s) in bound {
            if ports::contains(&w.skip_inbound_ports, port) {
                by_server.entry((s, port)).or_default().push(&w.name);
            }
        }
    }
    for ((s, port), names) in by_server {
        let server = &r.resources[s];
        let msg = format!(
            "port {port} of {} is in config.linkerd.io/skip-inbound-ports: its traffic bypasses the proxy, so Server {} and its authorizations (and mTLS) do not apply",
            names.join(", "),
            server.name()
        );
        let f = Finding::new(Code::SkipPortBypassesPolicy, server.span_at(&["spec", "port"]), msg)
            .resource(server.id.clone());
        findings.push(f.hint("remove the port from skip-inbound-ports, or accept that it is unprotected"));
    }
}
