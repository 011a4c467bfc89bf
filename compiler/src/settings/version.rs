//! Which Linkerd release the checked repository runs, and what changed
//! between releases (docs/semantics/versions.md). Every rule that differs
//! between releases asks [`LinkerdVersion::has`]; the kinds a release's
//! policy controller does not serve are listed in [`KINDS`].
//!
//! A release is `2.MINOR`: patch releases do not change what meshc models.
//! Edge releases (`edge-YY.M.N`) and the Helm chart versions of
//! `linkerd-control-plane` are mapped to the release they belong to from
//! the tags and chart history of the linkerd2 repository.

use std::fmt;

/// The newest stable release meshc models; the default.
pub const NEWEST: LinkerdVersion = LinkerdVersion { minor: 19, patch: None };

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkerdVersion {
    /// `2.MINOR`.
    pub minor: u32,
    /// Kept for messages only.
    pub patch: Option<u32>,
}

impl Default for LinkerdVersion {
    fn default() -> Self {
        NEWEST
    }
}

impl fmt::Display for LinkerdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "2.{}.{p}", self.minor),
            None => write!(f, "2.{}", self.minor),
        }
    }
}

/// A behaviour that one release introduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// The policy controller authorizes kubelet's httpGet probe paths from
    /// the probe networks on every port without routes, under any default
    /// policy (`deny` included). Before, a probe needed a Server and an
    /// authorization like any client (CHANGES.md stable-2.12.0).
    ProbeAuthorization,
    /// The injector gives the proxy a projected ServiceAccount token, so
    /// `automountServiceAccountToken: false` no longer blocks injection
    /// (CHANGES.md edge-21.11.1, released in 2.12).
    TokenProjection,
    /// A Service port's `appProtocol` sets the outbound protocol
    /// (policy-controller `core/src/outbound.rs`, `AppProtocol`; #13659, #13660, #13721).
    AppProtocol,
    /// Overlapping Servers are admitted and the oldest wins (#13676,
    /// "order Server resources deterministically"). Before, the admission
    /// webhook rejected a Server with another's `port` when one selector
    /// selects every pod or both are equal, and the controller picked among
    /// the other overlaps in map order.
    OverlappingServers,
}

impl Feature {
    pub const ALL: &'static [Feature] =
        &[Feature::ProbeAuthorization, Feature::TokenProjection, Feature::AppProtocol, Feature::OverlappingServers];

    /// The `2.MINOR` release that introduced it.
    pub fn since(self) -> u32 {
        match self {
            Feature::ProbeAuthorization | Feature::TokenProjection => 12,
            Feature::AppProtocol | Feature::OverlappingServers => 18,
        }
    }
}

/// API group, kind, and the release whose policy controller first serves it.
/// An object of a kind its release does not serve is ignored by Linkerd (or
/// rejected by the API server when the CRD is missing): either way it has no
/// effect, so meshc reports it and leaves it out.
pub const KINDS: &[(&str, &str, u32)] = &[
    ("policy.linkerd.io", "Server", 11),
    ("policy.linkerd.io", "ServerAuthorization", 11),
    ("policy.linkerd.io", "AuthorizationPolicy", 12),
    ("policy.linkerd.io", "MeshTLSAuthentication", 12),
    ("policy.linkerd.io", "NetworkAuthentication", 12),
    ("policy.linkerd.io", "HTTPRoute", 12),
    ("gateway.networking.k8s.io", "HTTPRoute", 14),
    ("gateway.networking.k8s.io", "GRPCRoute", 16),
    ("gateway.networking.k8s.io", "TCPRoute", 17),
    ("gateway.networking.k8s.io", "TLSRoute", 17),
    ("policy.linkerd.io", "EgressNetwork", 17),
    ("policy.linkerd.io", "HTTPLocalRateLimitPolicy", 17),
];

/// The release that first serves `group`/`kind`, when it is in [`KINDS`].
pub fn kind_since(group: &str, kind: &str) -> Option<u32> {
    KINDS.iter().find(|(g, k, _)| *g == group && *k == kind).map(|&(_, _, since)| since)
}

impl LinkerdVersion {
    pub fn new(minor: u32) -> Self {
        LinkerdVersion { minor, patch: None }
    }

    pub fn has(self, feature: Feature) -> bool {
        self.minor >= feature.since()
    }

    pub fn serves(self, group: &str, kind: &str) -> bool {
        kind_since(group, kind).is_none_or(|since| self.minor >= since)
    }

    /// A release as people write it: `2.18`, `2.18.3`, `v2.18.3`,
    /// `stable-2.14.10`, `enterprise-2.17.1`, `version-2.17`, or an edge
    /// release `edge-24.11.8`.
    pub fn parse(text: &str) -> Result<Mapped, String> {
        let t = text.trim();
        if let Some(edge) = t.strip_prefix("edge-") {
            let date = parse_triple(edge).ok_or_else(|| format!("`{t}` is not an edge release (edge-YY.M.N)"))?;
            return edge_release(date, t);
        }
        let bare = ["stable-", "enterprise-", "version-", "v"].iter().find_map(|p| t.strip_prefix(p)).unwrap_or(t);
        let mut parts = bare.split('.');
        let parsed = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("2"), Some(minor), patch, None) => {
                let patch = match patch {
                    None => Some(None),
                    Some(p) => p.parse::<u32>().ok().map(Some),
                };
                minor.parse::<u32>().ok().zip(patch).map(|(minor, patch)| LinkerdVersion { minor, patch })
            }
            _ => None,
        };
        parsed.map(Mapped::exact).ok_or_else(|| {
            format!("`{t}` is not a Linkerd version (2.MINOR[.PATCH], stable-2.x.y, enterprise-2.x.y or edge-YY.M.N)")
        })
    }

    /// A version of the `linkerd-control-plane` Helm chart (Flux
    /// `spec.chart.spec.version`, Argo CD `targetRevision`). Stable charts
    /// have their own numbering (1.9.x is 2.12, 1.12.x 2.13, 1.15.x and
    /// 1.16.x 2.14: Chart.yaml at the stable-2.* tags); edge charts since
    /// 2024 are `YYYY.M.N` for `edge-YY.M.N` (bin/compute-edge-version).
    pub fn from_chart(version: &str) -> Result<Mapped, String> {
        let v = version.trim().trim_start_matches('v');
        let unknown = || {
            format!(
                "chart version `{v}` names no Linkerd release meshc knows (stable charts 1.9.x-1.16.x for 2.12-2.14, \
                 edge charts YYYY.M.N)"
            )
        };
        if v.contains("-edge") {
            return Err(format!("{}: an edge chart of 2021-2024, whose release meshc cannot name", unknown()));
        }
        let mut parts = v.split('.');
        let (major, minor) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let stable = match (major, minor) {
            ("1", "9") => Some(12),
            ("1", "12") => Some(13),
            ("1", "15" | "16") => Some(14),
            _ => None,
        };
        if let Some(minor) = stable {
            return Ok(Mapped::exact(LinkerdVersion::new(minor)));
        }
        match parse_triple(v) {
            Some((year, month, n)) if year >= 2024 => edge_release((year % 100, month, n), &format!("chart {v}")),
            _ => Err(unknown()),
        }
    }
}

/// A version read from text, and what the reader should know about the mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub version: LinkerdVersion,
    /// Set when the text named an edge release between two stable ones.
    pub note: Option<String>,
}

impl Mapped {
    fn exact(version: LinkerdVersion) -> Self {
        Mapped { version, note: None }
    }
}

/// The edge release each `version-2.N` tag of linkerd2 points at: since
/// 2.15 the open-source project ships edge releases only, and names the
/// edge that a stable release was cut from.
const EDGES: &[((u32, u32, u32), u32)] =
    &[((24, 2, 4), 15), ((24, 8, 2), 16), ((24, 11, 8), 17), ((25, 4, 4), 18), ((25, 10, 7), 19)];

fn edge_release(date: (u32, u32, u32), text: &str) -> Result<Mapped, String> {
    let Some(pos) = EDGES.iter().rposition(|(edge, _)| *edge <= date) else {
        return Err(format!(
            "`{text}` is older than edge-24.2.4 (2.15), and meshc does not know which stable release it precedes"
        ));
    };
    let (edge, minor) = EDGES[pos];
    let version = LinkerdVersion::new(minor);
    if edge == date {
        return Ok(Mapped::exact(version));
    }
    let next = EDGES.get(pos + 1).map_or(String::new(), |(_, n)| format!(" and before 2.{n}"));
    let note = format!(
        "`{text}` is an edge release after 2.{minor}{next}: rules follow 2.{minor}, though it may already have some of \
         what the next release added"
    );
    Ok(Mapped { version, note: Some(note) })
}

fn parse_triple(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
    let triple = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(triple)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(text: &str) -> u32 {
        LinkerdVersion::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).version.minor
    }

    #[test]
    fn release_names_people_write() {
        assert_eq!(minor("2.18"), 18);
        assert_eq!(LinkerdVersion::parse("2.18.3").map(|m| m.version.to_string()), Ok("2.18.3".to_owned()));
        assert_eq!(minor("stable-2.14.10"), 14);
        assert_eq!(minor("enterprise-2.17.1"), 17);
        assert_eq!(minor("v2.11.4"), 11);
        assert_eq!(minor("version-2.17"), 17);
        for bad in ["", "2", "3.1", "2.x", "2.18.3.1", "stable-2.", "latest", "2.18.three"] {
            assert!(LinkerdVersion::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn edge_releases_map_to_the_stable_release_cut_from_them() {
        assert_eq!(LinkerdVersion::parse("edge-24.11.8"), Ok(Mapped::exact(LinkerdVersion::new(17))));
        let between = LinkerdVersion::parse("edge-25.1.2").expect("an edge between 2.17 and 2.18");
        assert_eq!(between.version.minor, 17);
        assert!(between.note.is_some_and(|n| n.contains("before 2.18")));
        assert!(LinkerdVersion::parse("edge-23.12.1").is_err(), "before 2.15's edge: unknown, not guessed");
    }

    #[test]
    fn chart_versions_differ_from_linkerd_versions() {
        let chart = |v: &str| LinkerdVersion::from_chart(v).map(|m| m.version.minor);
        assert_eq!(chart("1.16.11"), Ok(14), "stable-2.14.10's chart");
        assert_eq!(chart("1.15.0"), Ok(14), "stable-2.14.0's chart");
        assert_eq!(chart("1.12.7"), Ok(13));
        assert_eq!(chart("1.9.8"), Ok(12));
        assert_eq!(chart("1.16.x"), Ok(14), "a Flux semver range within one chart line");
        assert_eq!(chart("2025.10.7"), Ok(19), "edge-25.10.7 is version-2.19");
        assert_eq!(chart("2025.4.4"), Ok(18));
        for unknown in ["1.18.11-edge", "1.3.0", "2.18.3", "2023.10.1", "*", ""] {
            assert!(LinkerdVersion::from_chart(unknown).is_err(), "{unknown} mapped");
        }
    }

    #[test]
    fn features_and_kinds_follow_the_release() {
        let v211 = LinkerdVersion::new(11);
        assert!(!v211.has(Feature::ProbeAuthorization) && !v211.has(Feature::TokenProjection));
        assert!(LinkerdVersion::new(12).has(Feature::ProbeAuthorization));
        assert!(!LinkerdVersion::new(17).has(Feature::AppProtocol) && NEWEST.has(Feature::AppProtocol));
        assert!(!LinkerdVersion::new(15).serves("gateway.networking.k8s.io", "GRPCRoute"));
        assert!(LinkerdVersion::new(16).serves("gateway.networking.k8s.io", "GRPCRoute"));
        assert!(!LinkerdVersion::new(16).serves("policy.linkerd.io", "EgressNetwork"));
        assert!(!LinkerdVersion::new(13).serves("gateway.networking.k8s.io", "HTTPRoute"));
        assert!(LinkerdVersion::new(13).serves("policy.linkerd.io", "HTTPRoute"));
        assert!(v211.serves("apps", "Deployment"), "kinds outside the table are not Linkerd's to serve");
    }
}
