//! The SNI of a client's TLS ClientHello, read without terminating TLS
//! (as linkerd2-proxy's `NewDetectRequiredSni` does for TLSRoutes): the
//! bytes read are kept and sent on to the backend unchanged.
//!
//! Only a ClientHello whose handshake message fits in the first TLS record
//! is read (every common client sends it so; a record holds up to 16 KiB).
//! Anything else has no SNI here, and a port served by TLSRoutes closes it.

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

const RECORD_HEADER: usize = 5;
const MAX_RECORD: usize = 16 * 1024 + 256;

/// What the first bytes of a connection say about its SNI.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// Not a ClientHello in one record, or no server_name extension.
    NoSni,
    Sni(String),
}

/// Reads the ClientHello from `client` within `timeout`; returns its SNI
/// (`None` when it has none, is not TLS, or does not come in time) and the
/// bytes read, which the caller forwards first.
pub async fn read_sni<C: AsyncRead + Unpin>(client: &mut C, timeout: Duration) -> (Option<String>, Bytes) {
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            match parse(&buf) {
                Parsed::Incomplete if buf.len() < MAX_RECORD + RECORD_HEADER => {}
                Parsed::Sni(name) => return Some(name),
                _ => return None,
            }
            match client.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    let sni = tokio::time::timeout(timeout, read).await.ok().flatten();
    (sni, buf.freeze())
}

/// Parses the SNI out of the first TLS record in `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let Some(header) = buf.get(..RECORD_HEADER) else {
        // A prefix that cannot start a handshake record is not TLS.
        return if buf.first().is_some_and(|b| *b != 0x16) { Parsed::NoSni } else { Parsed::Incomplete };
    };
    if header[0] != 0x16 {
        return Parsed::NoSni;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let Some(record) = buf.get(RECORD_HEADER..RECORD_HEADER + len) else { return Parsed::Incomplete };
    client_hello_sni(record).map_or(Parsed::NoSni, Parsed::Sni)
}

/// A cursor over a byte slice; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A vector with a length prefix of `width` bytes.
    fn vec(&mut self, width: usize) -> Option<Reader<'a>> {
        let n = match width {
            1 => self.u8()?,
            2 => self.u16()?,
            _ => self.u24()?,
        };
        self.take(n).map(Reader)
    }
}

/// RFC 8446 §4.1.2 ClientHello, RFC 6066 §3 server_name (host_name entries).
fn client_hello_sni(record: &[u8]) -> Option<String> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let mut hello = r.vec(3)?;
    hello.take(2 + 32)?; // legacy_version, random
    hello.vec(1)?; // legacy_session_id
    hello.vec(2)?; // cipher_suites
    hello.vec(1)?; // legacy_compression_methods
    let mut extensions = hello.vec(2)?;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vec(2)?;
        if kind != 0 {
            continue;
        }
        let mut names = data.vec(2)?;
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let name = names.vec(2)?.0;
            if name_type == 0 {
                return std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
            }
        }
        return None;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ClientHello record carrying `sni` (or no extension).
    pub(crate) fn client_hello(sni: Option<&str>) -> Vec<u8> {
        let mut ext = Vec::new();
        if let Some(name) = sni {
            let n = name.len() as u16;
            let mut list = vec![0u8];
            list.extend(n.to_be_bytes());
            list.extend(name.as_bytes());
            ext.extend(0u16.to_be_bytes());
            ext.extend(((list.len() + 2) as u16).to_be_bytes());
            ext.extend((list.len() as u16).to_be_bytes());
            ext.extend(list);
        }
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn reads_the_sni_of_a_client_hello() {
        let hello = client_hello(Some("API.Example.com"));
        assert_eq!(parse(&hello), Parsed::Sni("api.example.com".into()));
        for cut in 0..hello.len() {
            assert_eq!(parse(&hello[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn no_sni_for_other_bytes_or_a_hello_without_the_extension() {
        assert_eq!(parse(&client_hello(None)), Parsed::NoSni);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::NoSni);
        let mut truncated = client_hello(Some("a.b"));
        truncated[3..5].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(parse(&truncated), Parsed::NoSni);
    }

    #[tokio::test]
    async fn read_sni_keeps_the_bytes_it_read() {
        let hello = client_hello(Some("a.example.com"));
        let (sni, prefix) = read_sni(&mut hello.as_slice(), Duration::from_secs(1)).await;
        assert_eq!(sni.as_deref(), Some("a.example.com"));
        assert_eq!(&prefix[..], &hello[..]);
        let (sni, prefix) = read_sni(&mut &b"hello"[..], Duration::from_secs(1)).await;
        assert_eq!((sni, &prefix[..]), (None, &b"hello"[..]));
    }
}
