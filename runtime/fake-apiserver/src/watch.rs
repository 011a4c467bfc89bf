//! Watch streams: newline-delimited JSON events, as the real server sends
//! them over a chunked HTTP/1.1 response.

use crate::error::ApiError;
use crate::resource::ResourceType;
use crate::select::Selector;
use crate::store::{Change, ChangeKind, Store};
use bytes::Bytes;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// A parsed watch request.
#[derive(Clone, Debug)]
pub(crate) struct WatchRequest {
    pub resource: ResourceType,
    pub namespace: Option<String>,
    pub selector: Selector,
    /// None for `resourceVersion` absent or "0": start with a synthetic
    /// ADDED event per existing object.
    pub from: Option<u64>,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: ADDED per existing object, then a bookmark
    /// annotated `k8s.io/initial-events-end`.
    pub initial_events: bool,
    pub timeout: Duration,
}

/// A response body fed by a channel, one chunk per event.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Starts streaming a watch; the stream ends on timeout, when the client
/// goes away, or when the store drops watches or compacts.
pub(crate) fn start(store: Store, req: WatchRequest, bookmark_interval: Duration) -> ChannelBody {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        // A send error means the client hung up: the stream is over either way.
        let _ = stream(store, req, bookmark_interval, tx).await;
    });
    ChannelBody { rx }
}

struct Closed;

async fn stream(
    store: Store,
    req: WatchRequest,
    bookmark_every: Duration,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), Closed> {
    let mut ticks = store.subscribe();
    let epoch = ticks.borrow_and_update().epoch;
    let mut pos = match (req.from, req.initial_events) {
        (Some(rv), false) => rv,
        _ => send_initial(&store, &req, &tx).await?,
    };
    let deadline = Instant::now() + req.timeout;
    let mut next_bookmark = Instant::now() + bookmark_every;
    loop {
        match store.changes_after(pos) {
            Err(gone) => return send(&tx, &json!({"type": "ERROR", "object": gone.to_status()})).await,
            Ok((changes, current)) => {
                for change in changes.iter().filter(|c| c.gvr == req.resource.gvr) {
                    if let Some(event) = event_for(&req, change) {
                        send(&tx, &event).await?;
                    }
                }
                pos = current;
            }
        }
        tokio::select! {
            changed = ticks.changed() => {
                if changed.is_err() || ticks.borrow_and_update().epoch != epoch {
                    return Ok(());
                }
            }
            _ = sleep_until(next_bookmark), if req.bookmarks => {
                send(&tx, &bookmark(&req.resource, pos, false)).await?;
                next_bookmark = Instant::now() + bookmark_every;
            }
            _ = sleep_until(deadline) => {
                // Like the real server, a last bookmark just before the
                // timeout lets the client resume without a relist.
                if req.bookmarks {
                    send(&tx, &bookmark(&req.resource, pos, false)).await?;
                }
                return Ok(());
            }
            _ = tx.closed() => return Err(Closed),
        }
    }
}

/// The synthetic ADDED events of a watch without a resourceVersion (or with
/// `sendInitialEvents`); returns the resourceVersion they are current at.
async fn send_initial(store: &Store, req: &WatchRequest, tx: &mpsc::Sender<Bytes>) -> Result<u64, Closed> {
    let (items, rv) = match store.list(&req.resource.gvr, req.namespace.as_deref(), &req.selector) {
        Ok(listed) => listed,
        Err(e) => {
            send(tx, &json!({"type": "ERROR", "object": e.to_status()})).await?;
            return Err(Closed);
        }
    };
    for object in items {
        send(tx, &json!({"type": "ADDED", "object": object})).await?;
    }
    if req.initial_events && req.bookmarks {
        send(tx, &bookmark(&req.resource, rv, true)).await?;
    }
    Ok(rv)
}

/// The event a change makes in this watch, if any. An object that starts
/// or stops matching the selector is ADDED or DELETED, as on a real server.
fn event_for(req: &WatchRequest, change: &Change) -> Option<Value> {
    let in_scope = |v: &Value| {
        req.namespace.as_deref().is_none_or(|ns| v["metadata"]["namespace"] == ns) && req.selector.matches(v)
    };
    let was = change.old.as_deref().is_some_and(in_scope);
    let is = in_scope(&change.new);
    let kind = match change.kind {
        ChangeKind::Added if is => "ADDED",
        ChangeKind::Modified if was && is => "MODIFIED",
        ChangeKind::Modified if is => "ADDED",
        ChangeKind::Modified | ChangeKind::Deleted if was => "DELETED",
        _ => return None,
    };
    Some(json!({"type": kind, "object": &*change.new}))
}

fn bookmark(t: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": t.kind, "apiVersion": t.api_version(), "metadata": metadata}})
}

async fn send(tx: &mpsc::Sender<Bytes>, event: &Value) -> Result<(), Closed> {
    let mut line = serde_json::to_vec(event).map_err(|_| Closed)?;
    line.push(b'\n');
    tx.send(Bytes::from(line)).await.map_err(|_| Closed)
}

/// Parses the resourceVersion a watch starts from.
pub(crate) fn parse_from(rv: Option<&str>) -> Result<Option<u64>, ApiError> {
    match rv {
        None | Some("") | Some("0") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}"))),
    }
}
