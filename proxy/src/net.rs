//! Socket helpers: the original destination of an iptables-redirected
//! connection, and outbound connections made from the pod's address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

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
