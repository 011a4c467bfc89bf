//! The catalogue of finding codes: one entry per code, printed by `meshc explain`.
//! Codes are stable: never rename one; add a new code instead.

use super::Severity;
use Severity::*;

pub struct Entry {
    pub code: Code,
    pub severity: Severity,
    pub summary: &'static str,
    /// What happens at runtime and why (Linkerd's behaviour).
    pub explanation: &'static str,
    pub fix: &'static str,
}

macro_rules! catalogue {
    ($( $variant:ident = $code:literal, $sev:expr, $summary:literal, $explanation:literal, $fix:literal; )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            pub fn parse(s: &str) -> Option<Code> {
                match s { $($code => Some(Code::$variant),)* _ => None }
            }

            pub fn entry(self) -> &'static Entry {
                match self {
                    $(Code::$variant => &Entry {
                        code: Code::$variant,
                        severity: $sev,
                        summary: $summary,
                        explanation: $explanation,
                        fix: $fix,
                    }),*
                }
            }
        }
    };
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

catalogue! {
    ParseError = "parse-error", Error,
        "A file is not valid YAML or JSON.",
        "kubectl applies the documents before the broken one and stops; Flux and Argo CD apply nothing from the file. meshc reports where parsing failed and still analyses the other documents of the file (split at `---`) and the rest of the repository, so one typo does not hide every other finding.",
        "Fix the syntax at the reported line (indentation, an unquoted ':' or '#', a tab).";
    SchemaViolation = "schema-violation", Error,
        "A field is unknown, has the wrong type, or a value is not allowed.",
        "The API server rejects an object with a wrong type or invalid value; unknown fields are rejected by kubectl's strict field validation or silently dropped by the server, so the setting you wrote has no effect. When meshc cannot read the object at all it leaves it out of the analysis, as the cluster would.",
        "Check the field name and type against the CRD (`kubectl explain KIND.spec`).";
    SkippedFile = "skipped-file", Info,
        "A file is not a Kubernetes manifest and was not analysed.",
        "Kustomize files, Helm charts, values files and templates are inputs to a renderer, not objects the cluster sees. meshc reads rendered manifests only.",
        "Render first and pipe the result: `helm template . | meshc check -` or `kustomize build . | meshc check -`.";
    RenderFailed = "render-failed", Error,
        "kustomize could not build a kustomization directory, or helm could not render a release's chart, or either did not finish in time.",
        "Flux's kustomize-controller and helm-controller and Argo CD's repo server run the same build and apply nothing from the directory or release when it fails: none of its objects reach the cluster. meshc quotes the tool's message and checks none of those objects (a release's possible objects then make the findings they could change uncertain). A build that runs past the deadline (`--render-timeout`, 60 s by default; a remote base on an unreachable host) is stopped and reported the same way.",
        "Run the quoted command in the repository and fix what it reports (a missing resource, a patch whose target does not exist, a remote base that needs network access, a template error, a values file that is not there).";
    SymlinkOutsideRoot = "symlink-outside-root", Error,
        "A file or directory in the checked directory is a symlink to a path outside it.",
        "meshc does not read or follow it: it runs on untrusted pull requests, and the target could be any file on the machine (a key). Argo CD refuses to render a repository with such a link; `kubectl apply -f` follows it and applies whatever it points to on the machine that runs it. The manifests behind the link are not analysed.",
        "Replace the link by the file it points to, or check the target directory itself.";
    UnresolvedVariable = "unresolved-variable", Info,
        "A Flux `${VAR}` has no value in the repository and no default.",
        "Flux's post-build substitution replaces `${VAR}` by the value from the applying Kustomization's `postBuild.substitute` or `substituteFrom` (ConfigMaps and Secrets), or by the default in `${VAR:=default}`. A variable set outside the repository (a ConfigMap made by the cluster's installer, an OCI source) cannot be known: Flux would substitute an empty string if it were unset. meshc checks the objects without the list entries that use it and with an empty value elsewhere, so what depends on it is not certain.",
        "Set the variable in the Kustomization's `postBuild.substitute` (or a ConfigMap in the repository named in `substituteFrom`), give it a default with `${VAR:=value}`, or ignore this finding if the value is set outside the repository.";
    LinkerdVersion = "linkerd-version", Info,
        "The Linkerd release meshc's version-dependent rules follow, when it comes from the repository's own Linkerd install or cannot be named.",
        "Behaviour changed between Linkerd releases (probe authorization, automountServiceAccountToken, appProtocol, overlapping Servers, the kinds the policy controller serves; see docs/semantics/versions.md). meshc follows `linkerdVersion` from meshc.yaml or `--linkerd-version`; without it, the chart version of a Flux HelmRelease or Argo CD Application of `linkerd-control-plane` in the repository; else the newest release it models. This finding says which it used and from where. Chart versions are not Linkerd versions (chart 1.16.11 is stable-2.14.10); one meshc cannot map is reported at warning and the rules follow the default.",
        "Nothing to fix when the release is the one the cluster runs; otherwise set `linkerdVersion` in meshc.yaml (it wins over the chart version).";
    KustomizationPathMissing = "kustomization-path-missing", Warning,
        "A Flux Kustomization's `spec.path` (or an Argo CD Application's source path) names no directory of the repository.",
        "kustomize-controller fails the Kustomization (\"kustomization path not found\") and applies nothing from it, so none of what it was meant to deploy reaches the cluster. meshc resolves the path against the checked directory as the repository root; a path in another source (an OCIRepository, another GitRepository) cannot be followed.",
        "Fix `spec.path` (relative to the repository root, e.g. `./apps/prod`), or check the repository root rather than a subdirectory.";
    KustomizationCycle = "kustomization-cycle", Warning,
        "Flux Kustomizations (or Argo CD Applications) apply each other in a cycle.",
        "Each Kustomization of the cycle applies a directory that holds the next one, so each is both the owner and the product of the others: pruning or deleting one garbage-collects the others, and their order (`dependsOn`) cannot be satisfied. A Kustomization that applies its own directory (the usual `flux-system`) is not a cycle.",
        "Move the Kustomization objects so that the tree of directories they apply has no loop.";
    DuplicateResource = "duplicate-resource", Warning,
        "The same kind/namespace/name is defined twice.",
        "`kubectl apply -f DIR` applies files in lexical order and documents in file order, so the last definition silently replaces the earlier one. meshc analyses the one that would win.",
        "Delete or rename one of the definitions.";
    InvalidAnnotation = "invalid-annotation", Warning,
        "A Linkerd annotation has a value Linkerd does not accept.",
        "Linkerd logs a warning and ignores an invalid value: an invalid default-inbound-policy falls back to the cluster default, an opaque-ports list with a port name is ignored as a whole, an unknown inject value means the pod is not meshed.",
        "Use one of the values in Linkerd's proxy-configuration reference.";
    UnresolvedReference = "unresolved-reference", Error,
        "A reference names a resource that does not exist.",
        "An AuthorizationPolicy with a dangling requiredAuthenticationRef or identityRef is ignored as a whole: it grants nothing, and the traffic it was meant to allow is denied (403 or closed connection). A policy whose targetRef or a route whose parentRef names a missing Server has no effect at all. Linkerd reports none of this anywhere.",
        "Fix the name (or namespace) so it matches an existing resource.";
    ServerSelectsNothing = "server-selects-nothing", Warning,
        "A Server's podSelector matches no pod in its namespace.",
        "The Server enforces nothing; the pods it was meant for keep their default policy, and policies attached to it grant nothing.",
        "Make the podSelector match the pod template labels (in the Server's namespace).";
    ServerPortUnresolved = "server-port-unresolved", Error,
        "A Server's named port matches no TCP containerPort of the pods it selects.",
        "Linkerd resolves a port name against the pods' containers and init containers; an unknown name selects nothing, so the port keeps the default policy and the Server's authorizations never apply.",
        "Use the containerPort's name (or a port number).";
    ServerConflict = "server-conflict", Warning,
        "Two Servers select the same pod and port.",
        "Linkerd uses the oldest Server (by creationTimestamp, then name) and ignores the other for that port. Offline there are no timestamps, so the first name wins; in a live cluster the older one does.",
        "Narrow one Server's podSelector or port so each port has one Server.";
    RouteNotAccepted = "route-not-accepted", Warning,
        "A route will not be attached to its parent Server.",
        "Linkerd ignores a route whose Server parentRef has a port, sectionName or another namespace, whose parent Server does not exist, which loses to a higher-precedence route kind on the same Server (GRPCRoute over HTTPRoute), which uses an unsupported filter, or whose kind does not fit the Server's protocol. Requests are then handled as if the route did not exist.",
        "Fix the parentRef or the filter the message names.";
    RouteUnauthorized = "route-unauthorized", Warning,
        "A route has no authorization that could allow any request.",
        "Route authorizations are followed by the Server's authorizations; when neither the route nor its Server has any, every request matching the route gets 403 (gRPC PERMISSION_DENIED), except from localhost.",
        "Add an AuthorizationPolicy targeting the route or its Server.";
    ProbeDenied = "probe-denied", Error,
        "A kubelet httpGet probe would be denied by the proxy.",
        "Kubelet probes come from the node, without mTLS. Linkerd authorizes them automatically only on ports without HTTPRoutes; once a route is attached (or a Server's policy excludes unauthenticated clients), a probe path no route matches gets 404 and an unauthorized one 403, and the pod never becomes ready or is restarted.",
        "Add a route for the probe path with an AuthorizationPolicy allowing unauthenticated clients from the probe networks (or the Server's accessPolicy).";
    OverbroadRoute = "overbroad-route", Info,
        "A route rule matches every request on its Server.",
        "A PathPrefix `/` rule without method or header constraints captures all requests: policy attached to it is effectively Server-wide, and it takes the place of the default and probe routes.",
        "Match the paths and methods the route is meant for.";
    OverbroadNetwork = "overbroad-network", Info,
        "A NetworkAuthentication or ServerAuthorization allows 0.0.0.0/0 or ::/0.",
        "Every source address, inside the cluster or outside it, satisfies the network requirement. That is what Linkerd's own defaults admit (the `all-unauthenticated` policy, `probeNetworks` 0.0.0.0/0,::/0), and it is how a public front end, or a kubelet or API-server network whose addresses cannot be known at install (Linkerd viz does this), is written on purpose; nothing in the manifest tells that intent from the belief that `0.0.0.0/0` is a local network. So this is information, not a warning: read it where you meant a narrow network.",
        "List the networks the clients really use (cluster pod CIDR, a load balancer's range).";
    RedundantAuthorization = "redundant-authorization", Info,
        "Two authorizations have the same target and the same authentications.",
        "Authorizations are OR'ed, so the second grants nothing new; edits to one and not the other are a common source of surprise.",
        "Remove one of them.";
    IdentityMatchesNothing = "identity-matches-nothing", Info,
        "An identity matches no ServiceAccount defined in the repository.",
        "The identity may belong to a client defined elsewhere (another repository or cluster), in which case this is fine; if it is a typo, the authorization grants nothing.",
        "Check the spelling: `<serviceaccount>.<namespace>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`.";
    PolicyOnUnmeshed = "policy-on-unmeshed", Warning,
        "Policy applies to pods that have no Linkerd proxy.",
        "Only the proxy enforces Servers and authorizations. Pods that are not injected (linkerd.io/inject missing or disabled, hostNetwork) accept every connection the network allows.",
        "Enable injection on the namespace or pod template, or remove the policy.";
    SkipPortBypassesPolicy = "skip-port-bypasses-policy", Warning,
        "A port with policy is listed in config.linkerd.io/skip-inbound-ports.",
        "Traffic to a skipped port never reaches the proxy: no Server, no authorization and no mTLS applies to it.",
        "Remove the port from skip-inbound-ports, or remove the policy that cannot apply.";
    UnusedAuthentication = "unused-authentication", Info,
        "A MeshTLSAuthentication or NetworkAuthentication is referenced by no AuthorizationPolicy.",
        "Authentications grant nothing by themselves.",
        "Reference it from an AuthorizationPolicy or delete it.";
    SharedDefaultServiceAccount = "shared-default-serviceaccount", Warning,
        "A policy grants the `default` ServiceAccount.",
        "Every pod without its own serviceAccountName runs as `default`, so granting it grants every such workload in that namespace, including ones added later.",
        "Give the client workload its own ServiceAccount and grant that.";
    InertPolicy = "inert-policy", Warning,
        "A policy's target exists but the policy can never apply.",
        "Linkerd drops an AuthorizationPolicy whose targetRef kind is not Server, Namespace, HTTPRoute or GRPCRoute, that mixes authentication kinds it rejects, or that targets a route that is not attached.",
        "Target a Server, a Namespace or an attached route.";
    UnsupportedByVersion = "unsupported-by-version", Warning,
        "A kind or field that the cluster's Linkerd release does not serve.",
        "Each policy and route kind arrived in one release (Server 2.11, AuthorizationPolicy 2.12, Gateway API HTTPRoute 2.14, GRPCRoute 2.16, EgressNetwork, HTTPLocalRateLimitPolicy, TCPRoute and TLSRoute 2.17; a Service port's appProtocol is read since 2.18). On an older release the API server rejects the object when its CRD is missing, or Linkerd ignores it: either way it has no effect, and meshc leaves it out of the analysis so verdicts are those of that release.",
        "Upgrade Linkerd, or express the policy with what the release serves; if the cluster runs a newer release, set `linkerdVersion` in meshc.yaml.";
    FlowExpectationFailed = "flow-expectation-failed", Error,
        "A flow in a MeshTest file does not get the verdict it expects.",
        "The test states that a client reaching a workload port (with an optional request) is allowed, denied or gets no route; the policy in the repository gives another verdict, so the intent the test records is not what the proxies will enforce.",
        "Read the proof in the message (the route and the authorizations tried), then fix the policy, or the test if the intent changed.";
    InvariantViolated = "invariant-violated", Error,
        "An invariant in a MeshTest file is false for this repository.",
        "The invariant states something that must hold over the whole mesh graph (who may reach what, on which routes); the policy in the repository breaks it. The message names a counterexample when the invariant has the form LIST.all(x, P): the first element for which P is false, with the proof of its verdict.",
        "Fix the policy so the counterexample no longer holds (run `meshc reach` on it), or the invariant if the intent changed.";
    TestError = "test-error", Error,
        "A MeshTest file cannot be evaluated as written.",
        "A flow names a client or workload that is not in the repository, a port the workload does not have, or an expectation that is not allow, deny, no-route or depends; or an invariant's CEL expression does not parse, has a type error, names an unknown function or variable, or is not a bool. The test is not run, so it proves nothing.",
        "Fix the reference at the reported line; `meshc reach` accepts the same client and workload syntax.";
    ServiceProfileName = "service-profile-name", Warning,
        "A ServiceProfile's name is not the FQDN of a Service in the repository.",
        "Linkerd looks up ServiceProfiles by the Service's fully qualified name, `<service>.<namespace>.svc.<cluster domain>`. A profile named anything else, or for a Service that does not exist, is never found: its routes, retries, timeouts and traffic split do nothing, and nothing says so.",
        "Rename the ServiceProfile to the Service's FQDN (the cluster domain is `clusterDomain` in meshc.yaml, default cluster.local).";
    ProfileOverridesRoutes = "profile-overrides-routes", Warning,
        "A ServiceProfile replaces HTTPRoutes or outbound annotations for the same Service.",
        "When a ServiceProfile has routes or dstOverrides, Linkerd's destination controller serves it instead of the Service's GAMMA routes, and ignores the retry, timeout and failure-accrual annotations. Policy written in the routes or annotations silently stops applying for the clients that see the profile.",
        "Keep one mechanism per Service: migrate the profile's routes to HTTPRoutes, or remove the routes and annotations the profile overrides.";
    TrafficSplitUnresolved = "traffic-split-unresolved", Error,
        "A TrafficSplit names an apex or backend Service that does not exist, or a backend that lacks a port of the apex.",
        "The linkerd-smi extension copies a TrafficSplit into the dstOverrides of the apex Service's ServiceProfile without checking any name. Without the apex Service no client can call the name, so nothing is split. A backend that takes traffic is resolved by the client's proxy as `<backend>.<namespace>.svc.<cluster domain>` on the port the client called: with no such Service, or no such port on it, the proxy finds no endpoints and that share of the requests fails.",
        "Name Services of the TrafficSplit's namespace, and give every backend the apex Service's ports.";
    TrafficSplitIgnored = "traffic-split-ignored", Warning,
        "Nothing of a TrafficSplit reaches the proxies: its weights are all 0, or the ServiceProfile is marked to be skipped.",
        "linkerd-smi writes the backends into the apex Service's ServiceProfile, but the proxy drops every dstOverride of weight 0; when none is left the split does nothing and requests go to the apex Service's own endpoints (often none: an apex is usually a Service without pods). A ServiceProfile annotated `smi.linkerd.io/skip` is never changed by linkerd-smi, so the TrafficSplit has no effect at all.",
        "Give at least one backend a positive weight, or remove the `smi.linkerd.io/skip` annotation (or the TrafficSplit).";
    TrafficSplitConflict = "traffic-split-conflict", Warning,
        "Two writers set the same ServiceProfile's dstOverrides: two TrafficSplits for one apex Service, or a TrafficSplit and a profile in git that has its own dstOverrides.",
        "linkerd-smi overwrites the apex profile's dstOverrides each time it syncs a TrafficSplit. With two TrafficSplits for one apex, the split in force is whichever was synced last, which changes when either is edited or the adaptor restarts. A ServiceProfile in git with dstOverrides loses them to the adaptor, and the tool that applies the repository puts them back: the split flips between the two.",
        "Keep one TrafficSplit per apex Service, and leave dstOverrides out of a ServiceProfile that a TrafficSplit fills (or annotate it `smi.linkerd.io/skip` and drop the TrafficSplit).";
    RetryNonIdempotent = "retry-non-idempotent", Warning,
        "Requests that are not idempotent (POST, PATCH) are retried.",
        "A retry is sent when a response is a failure, after the server may already have acted on the request. For POST and PATCH the retried request can be applied twice: two orders, two payments.",
        "Restrict retries to idempotent methods (a separate route or profile route for GET/PUT/DELETE), or make the handler idempotent and suppress this finding.";
    InvalidDuration = "invalid-duration", Error,
        "A timeout or retry duration does not parse as Linkerd reads it.",
        "Linkerd's annotations and Gateway API `timeouts` take one whole number and one unit (ms, s, m, h, d): no fractions and no `1h30m`. On a route, an invalid annotation makes Linkerd drop the whole route; on a Service it is ignored; an invalid Gateway `timeouts.request` is ignored silently. Either way the timeout you wrote is not applied.",
        "Write the duration as one integer and one unit, e.g. `1500ms` instead of `1.5s`.";
    BackendUnresolved = "backend-unresolved", Error,
        "A route backendRef cannot be used: no such Service, no port, or an unsupported kind or filter.",
        "Linkerd turns such a backend into a failure injector: every request the rule sends to it fails with HTTP 500 (a TLSRoute's or TCPRoute's connection is closed). With weights, that share of the rule's traffic fails.",
        "Point the backendRef at an existing Service in the right namespace, with its `port`.";
    BackendWeightsZero = "backend-weights-zero", Error,
        "Every backend of a route rule has weight 0.",
        "A weight of 0 means the backend gets no traffic; when all have weight 0 the rule has nowhere to send requests and each one fails with 500.",
        "Give at least one backend a positive weight, or remove the rule.";
    RouteStacking = "route-stacking", Warning,
        "A route sends to a Service that is itself the parent of another route.",
        "Routes do not stack (GEP-1426): traffic a route sends to a backend Service goes to that Service's endpoints directly, and the backend's own routes (their splits, timeouts, retries, header routing) do not apply to it.",
        "Put the rules on one route, or target the backend's backends directly.";
    FailureAccrualInvalid = "failure-accrual-invalid", Warning,
        "A failure-accrual (circuit breaking) annotation is invalid.",
        "`balancer.linkerd.io/failure-accrual` must be `consecutive` (or `unified`); its parameters must parse, the minimum penalty must not exceed the maximum and the maximum must be above zero. Otherwise Linkerd logs an error and the Service gets no circuit breaking at all.",
        "Fix the annotation at the reported line; defaults are 7 failures, 1s to 1m penalty, jitter 0.5.";
    OpaquePortHttpRoute = "opaque-port-http-route", Warning,
        "An HTTPRoute or GRPCRoute targets a Service port that is opaque.",
        "On an opaque port (config.linkerd.io/opaque-ports, the default opaque list, or an appProtocol other than http or kubernetes.io/h2c) the client proxy forwards raw TCP and never parses HTTP, so the route's matches, splits, timeouts and retries never apply.",
        "Remove the port from the opaque list (or set `appProtocol: http`), or drop the route.";
    UnsupportedFilter = "unsupported-filter", Warning,
        "A route filter Linkerd's client proxy does not implement.",
        "Outbound, Linkerd applies request and response header modifiers and redirects. Other filters (URLRewrite, RequestMirror, ExtensionRef, CORS…) are dropped and the rule applies without them.",
        "Remove the filter, or implement its effect in the application.";
    EgressClusterOverlap = "egress-cluster-overlap", Warning,
        "An EgressNetwork's networks overlap the cluster networks.",
        "Linkerd's status controller sets the EgressNetwork's Accepted condition to False (EgressReasonNetworkOverlap), and every route with it as parent is then not accepted (NoMatchingParent): those routes apply to no traffic. Addresses inside the cluster networks are never egress for the proxy, so the overlapping part covers nothing.",
        "List only addresses outside the cluster networks, or carve the cluster networks out with `except`.";
    EgressNetworkOverlap = "egress-network-overlap", Warning,
        "Two EgressNetworks that apply to the same clients cover the same addresses.",
        "For an address both cover, Linkerd picks one EgressNetwork (the smaller matching network, then the older resource, then namespace and name); the other's trafficPolicy and routes do not apply there, which is easy to miss when one allows and the other denies.",
        "Give each EgressNetwork its own addresses; use `except` to carve one out of the other.";
    EgressDenyAll = "egress-deny-all", Info,
        "A Deny EgressNetwork has no routes: all traffic to its addresses is refused.",
        "With trafficPolicy Deny and no accepted route, the client's proxy answers every HTTP request to the covered addresses with 403 (gRPC PERMISSION_DENIED) and closes TLS and opaque connections. That is a valid lock-down, reported so that it is a visible decision.",
        "Attach HTTPRoutes, GRPCRoutes, TLSRoutes or TCPRoutes to the EgressNetwork for the destinations clients need, or ignore the finding on it.";
    ConnectionRouteShadowed = "connection-route-shadowed", Warning,
        "A TLSRoute or TCPRoute that clients never use on its Service port.",
        "Linkerd gives each Service port one kind of route (policy controller, `grpc/src/outbound.rs::to_proto`): on a port with protocol detection gRPC routes win, then HTTP routes, then TLS routes, then the oldest TCPRoute; an opaque port takes only a TCPRoute; an `http` or `kubernetes.io/h2c` port only HTTP and gRPC routes; and of several TCPRoutes only the oldest (then first by name) is sent. The losing route's status can still say Accepted, but no connection follows its backends or weights.",
        "Remove the losing route, or move it to a port where it applies (set the parentRef's `port`).";
    SectionNameIgnored = "section-name-ignored", Warning,
        "A route's Service parentRef has `sectionName` and no `port`.",
        "Linkerd attaches routes to Service parents by `port` only and does not read `sectionName`, so such a route applies to every port of the Service, not the one the sectionName names.",
        "Write the port number as `port:` in the parentRef.";
    UnmodelledResource = "unmodelled-resource", Warning,
        "An object Linkerd, the Gateway API or a workload controller acts on, which meshc does not model.",
        "meshc reads the object but leaves it out of the analysis, so the verdicts it changes are computed as if it did not exist: a TrafficSplit (with linkerd-smi) splits a Service's requests, a Gateway routes north-south traffic, a UDPRoute routes datagrams, a TLSRoute or TCPRoute whose parent is an EgressNetwork chooses the external hosts it allows, and a custom workload kind (a Knative Service, an OpenShift DeploymentConfig) runs pods that Servers select. The message names the verdicts that may differ from what meshc reports.",
        "Check those verdicts by hand, or ignore the finding on the object (`meshc.io/ignore: unmodelled-resource`) once you have.";
    MulticlusterInvalid = "multicluster-invalid", Error,
        "A multicluster repository or Link that cannot work as written.",
        "A cluster of `clusters:` in meshc.yaml without a name or directory, a directory that does not exist or nests in another cluster's, two clusters of one name; a Link with no `targetClusterName`, a Link to its own cluster, or a Link that exports through a gateway without the gateway's address, port or identity. meshc leaves the cluster or Link out (Linkerd's service mirror mirrors nothing through such a Link, or clients fail to reach the gateway); verdicts that depend on it are not checked.",
        "Fix the entry or the Link at the reported line; `linkerd multicluster link-gen` writes every field a Link needs.";
    GatewayIdentityDenied = "gateway-identity-denied", Error,
        "A Service exported through a gateway whose policy admits a client of the other cluster but not the gateway.",
        "In gateway mode the client's proxy sends the call to the target cluster's gateway, which forwards it with its own identity (the `linkerd-gateway` ServiceAccount of the multicluster namespace): the target's proxy sees that identity and the gateway pod's address, never the client's. A policy that authorizes the client's ServiceAccount therefore denies every call that crosses the gateway (403, gRPC PERMISSION_DENIED, or a refused connection), although it admits the same client inside one cluster.",
        "Authorize the gateway's identity (a MeshTLSAuthentication naming `linkerd-gateway.linkerd-multicluster.serviceaccount.identity.<cp-ns>.<trust domain>`), or export the Service pod-to-pod (`mirror.linkerd.io/exported: remote-discovery`) so that the client's identity arrives intact.";
    LinkGatewayMismatch = "link-gateway-mismatch", Error,
        "A gateway-mode Link to a cluster whose multicluster Helm values say its gateway is not there as the Link expects.",
        "The target cluster's `linkerd-multicluster` values decide its gateway: `gateway.enabled: false` installs none, so nothing answers at the Link's `gatewayAddress`; `gateway.name` and the release namespace make the gateway's ServiceAccount, whose identity its certificate carries, and the client's proxy refuses a gateway whose certificate does not name the Link's `gatewayIdentity`. The chart also advertises an identity on the gateway Service (built from its own `linkerdNamespace` and `identityTrustDomain` values, which `link-gen` copies into Links): when those differ from the control plane's, the advertised identity is wrong. Every call to the Link's gateway-mode mirrors fails.",
        "Enable the gateway, or regenerate the Link with `linkerd multicluster link-gen` against the target cluster; set `linkerdNamespace` and `identityTrustDomain` to the control plane's; or export pod-to-pod, which needs no gateway.";
    ExportUnselected = "export-unselected", Warning,
        "A Service labelled for export or federation that no Link to its cluster selects.",
        "Linkerd's service mirror mirrors a Service only when a Link's `selector` (gateway), `remoteDiscoverySelector` (pod-to-pod) or `federatedServiceSelector` matches its labels; a missing or empty selector matches nothing. A label that no Link selects mirrors nothing: clients in other clusters have no `<svc>-<cluster>` or `<svc>-federated` Service to call.",
        "Use the label value the Link selects (`mirror.linkerd.io/exported: \"true\"` for gateway, `remote-discovery` for pod-to-pod, `mirror.linkerd.io/federated: member`), or add the selector to the Link.";
    MirrorUnresolved = "mirror-unresolved", Error,
        "A route names a mirrored or federated Service that no Link creates.",
        "`<svc>-<cluster>` exists in the source cluster only when a Link of that cluster to `<cluster>` exports `<svc>` (same namespace); `<svc>-federated` only when some member matches a federated selector. Otherwise the Service does not exist and Linkerd turns the backend into a failure injector (every request 500) or does not accept the route.",
        "Export the Service in the target cluster (label it as the Link selects), fix the name, or add the Link.";
    LinkTargetUnknown = "link-target-unknown", Info,
        "A Link to a cluster the repository does not hold.",
        "meshc mirrors Services from clusters whose manifests it reads. The Link works in the cluster, but the Services it mirrors are unknown here: routes to them are not checked and verdicts through it are unknown.",
        "Add the target cluster to `clusters:` in meshc.yaml, or ignore the finding on the Link.";
    TrustAnchorsDiffer = "trust-anchors-differ", Error,
        "Two linked clusters whose trust anchors share no root.",
        "Both modes need a common trust root: pod-to-pod, each proxy verifies the other's certificate; in gateway mode the client verifies the gateway's certificate and the gateway requires and verifies the client's. With different anchors the mTLS handshake fails and every call through the Link fails.",
        "Issue both clusters' identity issuers from one trust anchor, or bundle both anchors in each cluster's `identityTrustAnchorsPEM` during a rotation.";
    IdentitySharedAcrossClusters = "identity-shared-across-clusters", Info,
        "Workloads of linked clusters carry the same identity name.",
        "A mesh identity is `<sa>.<ns>.serviceaccount.identity.<cp-ns>.<trust domain>`. When linked clusters share the control-plane namespace and trust domain (`cluster.local` by default), the same ServiceAccount in both clusters has the same identity: a policy that admits one admits the other across the link (pod-to-pod), and no policy can tell them apart.",
        "Give each cluster its own trust domain when policies must tell them apart, or accept that they are one principal.";
    NotInjectable = "not-injectable", Warning,
        "A pod template asks for injection (its own or its namespace's `linkerd.io/inject`), but meshc's injector leaves it without mesh-proxy.",
        "`meshc inject` and mesh-runtime's admission webhook run one function, and it refuses a template it cannot mesh safely rather than produce a pod that fails: one with `hostNetwork: true` (the proxy's iptables rules would capture the node's traffic; Linkerd's injector refuses it too), one whose containers declare a port the proxy listens on (4143 inbound, 4140 outbound, 4191 admin: the proxy cannot bind, or the app never sees that port's traffic; Linkerd injects such a pod and it fails), or one with a `config.linkerd.io/*` value the injector cannot use (a proxy-uid that is not a non-root user id, a resource quantity or port list that does not parse: Linkerd ignores some of these and rejects the pod for others). The pod runs unmeshed, outside every policy; `meshc check` still models it as Linkerd would.",
        "Fix what the message names (drop `hostNetwork`, move the app off the proxy's ports, correct the annotation), or set `linkerd.io/inject: disabled` on the template if it is meant to run unmeshed.";
}

/// The text `meshc explain CODE` prints.
pub fn render_entry(code: Code) -> String {
    let e = code.entry();
    format!(
        "{} ({})\n\n{}\n\nWhat happens: {}\n\nFix: {}\n\nSuppress: annotate the resource with `meshc.io/ignore: {}`, or pass `--ignore {}`.\n",
        code.as_str(),
        e.severity.as_str(),
        e.summary,
        e.explanation,
        e.fix,
        code.as_str(),
        code.as_str()
    )
}
