//! The `--interface IP` option, with one name and one meaning in every binary: the network
//! interface a member's multicast goes out of and is received on, named by one of its
//! addresses, which is also the address the member's unicast socket is bound to (its id,
//! and how the others reach it over that interface). Loopback by default. IPv4, or IPv6
//! where the binary's group may be IPv6 (`thoth-member`; the UDP driver resolves an IPv6
//! address to the index of the interface that holds it); `thoth-perf` and `thoth-detect`
//! measure IPv4 multicast only. The unspecified address is refused: it names no interface
//! and cannot be a member's address.
//!
//! Tested by the unit tests below, the argument-parser tests of each binary, and
//! `bins/tests/member_netns.rs` (members on veth interfaces in network namespaces).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Loopback of the family: `127.0.0.1` or `::1`.
pub fn loopback(ipv6: bool) -> IpAddr {
    if ipv6 { IpAddr::V6(Ipv6Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::LOCALHOST) }
}

/// Parses the value of `--interface`: an address an interface can hold.
pub fn parse(v: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = v.parse().map_err(|_| format!("--interface: `{v}` is not an IP address"))?;
    let broadcast = matches!(ip, IpAddr::V4(a) if a.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(format!("--interface {ip}: give the address of one of this host's interfaces"));
    }
    Ok(ip)
}

/// Refuses an IPv6 interface, for the binaries whose group is IPv4.
pub fn ipv4_only(ip: IpAddr) -> Result<IpAddr, String> {
    match ip {
        IpAddr::V4(_) => Ok(ip),
        IpAddr::V6(_) => Err(format!("--interface {ip}: this binary measures IPv4 multicast; give an IPv4 address")),
    }
}

/// `--interface` of the benchmarks, whose groups are IPv4.
pub fn parse_ipv4(v: &str) -> Result<IpAddr, String> {
    parse(v).and_then(ipv4_only)
}

/// Refuses an interface of another family than `other` (`what` names it in the message).
pub fn same_family(ip: IpAddr, other: IpAddr, what: &str) -> Result<(), String> {
    if ip.is_ipv4() == other.is_ipv4() {
        Ok(())
    } else {
        Err(format!("--interface {ip} and {what} {other} are of different families"))
    }
}

/// Checks, at run time, that an interface of this host holds `ip`, for a clear message
/// instead of the socket's "cannot assign requested address" (`thoth-member`; the other
/// two probe multicast on the interface before they start, which says as much).
pub fn check_host(ip: IpAddr) -> Result<(), String> {
    match thoth::udp::interface_index(ip) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("--interface {ip}: no interface of this host has this address"))
        }
        Err(e) => Err(format!("--interface {ip}: cannot list the interfaces: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interface_addresses_and_refuses_what_names_none() {
        assert_eq!(parse("10.1.2.3"), Ok(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))));
        assert_eq!(parse("fd00::1"), Ok("fd00::1".parse().unwrap()));
        assert_eq!(parse("::1"), Ok(loopback(true)));
        for bad in ["0.0.0.0", "::", "239.1.2.3", "ff15::1", "255.255.255.255", "lo", "10.1.2", ""] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(ipv4_only(loopback(false)), Ok(loopback(false)));
        assert!(ipv4_only(loopback(true)).is_err());
        assert!(same_family(loopback(true), "ff15::1".parse().unwrap(), "--addr").is_ok());
        assert!(same_family(loopback(false), "ff15::1".parse().unwrap(), "--addr").is_err());
    }

    #[test]
    fn loopback_is_on_this_host_and_a_documentation_address_is_not() {
        check_host(loopback(false)).unwrap();
        let e = check_host("203.0.113.77".parse().unwrap()).unwrap_err();
        assert!(e.contains("no interface of this host"), "{e}");
    }
}
