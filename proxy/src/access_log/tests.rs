use super::*;
use std::sync::mpsc;
use std::time::Instant;

fn entry() -> Entry<'static> {
    Entry {
        // 2026-11-24T10:00:00.250Z
        timestamp: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_514_400_250),
        client: "10.0.0.7:51234".parse().unwrap(),
        identity: Some("web.shop.serviceaccount.identity.linkerd.cluster.local"),
        direction: "inbound",
        method: "GET",
        path: "/books?id=\"1\"",
        version: http::Version::HTTP_11,
        host: Some("books:7002"),
        user_agent: None,
        status: 403,
        duration: Duration::from_micros(512),
        route: "httproute:books",
        authz: "",
    }
}

#[test]
fn apache_line_is_common_log_format_then_the_decision() {
    let want = "10.0.0.7 - web.shop.serviceaccount.identity.linkerd.cluster.local [24/Nov/2026:10:00:00 +0000] \
                \"GET /books?id=\\\"1\\\" HTTP/1.1\" 403 - inbound \"httproute:books\" \"\" 512\n";
    assert_eq!(apache_line(&entry()), want);
    let plain = Entry { identity: None, method: "GET\r\nX", ..entry() };
    let line = apache_line(&plain);
    assert!(line.starts_with("10.0.0.7 - - ["), "{line}");
    assert!(line.contains("\"GET\\x0d\\x0aX /books"), "a client cannot inject a line: {line}");
    assert_eq!(line.matches('\n').count(), 1);
}

#[test]
fn json_line_has_every_field() {
    let line = json_line(&entry());
    assert!(line.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "timestamp": "2026-11-24T10:00:00.250Z",
            "client_addr": "10.0.0.7:51234",
            "client_id": "web.shop.serviceaccount.identity.linkerd.cluster.local",
            "direction": "inbound",
            "method": "GET",
            "path": "/books?id=\"1\"",
            "version": "HTTP/1.1",
            "host": "books:7002",
            "user_agent": null,
            "status": 403,
            "duration_us": 512,
            "route": "httproute:books",
            "authz": "",
        })
    );
}

#[test]
fn from_config_follows_the_config() {
    let mut config: ProxyConfig = crate::state::deny_all_config();
    assert!(AccessLog::from_config(&config).is_none());
    config.access_log = Some(AccessLogFormat::Json);
    assert_eq!(AccessLog::from_config(&config).map(|l| l.format), Some(AccessLogFormat::Json));
}

#[test]
fn lines_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let writer = Writer::spawn_file(&path, 16, Counter::default()).unwrap();
    let log = AccessLog::new(AccessLogFormat::Json, writer);
    log.log(&entry());
    log.log(&Entry { status: 200, ..entry() });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() == 2 {
            assert!(text.contains("\"status\":403") && text.contains("\"status\":200"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "lines not written: {text:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Blocks its first write until released, like a stalled stderr pipe.
struct Stalled {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Write for Stalled {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        self.lines.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_writer_drops_and_counts_instead_of_blocking() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = Stalled { entered: entered_tx, release: release_rx, lines: lines.clone() };
    let dropped = Counter::default();
    let writer = Writer::spawn_to(out, 2, dropped.clone()).unwrap();
    let log = AccessLog::new(AccessLogFormat::Apache, writer);
    log.log(&entry());
    entered.recv_timeout(Duration::from_secs(5)).expect("writer took the first line");
    let start = Instant::now();
    for _ in 0..5 {
        log.log(&entry());
    }
    assert!(start.elapsed() < Duration::from_secs(1), "logging blocked");
    // Two fit in the queue while the first is being written; three are dropped.
    assert_eq!(dropped.get(), 3);
    drop(log);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines.lock().unwrap().iter().filter(|b| **b == b'\n').count() < 3 {
        assert!(Instant::now() < deadline, "queued lines were not written");
        let _ = release.send(());
        std::thread::sleep(Duration::from_millis(10));
    }
}
