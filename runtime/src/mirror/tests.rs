use super::*;

const GATEWAY_ID: &str = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local";
const EMOJI_ID: &str = "emoji.emojivoto.serviceaccount.identity.linkerd.cluster.local";

/// east's view of west: emoji-svc through the gateway, voting-svc pod-to-pod.
fn links_json(remote: &str) -> String {
    format!(
        r#"{{"links": [{{
          "targetCluster": "west",
          "gateway": {{"addresses": ["10.99.0.20", "10.99.0.21"], "port": 4143, "identity": "{GATEWAY_ID}"}},
          {remote}
          "services": [
            {{"namespace": "emojivoto", "name": "emoji-svc", "mode": "gateway", "ports": [8080, 8801], "clusterIP": "10.96.5.1"}},
            {{"namespace": "emojivoto", "name": "voting-svc", "mode": "remote-discovery", "ports": [8080]}}
          ]}}]}}"#
    )
}

fn key(name: &str, port: u16) -> ServiceKey {
    ServiceKey { namespace: "emojivoto".into(), name: name.into(), port }
}

fn eps(list: &[(&str, Option<&str>)]) -> Endpoints {
    Arc::new(
        list.iter().map(|(a, id)| Endpoint { addr: a.parse().unwrap(), identity: id.map(str::to_owned) }).collect(),
    )
}

const RUNTIME_REMOTE: &str = r#""remote": {"runtime": "https://10.99.0.1:8443", "runtimeIdentity": "mesh-runtime.mesh-system.serviceaccount.identity.linkerd.cluster.local"},"#;

#[test]
fn a_links_file_parses_into_links() {
    let links = parse(links_json(RUNTIME_REMOTE).as_bytes()).unwrap();
    let l = &links.links[0];
    assert_eq!(l.target_cluster, "west");
    assert_eq!(l.gateway.as_ref().unwrap().port, 4143);
    assert!(matches!(&l.remote, Some(Remote::Runtime { url, .. }) if url == "https://10.99.0.1:8443"));
    assert_eq!(l.services[0].mode, Mode::Gateway);
    assert_eq!(l.services[1].mode, Mode::RemoteDiscovery);
    assert_eq!(l.services[0].mirror_name("west"), "emoji-svc-west");
    assert_eq!(l.remote_keys().len(), 3);
}

#[test]
fn bad_links_files_say_what_is_wrong() {
    let cases = [
        (links_json(""), "pod-to-pod needs the link's remote endpoints source"),
        (links_json(r#""remote": {"runtime": "http://x:1", "runtimeIdentity": "a.b"},"#), "expected https://host:port"),
        (links_json(r#""remote": {"runtime": "https://x:1"},"#), "either `runtime` with `runtimeIdentity`"),
        (
            links_json(r#""remote": {"endpointsFile": "/e.json", "runtime": "https://x:1", "runtimeIdentity": "a"},"#),
            "either",
        ),
        (links_json(RUNTIME_REMOTE).replace("\"gateway\", \"ports\"", "\"mirror\", \"ports\""), "mode `mirror`"),
        (links_json(RUNTIME_REMOTE).replace("[8080, 8801]", "[]"), "needs its ports"),
        (links_json(RUNTIME_REMOTE).replace("\"west\"", "\"West\""), "DNS label"),
        (links_json(RUNTIME_REMOTE).replace("\"port\": 4143, ", ""), "missing field `port`"),
        (links_json(RUNTIME_REMOTE).replace("\"emoji-svc\"", &format!("\"{}\"", "e".repeat(60))), "over 63"),
        (links_json(RUNTIME_REMOTE).replace("voting-svc", "emoji-svc"), "mirrored twice"),
        ("{\"links\": 3}".to_owned(), "invalid type"),
    ];
    for (text, want) in cases {
        let err = parse(text.as_bytes()).unwrap_err();
        assert!(err.contains(want), "{want}: got {err}");
    }
    let no_gateway = links_json(RUNTIME_REMOTE).replace(
        &format!(
            r#""gateway": {{"addresses": ["10.99.0.20", "10.99.0.21"], "port": 4143, "identity": "{GATEWAY_ID}"}},"#
        ),
        "",
    );
    assert!(parse(no_gateway.as_bytes()).unwrap_err().contains("gateway mode needs the link's gateway"));
}

/// Without a remote source, gateway mode serves the gateway at once; pod-to-pod needs one (refused above).
#[test]
fn gateway_mode_without_a_remote_serves_the_gateway_on_every_port() {
    let links = parse(links_json(r#""remote": {"endpointsFile": "/nowhere"},"#).as_bytes()).unwrap();
    let m = mirrored(&links, &[None]);
    let gw = eps(&[("10.99.0.20:4143", Some(GATEWAY_ID)), ("10.99.0.21:4143", Some(GATEWAY_ID))]);
    assert_eq!(m.endpoints[&key("emoji-svc-west", 8080)], gw);
    assert_eq!(m.endpoints[&key("emoji-svc-west", 8801)], gw, "every port goes to the gateway's port");
    assert_eq!(m.cluster_ips[&"10.96.5.1:8080".parse().unwrap()], key("emoji-svc-west", 8080));
    assert!(m.endpoints[&key("voting-svc-west", 8080)].is_empty());
}

/// With a remote source: the gateway only while the target Service has
/// endpoints; pod-to-pod the remote pods themselves, with their identities.
#[test]
fn the_remote_clusters_endpoints_decide_both_modes() {
    let links = parse(links_json(RUNTIME_REMOTE).as_bytes()).unwrap();
    let nothing_heard = mirrored(&links, &[Some(RemoteEndpoints::new())]);
    assert!(nothing_heard.endpoints[&key("emoji-svc-west", 8080)].is_empty(), "no gateway before the target answers");
    assert!(nothing_heard.endpoints[&key("voting-svc-west", 8080)].is_empty());
    let no_emoji = RemoteEndpoints::from([(key("emoji-svc", 8080), eps(&[])), (key("emoji-svc", 8801), eps(&[]))]);
    let m = mirrored(&links, &[Some(no_emoji)]);
    assert!(m.endpoints[&key("emoji-svc-west", 8080)].is_empty(), "no endpoints on any port: no gateway");

    let voting = eps(&[("10.20.0.7:8080", Some("voting.emojivoto.serviceaccount.identity.linkerd.cluster.local"))]);
    let remote = RemoteEndpoints::from([
        (key("emoji-svc", 8080), eps(&[("10.20.0.5:8080", Some(EMOJI_ID))])),
        (key("emoji-svc", 8801), eps(&[])),
        (key("voting-svc", 8080), voting.clone()),
    ]);
    let m = mirrored(&links, &[Some(remote)]);
    let gw = &m.endpoints[&key("emoji-svc-west", 8080)];
    assert_eq!(gw.iter().map(|e| e.addr.to_string()).collect::<Vec<_>>(), ["10.99.0.20:4143", "10.99.0.21:4143"]);
    assert!(gw.iter().all(|e| e.identity.as_deref() == Some(GATEWAY_ID)), "the gateway's identity, not emoji's");
    assert_eq!(m.endpoints[&key("emoji-svc-west", 8801)], *gw, "one port with endpoints makes the Service not empty");
    assert!(Arc::ptr_eq(&m.endpoints[&key("voting-svc-west", 8080)], &voting), "the remote pods as they are");
}
