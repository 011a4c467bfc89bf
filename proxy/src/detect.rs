//! Protocol detection (inbound Detect servers, transparent outbound): HTTP when the client's
//! first bytes are an HTTP/1 request line or the h2 preface, TCP otherwise
//! (also when the client says nothing within the timeout, as server-first
//! protocols do). The bytes read are replayed to whichever side serves.

use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A request line longer than this is not worth waiting for: TCP.
const MAX_DETECT_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

/// Reads until the protocol is known, the timeout passes or the client
/// closes; returns the protocol and the bytes read.
pub async fn detect<S: AsyncRead + Unpin>(io: &mut S, timeout: Duration) -> io::Result<(Protocol, Bytes)> {
    let mut buf = BytesMut::with_capacity(MAX_DETECT_BYTES);
    let read = async {
        loop {
            let n = io.read_buf(&mut buf).await?;
            if let Some(p) = classify(&buf, n == 0) {
                return Ok::<_, io::Error>(p);
            }
        }
    };
    let protocol = match tokio::time::timeout(timeout, read).await {
        Ok(r) => r?,
        Err(_) => Protocol::Tcp,
    };
    Ok((protocol, buf.freeze()))
}

/// `None`: not enough bytes yet.
fn classify(buf: &[u8], eof: bool) -> Option<Protocol> {
    if buf.starts_with(H2_PREFACE) {
        return Some(Protocol::Http);
    }
    if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
        return Some(if is_request_line(&buf[..end]) { Protocol::Http } else { Protocol::Tcp });
    }
    let could_be_h2 = H2_PREFACE.starts_with(buf);
    let could_be_h1 = buf.iter().take_while(|b| **b != b' ').all(u8::is_ascii_uppercase);
    if eof || buf.len() >= MAX_DETECT_BYTES || !(could_be_h2 || could_be_h1) {
        return Some(Protocol::Tcp);
    }
    None
}

/// `METHOD SP target SP HTTP/1.x`.
fn is_request_line(line: &[u8]) -> bool {
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.iter().all(|b| b.is_ascii_uppercase() || *b == b'-')
        && !target.is_empty()
        && (version == b"HTTP/1.1" || version == b"HTTP/1.0")
}

/// A stream that first yields bytes already read from it.
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

crate::net::write_through_to_inner!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_http1_h2_and_tcp() {
        assert_eq!(classify(b"GET /healthz HTTP/1.1\r\nHost: x\r\n", false), Some(Protocol::Http));
        assert_eq!(classify(H2_PREFACE, false), Some(Protocol::Http));
        assert_eq!(classify(b"PRI * HTT", false), None, "a prefix of the preface waits");
        assert_eq!(classify(b"GET /very-long", false), None, "an unfinished request line waits");
        assert_eq!(classify(b"\x16\x03\x01\x02\x00", false), Some(Protocol::Tcp), "TLS ClientHello");
        assert_eq!(classify(b"SSH-2.0-OpenSSH\r\n", false), Some(Protocol::Tcp));
        assert_eq!(classify(b"GET / HTTP/2.0\r\n", false), Some(Protocol::Tcp));
        assert_eq!(classify(b"GET /", true), Some(Protocol::Tcp), "closed early");
        assert_eq!(classify(&[b'A'; MAX_DETECT_BYTES], false), Some(Protocol::Tcp));
    }

    #[tokio::test]
    async fn detect_reads_across_segments_and_replays_them() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(b"POST /x HT").await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(b"TP/1.1\r\n\r\n").await.unwrap();
            client
        });
        let (p, prefix) = detect(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(p, Protocol::Http);
        let _client = writer.await.unwrap();
        let mut rewound = Rewind::new(prefix, server);
        let mut line = vec![0; 20];
        rewound.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"POST /x HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn silent_clients_are_tcp_after_the_timeout() {
        let (_client, mut server) = tokio::io::duplex(64);
        let (p, prefix) = detect(&mut server, Duration::from_millis(50)).await.unwrap();
        assert_eq!((p, prefix.len()), (Protocol::Tcp, 0));
    }
}
