//! Kubernetes' CEL IP and CIDR library (k8s.io/apiserver/pkg/cel/library,
//! `ip.go` and `cidr.go`), on the `cel` crate's types. The maintained port
//! of that library to Rust, kube-cel 0.8, is built on cel 0.13, whose
//! `Context` is another type than cel 0.15's, so it cannot be registered
//! here.

use cel::common::types::{CelBool, CelInt, CelString, Type};
use cel::common::value::{StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use ipnet::IpNet;
use std::any::Any;
use std::net::IpAddr;

static IP_TYPE: Type = Type::new_unspecified_type("net.IP");
static CIDR_TYPE: Type = Type::new_unspecified_type("net.CIDR");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpVal(pub IpAddr);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CidrVal(pub IpNet);

macro_rules! static_val {
    ($t:ty, $type:expr) => {
        impl Val for $t {
            fn get_type(&self) -> &Type {
                &$type
            }
            fn cel_type() -> &'static Type {
                &$type
            }
            fn equals(&self, other: &dyn Val) -> bool {
                other.downcast_ref::<$t>().is_some_and(|o| o == self)
            }
            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
                Box::new(*self)
            }
            fn as_any(&self) -> Option<&dyn Any> {
                Some(self)
            }
        }
        impl StaticVal for $t {}
    };
}

static_val!(IpVal, IP_TYPE);
static_val!(CidrVal, CIDR_TYPE);

/// Kubernetes accepts neither zones nor IPv4-mapped IPv6 addresses, and
/// Rust's parser already rejects IPv4 octets with leading zeros.
fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = s.parse().map_err(|_| format!("IP address `{s}` is invalid"))?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address `{s}` is not allowed"));
    }
    Ok(ip)
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let (addr, _) = s.split_once('/').ok_or_else(|| format!("network address `{s}` is invalid: no /PREFIX"))?;
    parse_ip(addr)?;
    s.parse().map_err(|_| format!("network address `{s}` is invalid"))
}

fn fail(function: &str) -> impl Fn(String) -> ExecutionError + '_ {
    move |m| ExecutionError::function_error(function, m)
}

fn ip(s: &CelString) -> Result<IpVal, ExecutionError> {
    parse_ip(s.inner()).map(IpVal).map_err(fail("ip"))
}

fn is_ip(s: &CelString) -> CelBool {
    parse_ip(s.inner()).is_ok().into()
}

fn is_canonical(s: &CelString) -> Result<CelBool, ExecutionError> {
    let ip = parse_ip(s.inner()).map_err(fail("ip.isCanonical"))?;
    Ok((ip.to_string() == s.inner()).into())
}

fn ip_string(ip: &IpVal) -> CelString<'static> {
    ip.0.to_string().into()
}

fn family(ip: &IpVal) -> CelInt {
    CelInt::from(if ip.0.is_ipv4() { 4 } else { 6 })
}

fn is_unspecified(ip: &IpVal) -> CelBool {
    ip.0.is_unspecified().into()
}

fn is_loopback(ip: &IpVal) -> CelBool {
    ip.0.is_loopback().into()
}

fn link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    }
}

fn link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn is_link_local_multicast(ip: &IpVal) -> CelBool {
    link_local_multicast(ip.0).into()
}

fn is_link_local_unicast(ip: &IpVal) -> CelBool {
    link_local_unicast(ip.0).into()
}

/// As Go's `netip.Addr.IsGlobalUnicast`: private ranges count.
fn is_global_unicast(ip: &IpVal) -> CelBool {
    let a = ip.0;
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    (!(a.is_unspecified() || a.is_loopback() || a.is_multicast() || link_local_unicast(a) || broadcast)).into()
}

fn cidr(s: &CelString) -> Result<CidrVal, ExecutionError> {
    parse_cidr(s.inner()).map(CidrVal).map_err(fail("cidr"))
}

fn is_cidr(s: &CelString) -> CelBool {
    parse_cidr(s.inner()).is_ok().into()
}

fn cidr_string(c: &CidrVal) -> CelString<'static> {
    c.0.to_string().into()
}

fn contains_ip(c: &CidrVal, ip: &IpVal) -> CelBool {
    c.0.contains(&ip.0).into()
}

fn contains_ip_string(c: &CidrVal, s: &CelString) -> Result<CelBool, ExecutionError> {
    let ip = parse_ip(s.inner()).map_err(fail("containsIP"))?;
    Ok(c.0.contains(&ip).into())
}

fn contains_cidr(c: &CidrVal, other: &CidrVal) -> CelBool {
    c.0.contains(&other.0).into()
}

fn contains_cidr_string(c: &CidrVal, s: &CelString) -> Result<CelBool, ExecutionError> {
    let other = parse_cidr(s.inner()).map_err(fail("containsCIDR"))?;
    Ok(c.0.contains(&other).into())
}

fn cidr_ip(c: &CidrVal) -> IpVal {
    IpVal(c.0.addr())
}

fn masked(c: &CidrVal) -> CidrVal {
    CidrVal(c.0.trunc())
}

fn prefix_length(c: &CidrVal) -> CelInt {
    CelInt::from(i64::from(c.0.prefix_len()))
}

/// Registers the library on `env`.
pub fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(IP_TYPE.to_owned())?;
    env.add_type(CIDR_TYPE.to_owned())?;
    cel::add_overload!(env, fn ip: (CelString) -> Result<IpVal>)?;
    cel::add_overload!(env, fn is_ip: (CelString) -> CelBool, name = "isIP")?;
    cel::add_overload!(env, fn is_canonical: (CelString) -> Result<CelBool>, name = "ip.isCanonical")?;
    cel::add_overload!(env, fn ip_string: (IpVal) -> CelString, name = "string")?;
    cel::add_member_overload!(env, fn family: (IpVal) -> CelInt)?;
    cel::add_member_overload!(env, fn is_unspecified: (IpVal) -> CelBool)?;
    cel::add_member_overload!(env, fn is_loopback: (IpVal) -> CelBool)?;
    cel::add_member_overload!(env, fn is_link_local_multicast: (IpVal) -> CelBool)?;
    cel::add_member_overload!(env, fn is_link_local_unicast: (IpVal) -> CelBool)?;
    cel::add_member_overload!(env, fn is_global_unicast: (IpVal) -> CelBool)?;
    cel::add_overload!(env, fn cidr: (CelString) -> Result<CidrVal>)?;
    cel::add_overload!(env, fn is_cidr: (CelString) -> CelBool, name = "isCIDR")?;
    cel::add_overload!(env, fn cidr_string: (CidrVal) -> CelString, name = "string")?;
    cel::add_member_overload!(env, fn contains_ip: (CidrVal, IpVal) -> CelBool, name = "containsIP")?;
    cel::add_member_overload!(env, fn contains_ip_string: (CidrVal, CelString) -> Result<CelBool>, name = "containsIP")?;
    cel::add_member_overload!(env, fn contains_cidr: (CidrVal, CidrVal) -> CelBool, name = "containsCIDR")?;
    cel::add_member_overload!(env, fn contains_cidr_string: (CidrVal, CelString) -> Result<CelBool>, name = "containsCIDR")?;
    cel::add_member_overload!(env, fn cidr_ip: (CidrVal) -> IpVal, name = "ip")?;
    cel::add_member_overload!(env, fn masked: (CidrVal) -> CidrVal)?;
    cel::add_member_overload!(env, fn prefix_length: (CidrVal) -> CelInt)?;
    Ok(())
}
