//! JSON Schemas meshc publishes in `schemas/`: the settings file, the
//! resources it reads (as it reads them), and the ProxyConfig it emits.

use crate::model::{core, policy, profile, route, stream_route};
use crate::settings::SettingsFile;

fn pretty(schema: &schemars::Schema) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("schemas serialize");
    s.push('\n');
    s
}

/// (file name, contents), sorted by name.
pub fn all() -> Vec<(&'static str, String)> {
    use schemars::schema_for;
    let mut out = vec![
        ("meshc-settings.schema.json", pretty(&schema_for!(SettingsFile))),
        ("proxy-config.schema.json", pretty(&mesh_proxy_api::proxy_config_schema())),
        ("server.spec.schema.json", pretty(&schema_for!(policy::ServerSpec))),
        ("server-authorization.spec.schema.json", pretty(&schema_for!(policy::ServerAuthorizationSpec))),
        ("authorization-policy.spec.schema.json", pretty(&schema_for!(policy::AuthorizationPolicySpec))),
        ("meshtls-authentication.spec.schema.json", pretty(&schema_for!(policy::MeshTlsAuthenticationSpec))),
        ("network-authentication.spec.schema.json", pretty(&schema_for!(policy::NetworkAuthenticationSpec))),
        ("httproute.spec.schema.json", pretty(&schema_for!(route::HttpRouteSpec))),
        ("grpcroute.spec.schema.json", pretty(&schema_for!(route::GrpcRouteSpec))),
        ("tlsroute.spec.schema.json", pretty(&schema_for!(stream_route::TlsRouteSpec))),
        ("tcproute.spec.schema.json", pretty(&schema_for!(stream_route::TcpRouteSpec))),
        ("serviceprofile.spec.schema.json", pretty(&schema_for!(profile::ServiceProfileSpec))),
        ("egressnetwork.spec.schema.json", pretty(&schema_for!(crate::model::egress::EgressNetworkSpec))),
        ("trafficsplit.spec.schema.json", pretty(&schema_for!(crate::model::traffic_split::TrafficSplitSpec))),
        ("httplocalratelimitpolicy.spec.schema.json", pretty(&schema_for!(policy::HttpLocalRateLimitPolicySpec))),
        ("pod-template.schema.json", pretty(&schema_for!(core::PodTemplate))),
        ("service.spec.schema.json", pretty(&schema_for!(core::ServiceSpec))),
        ("meshtest.spec.schema.json", pretty(&schema_for!(crate::meshtest::MeshTestSpec))),
    ];
    out.sort_by_key(|(n, _)| *n);
    out
}
