//! Protocol detection on accepted connections: a TLS ClientHello (mesh
//! TLS from a peer proxy), then HTTP/1 or the HTTP/2 preface. Bytes read
//! to decide are replayed to whoever handles the connection next.

use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Enough for the HTTP/2 preface and any HTTP/1 method plus a space.
const SNIFF_BYTES: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    Http,
    /// Not HTTP, or nothing arrived before the detect timeout.
    Opaque,
}

/// Whether the client's first byte opens a TLS handshake record.
pub fn is_tls_client_hello(first: &[u8]) -> bool {
    first.first() == Some(&0x16)
}

/// Reads the first bytes (up to `timeout`) and says whether they are HTTP.
/// The stream that comes back replays what was read.
pub async fn detect_http<S>(mut io: S, timeout: Duration) -> io::Result<(Detected, Prefixed<S>)>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(SNIFF_BYTES);
    let read = tokio::time::timeout(timeout, async {
        while buf.len() < SNIFF_BYTES && !looks_decided(&buf) {
            if io.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        io::Result::Ok(())
    })
    .await;
    if let Ok(r) = read {
        r?;
    }
    let detected = if looks_like_http(&buf) { Detected::Http } else { Detected::Opaque };
    Ok((detected, Prefixed::new(buf.freeze(), io)))
}

/// HTTP/1 starts with a method token then a space; HTTP/2 with its preface.
pub fn looks_like_http(b: &[u8]) -> bool {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if b.starts_with(H2_PREFACE) {
        return true;
    }
    let Some(sp) = b.iter().position(|&c| c == b' ') else { return false };
    sp > 0 && b[..sp].iter().all(|c| c.is_ascii_uppercase() || *c == b'-')
}

fn looks_decided(b: &[u8]) -> bool {
    b.contains(&b' ') || b.iter().any(|c| !c.is_ascii_graphic() && *c != b' ')
}

/// A stream whose first bytes were already read: they are served first.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
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

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn http_is_recognised_by_method_or_preface() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"M-SEARCH * HTTP/1.1"));
        assert!(looks_like_http(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(!looks_like_http(b"\x16\x03\x01\x02\x00"));
        assert!(!looks_like_http(b"*1\r\n$4\r\nPING\r\n"));
        assert!(!looks_like_http(b""));
        assert!(!looks_like_http(b"get / HTTP/1.1"));
    }

    #[tokio::test]
    async fn detection_replays_what_it_read() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"GET /x HTTP/1.1\r\n\r\n").await.unwrap();
        let (d, mut io) = detect_http(b, Duration::from_secs(1)).await.unwrap();
        assert_eq!(d, Detected::Http);
        let mut all = vec![0; 19];
        io.read_exact(&mut all).await.unwrap();
        assert_eq!(&all, b"GET /x HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn silence_until_the_timeout_is_opaque() {
        let (_a, b) = tokio::io::duplex(64);
        let (d, _) = detect_http(b, Duration::from_millis(20)).await.unwrap();
        assert_eq!(d, Detected::Opaque);
    }

    #[tokio::test]
    async fn binary_protocols_are_opaque_without_waiting() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"\x00\x00\x00\x10binary").await.unwrap();
        let (d, _) = detect_http(b, Duration::from_secs(30)).await.unwrap();
        assert_eq!(d, Detected::Opaque);
    }
}
