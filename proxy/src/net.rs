//! Socket helpers: the original destination of an iptables-redirected
//! connection, outbound connections made from the pod's address, and
//! reading ahead under TLS.

use bytes::BufMut as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::io::poll_read_buf;

/// Where a connection redirected by iptables (`REDIRECT`) was headed
/// (`SO_ORIGINAL_DST`, IPv4, or `IP6T_SO_ORIGINAL_DST`).
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let sock = socket2::SockRef::from(stream);
    let local = stream.local_addr()?;
    let addr = if local.is_ipv4() { sock.original_dst_v4()? } else { sock.original_dst_v6()? };
    addr.as_socket().ok_or_else(|| io::Error::other("original destination is not an IP socket address"))
}

/// Connects to `dst`, from `source` when given (the pod's address), with
/// Nagle off: proxies forward small writes that should not wait.
pub async fn connect_from(source: Option<IpAddr>, dst: SocketAddr) -> io::Result<TcpStream> {
    let socket = if dst.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == dst.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(dst).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `AsyncWrite` for a wrapper that only changes how its `inner` stream is
/// read: every write call goes straight through (vectored writes included,
/// so hyper writes head and body without copying them together first).
macro_rules! write_through_to_inner {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}
pub(crate) use write_through_to_inner;

/// A stream that reads ahead in large chunks while its peer sends a lot.
///
/// rustls asks its transport for at most 4 KiB at a time (`READ_SIZE` in
/// its deframer), so a full 16 KiB TLS record costs five `read` calls, and a
/// 1 MiB body over mTLS some 320. Once a read fills the caller's buffer (so
/// more is likely waiting), this reads up to [`CHUNK`] bytes at once and
/// serves the next reads from them; after a short read it goes back to
/// reading straight into the caller's buffer and frees its own, so an idle
/// connection holds no buffer and small messages are not copied.
pub struct ReadAhead<S> {
    inner: S,
    /// What the last read ahead brought (`len`); its capacity stays
    /// while the peer sends in bulk.
    buf: Vec<u8>,
    /// `buf[pos..]` is read and not yet handed out.
    pos: usize,
    bulk: bool,
}

/// The read-ahead size: four full TLS records.
pub const CHUNK: usize = 64 * 1024;

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        ReadAhead { inner, buf: Vec::new(), pos: 0, bulk: false }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Hands out buffered bytes; frees the buffer once it is drained and
    /// the peer has stopped sending in bulk.
    fn drain_into(&mut self, out: &mut ReadBuf<'_>) {
        let n = out.remaining().min(self.buf.len() - self.pos);
        out.put_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.buf.clear();
            if !self.bulk {
                self.buf = Vec::new();
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.buf.len() {
            this.drain_into(out);
            return Poll::Ready(Ok(()));
        }
        if !this.bulk || out.remaining() >= CHUNK {
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            // A read that filled the caller's buffer suggests more is waiting.
            this.bulk = out.filled().len() > before && out.remaining() == 0;
            return Poll::Ready(Ok(()));
        }
        // Read into the spare capacity as it is (tokio-util's
        // `poll_read_buf`): zero-filling 64 KiB first cost as many bytes
        // written again as the read then brings.
        this.buf.reserve_exact(CHUNK);
        let filled = match poll_read_buf(Pin::new(&mut this.inner), cx, &mut (&mut this.buf).limit(CHUNK)) {
            Poll::Ready(Ok(n)) => n,
            // The peer paused: hold no buffer while waiting for it.
            Poll::Pending => {
                this.bulk = false;
                this.buf = Vec::new();
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        };
        this.bulk = filled == CHUNK;
        this.drain_into(out);
        Poll::Ready(Ok(()))
    }
}

write_through_to_inner!(ReadAhead);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWrite};

    /// A peer with `data` all sent at once: each read gets what fits, and
    /// the reads are counted.
    struct Burst {
        data: Vec<u8>,
        at: usize,
        reads: usize,
    }

    impl AsyncRead for Burst {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            self.reads += 1;
            let n = out.remaining().min(self.data.len() - self.at);
            let at = self.at;
            out.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Burst {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Reads everything in rustls's 4 KiB steps.
    async fn read_in_4k(stream: &mut ReadAhead<Burst>) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn a_large_transfer_is_read_in_large_chunks_and_arrives_whole() {
        let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut stream = ReadAhead::new(Burst { data: data.clone(), at: 0, reads: 0 });
        let got = read_in_4k(&mut stream).await;
        assert!(got == data, "bytes changed on the way");
        // 1 MiB in 4 KiB reads would be 256 reads of the socket.
        let reads = stream.get_ref().reads;
        assert!(reads <= 1024 * 1024 / CHUNK + 3, "{reads} reads");
        assert!(stream.buf.is_empty(), "the buffer is freed once the peer has no more");
    }

    #[tokio::test]
    async fn small_messages_are_read_straight_through_without_a_buffer() {
        let mut stream = ReadAhead::new(Burst { data: b"hello".to_vec(), at: 0, reads: 0 });
        let mut buf = [0u8; 4096];
        assert_eq!(stream.read(&mut buf).await.unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(stream.buf.capacity(), 0, "no read-ahead buffer for a short read");
    }
}
