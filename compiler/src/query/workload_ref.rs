//! Workload references as users type them: `KIND/NAMESPACE/NAME` (kubectl
//! short names accepted) or `NAMESPACE/NAME` when only one workload has it.

use crate::resolve::Resolved;

/// kubectl's names for the workload kinds meshc models.
fn kind_of(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_lowercase().as_str() {
        "deploy" | "deployment" | "deployments" => "Deployment",
        "sts" | "statefulset" | "statefulsets" => "StatefulSet",
        "ds" | "daemonset" | "daemonsets" => "DaemonSet",
        "rs" | "replicaset" | "replicasets" => "ReplicaSet",
        "job" | "jobs" => "Job",
        "cj" | "cronjob" | "cronjobs" => "CronJob",
        "po" | "pod" | "pods" => "Pod",
        "ro" | "rollout" | "rollouts" => "Rollout",
        _ => return None,
    })
}

/// The indexes of the workloads `reference` names (none, one, or several
/// when the kind is left out), or why it is not a workload reference.
pub fn matching(r: &Resolved, reference: &str) -> Result<Vec<usize>, String> {
    let parts: Vec<&str> = reference.split('/').collect();
    let (kind, ns, name) = match parts.as_slice() {
        [kind, ns, name] => {
            let kind = kind_of(kind)
                .ok_or_else(|| format!("`{kind}` is not a workload kind (deploy, sts, ds, rs, job, cj, pod, ro)"))?;
            (Some(kind), *ns, *name)
        }
        [ns, name] => (None, *ns, *name),
        _ => return Err(format!("`{reference}`: expected KIND/NAMESPACE/NAME or NAMESPACE/NAME")),
    };
    Ok((0..r.workloads.len())
        .filter(|&i| {
            let w = &r.workloads[i];
            w.namespace == ns && w.name == name && kind.is_none_or(|k| w.kind == k)
        })
        .collect())
}

/// The index of the workload `reference` names, or a message saying why none.
pub fn find(r: &Resolved, reference: &str) -> Result<usize, String> {
    let matches = matching(r, reference)?;
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => {
            let ns = reference.rsplit('/').nth(1).unwrap_or_default();
            Err(format!("no workload `{reference}` in the repository{}", nearby(r, ns)))
        }
        many => {
            let w = &r.workloads[many[0]];
            let kinds: Vec<String> =
                many.iter().map(|&i| format!("{}/{}/{}", r.workloads[i].kind, w.namespace, w.name)).collect();
            Err(format!("`{reference}` is ambiguous: {}", kinds.join(", ")))
        }
    }
}

fn nearby(r: &Resolved, ns: &str) -> String {
    let mut names: Vec<String> =
        r.workloads.iter().filter(|w| w.namespace == ns).map(|w| format!("{}/{}/{}", w.kind, ns, w.name)).collect();
    names.sort();
    names.truncate(10);
    if names.is_empty() {
        format!(" (namespace {ns} has no workloads)")
    } else {
        format!("; namespace {ns} has {}", names.join(", "))
    }
}
