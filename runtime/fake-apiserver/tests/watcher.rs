//! kube-runtime's watcher against the fake: events, 410 and relist,
//! bookmarks, injected failures.

mod common;

use common::*;
use fake_apiserver::{Gvr, Verb};
use futures_util::StreamExt;
use kube::api::{DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use std::time::Duration;

fn pc_gvr() -> Gvr {
    Gvr::new("meshc.io", "v1alpha1", "proxyconfigs")
}

#[tokio::test]
async fn watcher_sees_create_modify_delete() {
    let server = server().await;
    server.store().create_object(proxyconfig("booksapp", "before", "r1")).unwrap();
    let mut w = Watched::start(proxyconfigs(&server, None), watcher::Config::default());
    assert!(matches!(w.next().await, Ok(Event::Init)));
    assert!(matches!(w.next().await, Ok(Event::InitApply(o)) if name_of(&o) == "before"));
    assert!(matches!(w.next().await, Ok(Event::InitDone)));

    let api = proxyconfigs(&server, Some("booksapp"));
    api.create(&PostParams::default(), &dynamic(proxyconfig("booksapp", "web", "r1"))).await.unwrap();
    assert!(matches!(w.next().await, Ok(Event::Apply(o)) if name_of(&o) == "web" && revision_of(&o) == "r1"));

    server.store().modify(&pc_gvr(), Some("booksapp"), "web", |o| o["spec"]["sourceRevision"] = json!("r2")).unwrap();
    let modified = w.next().await;
    assert!(matches!(&modified, Ok(Event::Apply(o)) if name_of(o) == "web" && revision_of(o) == "r2"), "{modified:?}");

    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(matches!(w.next().await, Ok(Event::Delete(o)) if name_of(&o) == "web"));
}

#[tokio::test]
async fn watcher_relists_after_compaction() {
    let server = server().await;
    let store = server.store();
    store.create_object(proxyconfig("a", "one", "r1")).unwrap();
    let mut w = Watched::start(proxyconfigs(&server, None), watcher::Config::default());
    w.until(|e| matches!(e, Ok(Event::InitDone))).await.unwrap();
    assert_eq!(server.faults().count_for(Verb::List, "proxyconfigs"), 1);

    // A write the watcher may miss, then compaction: its resourceVersion is
    // now too old, and the only way back is a fresh list.
    store.create_object(proxyconfig("a", "two", "r1")).unwrap();
    store.compact();
    let gone = w.until(|e| e.is_err()).await;
    match gone {
        Err(watcher::Error::WatchError(status)) => assert_eq!(status.code, 410, "{status:?}"),
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    assert!(matches!(w.next().await, Ok(Event::Init)));
    let mut relisted = Vec::new();
    loop {
        match w.next().await {
            Ok(Event::InitApply(o)) => relisted.push(name_of(&o).to_string()),
            Ok(Event::InitDone) => break,
            other => panic!("unexpected during relist: {other:?}"),
        }
    }
    assert_eq!(relisted, ["one", "two"]);
    assert_eq!(server.faults().count_for(Verb::List, "proxyconfigs"), 2);

    // And it watches on from the relist.
    store.create_object(proxyconfig("a", "three", "r1")).unwrap();
    assert!(matches!(w.next().await, Ok(Event::Apply(o)) if name_of(&o) == "three"));
}

#[tokio::test]
async fn raw_watch_gets_bookmarks_and_410() {
    let server = server().await;
    let api = proxyconfigs(&server, None);
    let start = server.store().resource_version().to_string();
    // A write elsewhere moves the global resourceVersion; the bookmark says so.
    server
        .store()
        .create_object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}))
        .unwrap();
    let now = server.store().resource_version().to_string();
    let mut stream = api.watch(&WatchParams::default().timeout(10), &start).await.unwrap().boxed();
    let event = tokio::time::timeout(WAIT, stream.next()).await.unwrap().unwrap().unwrap();
    match event {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, now),
        other => panic!("expected a bookmark, got {other:?}"),
    }

    server.store().compact();
    let mut stale = api.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    match tokio::time::timeout(WAIT, stale.next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected 410, got {other:?}"),
    }
    assert!(stale.next().await.is_none(), "the stream ends after 410");
}

#[tokio::test]
async fn watcher_resumes_from_bookmark_without_relist() {
    let server = server().await;
    let mut w = Watched::start(proxyconfigs(&server, None), watcher::Config::default());
    w.until(|e| matches!(e, Ok(Event::InitDone))).await.unwrap();
    server
        .store()
        .create_object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "x"}}))
        .unwrap();
    let after_secret = server.store().resource_version();
    // Give the watch time to receive a bookmark at the new resourceVersion.
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.store().drop_watches();
    let resumed = format!("resourceVersion={after_secret}");
    eventually("a watch resumed from the bookmark", || {
        server.faults().log().iter().any(|r| r.verb == Verb::Watch && r.uri.contains(&resumed))
    })
    .await;
    assert_eq!(server.faults().count_for(Verb::List, "proxyconfigs"), 1, "no relist");
}

#[tokio::test]
async fn watcher_recovers_from_injected_watch_failures() {
    let server = server().await;
    let mut w = Watched::start(proxyconfigs(&server, None), watcher::Config::default());
    w.until(|e| matches!(e, Ok(Event::InitDone))).await.unwrap();
    eventually("the first watch", || server.faults().count_for(Verb::Watch, "proxyconfigs") == 1).await;
    server.faults().fail_next(Verb::Watch, 2, http::StatusCode::INTERNAL_SERVER_ERROR);
    server.store().drop_watches();
    for _ in 0..2 {
        let e = w.next().await;
        assert!(matches!(e, Err(watcher::Error::WatchStartFailed(_))), "{e:?}");
    }
    server.store().create_object(proxyconfig("a", "after-outage", "r1")).unwrap();
    assert!(matches!(w.next().await, Ok(Event::Apply(o)) if name_of(&o) == "after-outage"));
    let watches = server.faults().count_for(Verb::Watch, "proxyconfigs");
    assert_eq!(watches, 4, "{:#?}", server.faults().log());
    let failed = server.faults().log().iter().filter(|r| r.verb == Verb::Watch && r.status == 500).count();
    assert_eq!(failed, 2);
}

#[tokio::test]
async fn label_selected_watch_sees_objects_enter_and_leave() {
    let server = server().await;
    let config = watcher::Config::default().labels("tier=front");
    let mut w = Watched::start(proxyconfigs(&server, Some("ns")), config);
    w.until(|e| matches!(e, Ok(Event::InitDone))).await.unwrap();
    server.store().create_object(proxyconfig("ns", "x", "r1")).unwrap();
    server.store().create_object(proxyconfig("other", "y", "r1")).unwrap();
    server.store().modify(&pc_gvr(), Some("ns"), "x", |o| o["metadata"]["labels"]["tier"] = json!("front")).unwrap();
    assert!(matches!(w.next().await, Ok(Event::Apply(o)) if name_of(&o) == "x"));
    server.store().modify(&pc_gvr(), Some("ns"), "x", |o| o["metadata"]["labels"]["tier"] = json!("back")).unwrap();
    assert!(matches!(w.next().await, Ok(Event::Delete(o)) if name_of(&o) == "x"));
}
