//! Core Kubernetes kinds, reduced to the fields that decide mesh behaviour.
//! Unknown fields are not reported here: these are large, well-validated
//! APIs and meshc reads only a slice of them.

use super::meta::{IntOrString, ObjectMeta};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub init_containers: Vec<Container>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Deprecated alias of serviceAccountName, still honoured by the API server.
    #[serde(default)]
    pub service_account: Option<String>,
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    #[serde(default)]
    pub startup_probe: Option<Probe>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: Option<String>,
    pub container_port: i64,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(default)]
    pub http_get: Option<HttpGetAction>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    #[serde(default)]
    pub path: Option<String>,
    pub port: IntOrString,
    #[serde(default)]
    pub scheme: Option<String>,
}

/// The spec of Deployment, StatefulSet, DaemonSet, ReplicaSet and Job.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    #[serde(default)]
    pub template: PodTemplate,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    #[serde(default)]
    pub job_template: JobTemplate,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplate {
    #[serde(default)]
    pub spec: WorkloadSpec,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: i64,
    #[serde(default)]
    pub target_port: Option<IntOrString>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub app_protocol: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountFields {
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
}

/// An Argo Rollout (`argoproj.io/v1alpha1`): a Deployment's pod template, or
/// a `workloadRef` to the object whose template it runs (`rollout::resolve`).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    #[serde(default)]
    pub template: Option<PodTemplate>,
    #[serde(default)]
    pub workload_ref: Option<RolloutWorkloadRef>,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutWorkloadRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}
