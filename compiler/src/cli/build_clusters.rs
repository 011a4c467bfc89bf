//! `meshc build` of a multicluster repository: one build per cluster, each
//! exactly what `meshc build` of that cluster alone would write, plus the
//! outbound policies of the Services mirrored into it. Each cluster runs
//! its own runtime, which serves its own bundle, so the builds do not
//! share a bundle: `--out DIR` writes `DIR/<cluster>/` for every cluster
//! (or the one `--cluster` names); `--stdout` needs `--cluster`. A cluster
//! that holds Links also gets its runtime's links file, signed
//! (`multicluster::links_file`).

use super::build::{BuildArgs, build_info, error_findings, usage};
use crate::emit::{self, sequence, write};
use crate::multicluster::{Clusters, links_file};
use crate::pipeline::Outcome;
use mesh_proxy_api::envelope::SigningKey;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(args: &BuildArgs, key: &SigningKey, mut outcome: Outcome) -> ExitCode {
    // Findings of every cluster, and across them, decide whether to sign at all.
    let errors = match error_findings(args, &outcome) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let Some(m) = outcome.multicluster.as_deref_mut() else { return usage("the repository declares no clusters") };
    let chosen: Vec<usize> = match &args.cluster {
        Some(name) => match m.find(name) {
            Some(c) => vec![c],
            None => {
                let names: Vec<&str> = m.clusters.iter().map(|c| c.name.as_str()).collect();
                return usage(&format!("--cluster {name}: the repository's clusters are {}", names.join(", ")));
            }
        },
        None if args.stdout => {
            return usage(
                "meshc.yaml declares clusters:, and each cluster's build is a bundle of its own: pass --cluster NAME \
                 with --stdout, or --out DIR (one DIR/<cluster>/ each)",
            );
        }
        None => (0..m.clusters.len()).collect(),
    };
    let outs: Vec<Option<PathBuf>> =
        chosen.iter().map(|&c| args.out.as_ref().map(|d| d.join(&m.clusters[c].name))).collect();
    let mut previous = Vec::new();
    for out in &outs {
        match out.as_deref().filter(|_| !args.allow_rollback).map(sequence::previous) {
            Some(Err(e)) => return usage(&e),
            Some(Ok(p)) => previous.push(p),
            None => previous.push(None),
        }
    }
    // One sequence for the whole repository: above every cluster's last build.
    let highest = previous.iter().flatten().map(|p| p.sequence).max();
    let info = build_info(args, highest, errors);
    for ((&c, out), prev) in chosen.iter().zip(&outs).zip(&previous) {
        if let Err(e) = build_one(m, c, key, &info, out.as_ref(), prev.as_ref()) {
            return usage(&e);
        }
    }
    ExitCode::SUCCESS
}

/// Signs and writes cluster `c`'s build into `out` (stdout when `None`).
fn build_one(
    m: &Clusters,
    c: usize,
    key: &SigningKey,
    info: &emit::BuildInfo,
    out: Option<&PathBuf>,
    previous: Option<&sequence::Previous>,
) -> Result<(), String> {
    let cluster = &m.clusters[c];
    let mut built = emit::build_outcome(&cluster.outcome, key, info, &emit::ConfigOut::Keep)
        .map_err(|e| format!("cluster {}: {e}", cluster.name))?;
    sequence::check_forward(previous, info.sequence, &built.bundle_digest)
        .map_err(|e| format!("cluster {}: {e}", cluster.name))?;
    let summary = built.summary();
    match out {
        Some(dir) => {
            let links = signed_links(m, c, key)?;
            if let Some(text) = &links {
                built.files.push((links_file::FILE_NAME.to_owned(), text.clone()));
            }
            write::write_dir(dir, &built)?;
            let and_links = if links.is_some() { ", its links file" } else { "" };
            eprintln!(
                "cluster {}: wrote {summary}{and_links} and the MeshBundle to {} (revision {}, sequence {})",
                cluster.name,
                dir.display(),
                info.source_revision,
                info.sequence
            );
            Ok(())
        }
        None => {
            if links_file::document(m, c).is_some() {
                eprintln!(
                    "cluster {}: its runtime's links file is written with --out only ({}/{})",
                    cluster.name,
                    cluster.name,
                    links_file::FILE_NAME
                );
            }
            std::io::stdout()
                .lock()
                .write_all(built.stream().as_bytes())
                .map_err(|e| format!("cannot write stdout: {e}"))
        }
    }
}

/// Cluster `c`'s signed links file, after saying on stderr what it leaves out.
fn signed_links(m: &Clusters, c: usize, key: &SigningKey) -> Result<Option<String>, String> {
    let name = &m.clusters[c].name;
    let Some((text, notes)) = links_file::signed(m, c, key).map_err(|e| format!("cluster {name}: {e}"))? else {
        return Ok(None);
    };
    for n in notes {
        eprintln!("cluster {name}: {}: {n}", links_file::FILE_NAME);
    }
    Ok(Some(text))
}
