//! The published JSON Schema describes the config we serialize.

use mesh_proxy_api::*;

#[test]
fn schema_names_the_top_level_fields() {
    let schema = serde_json::to_value(proxy_config_schema()).unwrap();
    assert_eq!(schema["title"], "ProxyConfig");
    for field in ["apiVersion", "workload", "identity", "inbound"] {
        assert!(schema["properties"].get(field).is_some(), "{field}");
    }
}

#[test]
fn requests_and_clients_round_trip_through_json() {
    let client =
        Client::identified("10.0.0.1".parse().unwrap(), "web.ns.serviceaccount.identity.linkerd.cluster.local");
    let json = serde_json::to_string(&client).unwrap();
    assert_eq!(serde_json::from_str::<Client>(&json).unwrap(), client);
    let req = HttpRequest::get("/a?b=c").with_host("web:80").with_header("x", "y");
    let json = serde_json::to_string(&req).unwrap();
    assert_eq!(serde_json::from_str::<HttpRequest>(&json).unwrap(), req);
}
