//! The cluster prefix of references in a multicluster repository:
//! `CLUSTER/KIND/NS/NAME`, `CLUSTER/svc/NS/NAME:PORT`, `CLUSTER/kubelet`…
//! Everything after the prefix is read by the usual parsers, against that
//! cluster.

/// Splits `CLUSTER/REST` when `CLUSTER` is one of `names`: the cluster's
/// index and the rest; otherwise why the reference needs a cluster.
pub fn split<'s>(names: &[&str], spec: &'s str) -> Result<(usize, &'s str), String> {
    let (first, rest) = spec.split_once('/').unwrap_or((spec, ""));
    match names.iter().position(|n| *n == first) {
        Some(i) if !rest.is_empty() => Ok((i, rest)),
        Some(_) => Err(format!("`{spec}`: a cluster prefix needs a reference after it (CLUSTER/KIND/NS/NAME)")),
        None => Err(format!(
            "`{spec}`: this repository holds several clusters; prefix the reference with one of {} \
             (e.g. `{}/deploy/NS/NAME`, `{}/svc/NS/NAME:PORT`)",
            names.join(", "),
            names.first().unwrap_or(&"CLUSTER"),
            names.first().unwrap_or(&"CLUSTER"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn prefix_selects_the_cluster_and_keeps_the_rest() {
        let names = ["east", "west"];
        assert_eq!(split(&names, "west/deploy/emojivoto/emoji:grpc"), Ok((1, "deploy/emojivoto/emoji:grpc")));
        assert_eq!(
            split(&names, "east/svc/emojivoto/emoji-svc-west:8080"),
            Ok((0, "svc/emojivoto/emoji-svc-west:8080"))
        );
        assert_eq!(split(&names, "east/kubelet"), Ok((0, "kubelet")));
        assert!(split(&names, "deploy/emojivoto/web").is_err(), "no cluster prefix");
        assert!(split(&names, "east").is_err(), "nothing after the prefix");
        assert!(split(&names, "north/deploy/a/b").is_err(), "not a cluster of the repository");
    }
}
