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
    pub condition: serde_json::Value,
    #[serde(default)]
    pub is_failure: Option<bool>,
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
    pub weight: serde_json::Value,
}
