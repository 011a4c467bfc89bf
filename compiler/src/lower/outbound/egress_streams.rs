//! TLSRoutes and TCPRoutes with an EgressNetwork parent, converted for
//! client proxies as Linkerd's controller does
//! (`policy-controller/grpc/src/outbound/{tls,tcp}.rs`, `convert_outbound_route`
//! and `convert_backend`): the SNI names, and the one rule's backends (the
//! parent EgressNetwork: forward to the original destination; a Service:
//! redirect; anything else: an invalid backend, which closes the connection).

use super::egress::{BackendParts, Ctx, Lowered};
use crate::findings::{Code, Finding};
use crate::model::stream_route::{StreamBackendRef, StreamRoute};
use crate::resolve::routes::{hostnames, meta};
use mesh_proxy_api::outbound::egress::{EgressBackend, EgressTarget, EgressTcpRoute, EgressTlsRoute};

impl Ctx<'_> {
    /// Admission guarantees exactly one rule with at least one backendRef.
    pub(super) fn convert_stream(&self, route: StreamRoute<'_>, findings: &mut Vec<Finding>) -> Lowered {
        let refs: &[StreamBackendRef] = route.rules().first().map_or(&[], |rule| &rule.backend_refs);
        let mut backends: Vec<EgressBackend> =
            refs.iter().enumerate().map(|(j, b)| self.stream_backend(j, b, findings)).collect();
        if backends.is_empty() {
            // The default backend: the EgressNetwork, i.e. the original destination.
            backends.push(EgressBackend { target: EgressTarget::Original, weight: 1 });
        }
        match route {
            StreamRoute::Tls(t) => {
                Lowered::Tls(EgressTlsRoute { meta: meta(self.r), snis: hostnames(&t.hostnames), backends })
            }
            StreamRoute::Tcp(_) => Lowered::Tcp(EgressTcpRoute { meta: meta(self.r), backends }),
        }
    }

    fn stream_backend(&self, j: usize, b: &StreamBackendRef, findings: &mut Vec<Finding>) -> EgressBackend {
        let weight = b.weight.map_or(1, |w| u32::try_from(w).unwrap_or(0));
        let parts = BackendParts {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            name: &b.name,
            namespace: b.namespace.as_deref(),
            port: b.port,
        };
        let target = self.target(&parts).unwrap_or_else(|(field, reason, missing)| {
            let at = self.r.span_at(&["spec", "rules", "0", "backendRefs", &j.to_string(), field]);
            let msg = format!("{} backend {}: {reason}; connections routed to it are closed", self.r.id, b.name);
            findings.push(Finding::new(Code::BackendUnresolved, at, msg).resource(self.r.id.clone()).referent(missing));
            EgressTarget::Invalid { reason }
        });
        EgressBackend { target, weight }
    }
}
