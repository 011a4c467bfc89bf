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
    assert_eq!(links.remote_keys(0).len(), 3);
    assert!(links.federated.is_empty(), "`federated` is optional");
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

/// `links_json` with a top-level `federated` list.
fn with_federated(remote: &str, federated: &str) -> String {
    let links = links_json(remote);
    let body = links.trim_end().strip_suffix('}').unwrap();
    format!("{body}, \"federated\": [{federated}]}}")
}

const EMOJI_FEDERATED: &str = r#"{"namespace": "emojivoto", "name": "emoji-svc", "ports": [8080], "clusterIP": "10.96.5.9", "localMember": true, "remoteMembers": ["west"]}"#;

#[test]
fn federated_services_parse_with_their_members() {
    let links = parse(with_federated(RUNTIME_REMOTE, EMOJI_FEDERATED).as_bytes()).unwrap();
    let f = &links.federated[0];
    assert_eq!((f.federated_name().as_str(), f.local_member), ("emoji-svc-federated", true));
    assert_eq!(f.remote_members, ["west"]);
    // west's emoji-svc 8080 is needed once, though both exported and federated.
    assert_eq!(links.remote_keys(0).len(), 3);
    let voting = r#"{"namespace": "emojivoto", "name": "web-svc", "ports": [80], "remoteMembers": ["west"]}"#;
    let links = parse(with_federated(RUNTIME_REMOTE, voting).as_bytes()).unwrap();
    assert!(links.remote_keys(0).contains(&key("web-svc", 80)), "a federated member's ports are polled");
}

#[test]
fn bad_federated_services_say_what_is_wrong() {
    let f = |json: &str| with_federated(RUNTIME_REMOTE, json);
    let cases = [
        (
            f(&EMOJI_FEDERATED.replace(r#"["west"]"#, r#"["north"]"#)),
            "remote member `north` is no link's targetCluster",
        ),
        (f(&EMOJI_FEDERATED.replace(r#"["west"]"#, r#"["west", "west"]"#)), "remote member `west` is listed twice"),
        (
            f(&EMOJI_FEDERATED.replace(r#""localMember": true, "remoteMembers": ["west"]"#, r#""localMember": false"#)),
            "no members",
        ),
        (f(&EMOJI_FEDERATED.replace("[8080]", "[0]")), "federated Service emojivoto/emoji-svc: needs its ports"),
        (f(&EMOJI_FEDERATED.replace("\"emoji-svc\"", "\"Emoji\"")), "DNS labels"),
        (f(&EMOJI_FEDERATED.replace("\"emoji-svc\"", &format!("\"{}\"", "e".repeat(60)))), "over 63"),
        (f(&EMOJI_FEDERATED.replace("localMember", "local")), "unknown field `local`"),
        (f(&format!("{EMOJI_FEDERATED}, {EMOJI_FEDERATED}")), "emojivoto/emoji-svc-federated: mirrored twice"),
        (
            with_federated(r#""remote": {"endpointsFile": "/e.json"},"#, EMOJI_FEDERATED)
                .replace(r#""mode": "remote-discovery""#, r#""mode": "federated""#),
            "listed in the top-level `federated`",
        ),
    ];
    for (text, want) in cases {
        let err = parse(text.as_bytes()).unwrap_err();
        assert!(err.contains(want), "{want}: got {err}");
    }
    // A member link without a remote source: nothing to hear its pods from.
    let no_remote = links_json("").replace(r#""mode": "remote-discovery""#, r#""mode": "gateway""#);
    let body = no_remote.trim_end().strip_suffix('}').unwrap();
    let err = parse(format!("{body}, \"federated\": [{EMOJI_FEDERATED}]}}").as_bytes()).unwrap_err();
    assert!(err.contains("needs that link's `remote`"), "{err}");
}

/// The union of the members, pod to pod: the linked members' pods now, the
/// local member's through the hub; a member that has not answered adds nothing.
#[test]
fn a_federated_service_is_backed_by_every_member() {
    let links = parse(with_federated(RUNTIME_REMOTE, EMOJI_FEDERATED).as_bytes()).unwrap();
    let fed = key("emoji-svc-federated", 8080);
    let m = mirrored(&links, &[Some(RemoteEndpoints::new())]);
    assert!(m.endpoints[&fed].is_empty(), "west has not answered");
    assert_eq!(m.local_members[&fed], key("emoji-svc", 8080), "the local emoji-svc joins in the hub");
    assert_eq!(m.cluster_ips[&"10.96.5.9:8080".parse().unwrap()], fed);

    let west = eps(&[("10.20.0.5:8080", Some(EMOJI_ID))]);
    let m = mirrored(&links, &[Some(RemoteEndpoints::from([(key("emoji-svc", 8080), west.clone())]))]);
    assert_eq!(m.endpoints[&fed], west, "west's pod itself, not the gateway");
    assert!(m.endpoints[&key("emoji-svc-west", 8080)].iter().all(|e| e.identity.as_deref() == Some(GATEWAY_ID)));

    let remote_only = EMOJI_FEDERATED.replace(r#""localMember": true, "#, "");
    let links = parse(with_federated(RUNTIME_REMOTE, &remote_only).as_bytes()).unwrap();
    assert!(mirrored(&links, &[None]).local_members.is_empty());
}

#[test]
fn a_union_lists_each_endpoint_once_in_member_order() {
    let (a, b) = (eps(&[("10.10.0.5:8080", None), ("10.20.0.5:8080", None)]), eps(&[("10.20.0.5:8080", None)]));
    let c = eps(&[("10.30.0.5:8080", Some(EMOJI_ID))]);
    let all = union(vec![&a, &b, &c]);
    let addrs: Vec<String> = all.iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(addrs, ["10.10.0.5:8080", "10.20.0.5:8080", "10.30.0.5:8080"]);
    assert!(Arc::ptr_eq(&union(vec![&c]), &c), "one list is kept as it is");
    assert!(union(Vec::new()).is_empty());
}
