//! The transport header: how an opaque connection names, to a gateway, the
//! Service it is for. An opaque byte stream carries no authority the
//! gateway could read (HTTP does), so, as linkerd2-proxy's client does
//! (`linkerd/app/outbound/src/tcp/tagged_transport.rs`, the gateway reading
//! it in `linkerd/app/inbound/src/direct.rs`):
//!
//! - the client proxy offers the ALPN protocol [`ALPN`] in the mTLS
//!   handshake of every opaque connection to a meshed endpoint; only a
//!   gateway's listener selects it (ordinary inbound ports offer `h2` and
//!   `http/1.1` only, so nothing changes for them);
//! - when it was selected, the client writes the header before the app's
//!   first byte: the Service's name and port, `<name>.<ns>.svc.<domain>:<port>`,
//!   then a line feed;
//! - the gateway reads it (within its detection timeout, at most
//!   [`MAX_LEN`] bytes) and forwards the rest of the stream.
//!
//! Departure: Linkerd's header is a protobuf message after the preface
//! `transport.l5d.io/v1\r\n\r\n` and a length, and names the *target*
//! Service (`remote-svc-fq-name`, from the endpoint's authority override);
//! mesh-proxy's is one text line, its ALPN id is its own (a Linkerd
//! gateway would not read this header), and it names the Service the
//! client called: the mirror (`<service>-<cluster>`), which the gateway
//! maps back as it does an HTTP authority.

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The ALPN id that says "a transport header follows".
pub const ALPN: &[u8] = b"transport.mesh-proxy/v1";

/// The longest header line, its line feed included: a DNS name (253), a
/// colon and a port, with room to spare.
pub const MAX_LEN: usize = 512;

/// The header naming `authority`.
pub fn encode(authority: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(authority.len() + 1);
    line.extend_from_slice(authority.as_bytes());
    line.push(b'\n');
    line
}

/// Reads the header from `io`: the authority it names, and the bytes read
/// past it (the start of the app's stream).
pub async fn read<I>(io: &mut I, timeout: Duration) -> Result<(String, Bytes), String>
where
    I: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(MAX_LEN);
    let reading = async {
        loop {
            if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                return Ok(end);
            }
            if buf.len() >= MAX_LEN {
                return Err(format!("no transport header in the first {MAX_LEN} bytes"));
            }
            match io.read_buf(&mut buf).await {
                Ok(0) => return Err("the connection closed before its transport header ended".to_owned()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading the transport header: {e}")),
            }
        }
    };
    let end = tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| format!("no transport header within {timeout:?}"))??;
    if end >= MAX_LEN {
        return Err(format!("no transport header in the first {MAX_LEN} bytes"));
    }
    let line = buf.split_to(end + 1);
    let authority = std::str::from_utf8(&line[..end])
        .ok()
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or("the transport header is not a name and port")?;
    Ok((authority.to_owned(), buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn the_header_and_what_follows_it_come_apart() {
        let mut sent = encode("emoji-svc-west.emojivoto.svc.cluster.local:8080");
        sent.extend_from_slice(b"ping\n");
        let (authority, rest) = read(&mut sent.as_slice(), WAIT).await.unwrap();
        assert_eq!(authority, "emoji-svc-west.emojivoto.svc.cluster.local:8080");
        assert_eq!(&rest[..], b"ping\n");
    }

    #[tokio::test]
    async fn a_header_arriving_in_pieces_is_read_whole() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in [&b"web-west.te"[..], b"st:80", b"\nGET"] {
                client.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client
        });
        let (authority, rest) = read(&mut server, WAIT).await.unwrap();
        assert_eq!((authority.as_str(), &rest[..]), ("web-west.test:80", &b"GET"[..]));
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn no_header_is_an_error_that_says_why() {
        let cases: [(&[u8], &str); 4] = [
            (b"emoji-svc-west.emojivoto:80", "closed before"),
            (b"\n", "not a name and port"),
            (b"a b:80\n", "not a name and port"),
            (&[b'a'; 600], "first 512 bytes"),
        ];
        for (sent, want) in cases {
            let err = read(&mut &sent[..], WAIT).await.unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
        let (_client, mut server) = tokio::io::duplex(64);
        let err = read(&mut server, Duration::from_millis(50)).await.unwrap_err();
        assert!(err.contains("within"), "{err}");
    }
}
