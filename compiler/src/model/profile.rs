//! ServiceProfile (linkerd.io). Validated for shape here; its outbound
//! meaning (routes, retries, budgets) is lowered with the outbound config.

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ServiceProfileSpec {
    #[serde(default)]
    pub routes: Vec<ProfileRoute>,
    #[serde(default)]
    pub retry_budget: Option<RetryBudget>,
    #[serde(default)]
    pub dst_overrides: Vec<DstOverride>,
    #[serde(default)]
    pub opaque_ports: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ProfileRoute {
    pub name: String,
    pub condition: RequestMatch,
    #[serde(default)]
    pub response_classes: Vec<ResponseClass>,
    #[serde(default)]
    pub is_retryable: Option<bool>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RequestMatch {
    #[serde(default)]
    pub path_regex: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub all: Vec<RequestMatch>,
    #[serde(default)]
    pub any: Vec<RequestMatch>,
    /// The CRD types this as an array, Linkerd's Go type as one match: both are read.
    #[serde(default)]
    pub not: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ResponseClass {
    pub condition: ResponseMatch,
    #[serde(default)]
    pub is_failure: Option<bool>,
}

/// A response class's condition as the CRD types it: the top level and
/// `status` are closed (an unknown field or a string bound is refused by
/// the API server); the nested matches under `all`, `any` and `not` are
/// objects the schema leaves open (`x-kubernetes-preserve-unknown-fields`),
/// which Linkerd's ServiceProfile validator reads (lower::outbound::profile).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ResponseMatch {
    #[serde(default)]
    pub all: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    #[serde(default)]
    pub any: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    #[serde(default)]
    pub not: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub status: Option<StatusRange>,
}

/// `status`: a range of status codes; the CRD types both bounds as int32.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StatusRange {
    #[serde(default)]
    pub min: Option<i32>,
    #[serde(default)]
    pub max: Option<i32>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RetryBudget {
    pub retry_ratio: f64,
    pub min_retries_per_second: i64,
    pub ttl: String,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct DstOverride {
    pub authority: String,
    /// A Kubernetes quantity, an integer or a string (`500m`, `1`, `0.5`):
    /// model::values checks the CRD's pattern, model::quantity reads it.
    pub weight: serde_json::Value,
}
