//! Follows the links file (`--links`): read at start (an invalid file
//! stops the runtime there), then re-read every `--poll-interval`. A valid
//! new content replaces the links in force: the remote pollers of the old
//! links stop, those of the new ones start, and the mirrors are published
//! again at once, keeping what each remote that stays already said. This is
//! how a cluster that stops exporting a Service, or leaves a federated
//! Service, drops out: `meshc build` writes the file again from git, as
//! Linkerd's service mirror follows the target cluster's labels. An invalid
//! new content is logged and the links in force stay.

use super::Links;
use super::remote::{self, State};
use super::signed::Trust;
use crate::files::FilePoll;
use crate::hub::EndpointsHub;
use crate::supervise::Tasks;
use mesh_common::identity::Identity;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where the links come from and what their pollers need.
struct Watch {
    file: FilePoll,
    /// What a new content must be signed by (or where it may be unsigned).
    trust: Trust,
    hub: Arc<EndpointsHub>,
    identity: Arc<Identity>,
    poll: Duration,
    shutdown: CancellationToken,
}

/// Publishes `links` (read from `path` at start) at once, starts their
/// pollers, and follows `path` until shutdown.
pub fn spawn(
    path: PathBuf,
    trust: Trust,
    links: Links,
    hub: Arc<EndpointsHub>,
    identity: Arc<Identity>,
    poll: Duration,
    tasks: &mut Tasks,
) {
    let state = Arc::new(State::new(links, hub.clone(), None));
    state.publish();
    let watch = Watch { file: FilePoll::new(path), trust, hub, identity, poll, shutdown: tasks.shutdown().clone() };
    tasks.spawn("links file watch", watch.run(state));
}

impl Watch {
    /// One generation of pollers per links content. Returns at shutdown,
    /// or when a poller ends on its own (which only a bug does): the
    /// supervisor then stops the runtime rather than serve stale mirrors.
    async fn run(mut self, mut state: Arc<State>) {
        loop {
            let generation = self.shutdown.child_token();
            let mut pollers = JoinSet::new();
            remote::start(&state, &self.identity, self.poll, &generation, &mut pollers);
            let next = tokio::select! {
                () = self.shutdown.cancelled() => None,
                next = changed(&mut self.file, &self.trust, self.poll, &state.links) => Some(next),
                Some(_) = pollers.join_next() => {
                    tracing::error!("a linked cluster's endpoints poller ended");
                    None
                }
            };
            generation.cancel();
            while pollers.join_next().await.is_some() {}
            let Some(links) = next else { return };
            tracing::info!(links = links.links.len(), federated = links.federated.len(), "links file changed");
            state = Arc::new(State::new(links, self.hub.clone(), Some(state.as_ref())));
            state.publish();
        }
    }
}

/// The next valid content of the links file that differs from `current`
/// (the first read finds the content read at start, which does not).
async fn changed(file: &mut FilePoll, trust: &Trust, every: Duration, current: &Links) -> Links {
    loop {
        tokio::time::sleep(every).await;
        let Some(bytes) = file.changed().await else { continue };
        match super::signed::open(&bytes, file.path(), trust) {
            Ok(links) if links != *current => return links,
            Ok(_) => {}
            Err(e) => tracing::warn!(path = %file.path().display(), "invalid; keeping the links in force: {e}"),
        }
    }
}
