//! Optional per-request access log, in the format the config names
//! (`config.linkerd.io/access-log: apache|json`).
//!
//! Requests never wait for the log: a line is formatted by the caller and
//! handed to a writer thread through a bounded queue; when the queue is full
//! the line is dropped and counted in `mesh_proxy_access_log_dropped_total`.
//! The writer is a plain thread because writes to stderr or a file block.

use mesh_proxy_api::{AccessLogFormat, ProxyConfig};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, SystemTime};

/// Lines waiting for the writer; past this they are dropped.
pub const DEFAULT_CAPACITY: usize = 4096;

static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);
static STDERR: OnceLock<Option<Writer>> = OnceLock::new();

/// The counter every writer made by [`AccessLog::from_config`] counts drops in;
/// `Metrics` registers it.
pub fn dropped_counter() -> Counter {
    DROPPED.clone()
}

/// One HTTP request, borrowed from the listener that served it.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// When the request arrived.
    pub timestamp: SystemTime,
    pub client: SocketAddr,
    /// The client's mTLS identity; `None` for plaintext clients.
    pub identity: Option<&'a str>,
    /// `inbound` or `outbound`.
    pub direction: &'a str,
    pub method: &'a str,
    /// Path and query as the client sent them.
    pub path: &'a str,
    pub version: http::Version,
    pub host: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub status: u16,
    /// From request headers to response headers.
    pub duration: Duration,
    /// `kind:name` of the route, empty when none matched.
    pub route: &'a str,
    /// `kind:name` of the authorization that allowed, empty when denied or outbound.
    pub authz: &'a str,
}

/// A handle that formats entries and queues them for a writer. Cheap to
/// clone and to create per request.
#[derive(Clone, Debug)]
pub struct AccessLog {
    format: AccessLogFormat,
    writer: Writer,
}

impl AccessLog {
    /// A log to stderr in the config's format, or `None` when the config
    /// asks for none. All such logs share one writer thread, started on
    /// first use; if it cannot start, a warning is logged and `None` returned.
    pub fn from_config(config: &ProxyConfig) -> Option<AccessLog> {
        let format = config.access_log?;
        let writer = STDERR.get_or_init(|| {
            Writer::spawn_to(std::io::stderr(), DEFAULT_CAPACITY, dropped_counter())
                .inspect_err(|e| tracing::warn!("access log disabled: cannot start its writer: {e}"))
                .ok()
        });
        Some(AccessLog { format, writer: writer.clone()? })
    }

    /// A log to a writer of the test's choosing.
    #[cfg(test)]
    pub fn new(format: AccessLogFormat, writer: Writer) -> AccessLog {
        AccessLog { format, writer }
    }

    /// Queues one line; drops it (and counts the drop) when the writer is behind.
    pub fn log(&self, entry: &Entry) {
        let line = match self.format {
            AccessLogFormat::Apache => apache_line(entry),
            AccessLogFormat::Json => json_line(entry),
        };
        self.writer.send(line);
    }
}

/// What the log needs of a request, taken before the request is forwarded
/// (only when the config asks for a log, so other requests pay nothing).
#[derive(Clone, Debug)]
pub struct Seen {
    timestamp: SystemTime,
    method: String,
    path: String,
    version: http::Version,
    host: Option<String>,
    user_agent: Option<String>,
}

impl Seen {
    pub fn of<B>(req: &http::Request<B>) -> Seen {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        Seen {
            timestamp: SystemTime::now(),
            method: req.method().as_str().to_string(),
            path: req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
            version: req.version(),
            host: req.uri().authority().map(|a| a.as_str().to_string()).or_else(|| header(http::header::HOST)),
            user_agent: header(http::header::USER_AGENT),
        }
    }
}

impl AccessLog {
    /// Logs a request a listener finished, with the labels its metrics got.
    pub fn request(
        &self,
        seen: &Seen,
        client: SocketAddr,
        identity: Option<&str>,
        labels: &crate::metrics::Labels,
        duration: Duration,
    ) {
        self.log(&Entry {
            timestamp: seen.timestamp,
            client,
            identity,
            direction: labels.direction,
            method: &seen.method,
            path: &seen.path,
            version: seen.version,
            host: seen.host.as_deref(),
            user_agent: seen.user_agent.as_deref(),
            status: labels.status.parse().unwrap_or(0),
            duration,
            route: &labels.route,
            authz: &labels.authz,
        });
    }
}

/// The sending side of one writer thread.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: SyncSender<String>,
    dropped: Counter,
}

impl Writer {
    /// A writer appending to `path` (created if missing); the tests read
    /// the file back.
    #[cfg(test)]
    pub fn spawn_file(path: &std::path::Path, capacity: usize, dropped: Counter) -> std::io::Result<Writer> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Writer::spawn_to(file, capacity, dropped)
    }

    /// A writer thread owning `out`; it ends when every handle is dropped.
    pub fn spawn_to(out: impl Write + Send + 'static, capacity: usize, dropped: Counter) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel(capacity.max(1));
        std::thread::Builder::new().name("access-log".into()).spawn(move || write_lines(out, rx))?;
        Ok(Writer { tx, dropped })
    }

    fn send(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

/// Writes lines as they come, flushing whenever the queue runs empty so a
/// burst costs one flush and a quiet log is never left unflushed.
fn write_lines(out: impl Write, rx: Receiver<String>) {
    let mut out = std::io::BufWriter::new(out);
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut result = out.write_all(first.as_bytes());
        while let Ok(line) = rx.try_recv() {
            result = result.and_then(|()| out.write_all(line.as_bytes()));
        }
        result = result.and_then(|()| out.flush());
        // One warning, not one per line, while the destination stays broken.
        match result {
            Err(e) if !failed => {
                tracing::warn!("access log write failed: {e}");
                failed = true;
            }
            Err(_) => {}
            Ok(()) => failed = false,
        }
    }
}

/// Apache common log format, then direction, route, authorization and the
/// duration in microseconds (response size is not tracked: `-`):
/// `10.0.0.7 - web.shop.serviceaccount… [24/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 - inbound "httproute:a" "authorizationpolicy:p" 512`
pub fn apache_line(e: &Entry) -> String {
    format!(
        "{} - {} [{}] \"{} {} {:?}\" {} - {} \"{}\" \"{}\" {}\n",
        e.client.ip(),
        e.identity.map_or_else(|| "-".into(), escape),
        apache_time(e.timestamp),
        escape(e.method),
        escape(e.path),
        e.version,
        e.status,
        escape(e.direction),
        escape(e.route),
        escape(e.authz),
        e.duration.as_micros(),
    )
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    timestamp: String,
    client_addr: String,
    client_id: Option<&'a str>,
    direction: &'a str,
    method: &'a str,
    path: &'a str,
    version: String,
    host: Option<&'a str>,
    user_agent: Option<&'a str>,
    status: u16,
    duration_us: u128,
    route: &'a str,
    authz: &'a str,
}

/// One JSON object per line.
pub fn json_line(e: &Entry) -> String {
    let json = JsonEntry {
        timestamp: rfc3339(e.timestamp),
        client_addr: e.client.to_string(),
        client_id: e.identity,
        direction: e.direction,
        method: e.method,
        path: e.path,
        version: format!("{:?}", e.version),
        host: e.host,
        user_agent: e.user_agent,
        status: e.status,
        duration_us: e.duration.as_micros(),
        route: e.route,
        authz: e.authz,
    };
    // Only strings and integers: serialising cannot fail.
    let mut line = serde_json::to_string(&json).unwrap_or_default();
    line.push('\n');
    line
}

/// Backslash-escapes quotes, backslashes and control characters, as Apache
/// does, so a client cannot forge fields or lines.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn utc(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

/// `24/Nov/2026:10:00:00 +0000`.
fn apache_time(t: SystemTime) -> String {
    let d = utc(t);
    let month = &format!("{}", d.month())[..3];
    format!("{:02}/{month}/{}:{:02}:{:02}:{:02} +0000", d.day(), d.year(), d.hour(), d.minute(), d.second())
}

/// `2026-11-24T10:00:00.123Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

#[cfg(test)]
mod tests;
