//! The client's address behind reverse proxies.
//!
//! Behind nginx or a Kubernetes ingress every connection comes from the
//! proxy, so the per-IP rate limit, the sign-in throttle and the audit log
//! would all see one address. When the peer is a proxy listed in
//! `server.trusted_proxies`, the client is the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy (what each proxy
//! appended; anything further left was written by the client and can be
//! forged). Requests from anyone else are taken at their peer address, so
//! a client cannot choose its own by sending the header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// An address or a network: `10.0.0.0/8`, `fd00::/8`, `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Reads `ADDRESS` or `ADDRESS/PREFIX`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr =
            addr.trim().parse().map_err(|_| "is not an IP address or network (10.0.0.0/8)".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("has a prefix length that is not 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client's address as resolved for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client's address from a request's extensions: the resolved one, else
/// the peer's; `None` without connect info.
#[must_use]
pub fn of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ClientIp>().map(|c| c.0).or_else(|| extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}

/// The client behind `peer`, given the `X-Forwarded-For` values in order.
#[must_use]
pub fn resolve<'a>(peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>, trusted: &[Network]) -> IpAddr {
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !trusted_ip(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A malformed hop ends the chain: trust nothing to its left.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusted_ip(ip) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The proxies to believe, as middleware state.
#[derive(Debug, Clone)]
pub struct TrustedProxies(pub std::sync::Arc<[Network]>);

/// Middleware: puts the [`ClientIp`] in the request's extensions (nothing
/// when the server runs without connect info, as in `oneshot` tests).
pub async fn identify(State(trusted): State<TrustedProxies>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let forwarded = request.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let ip = resolve(peer.ip(), forwarded, &trusted.0);
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|n| Network::parse(n).unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let ten = Network::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.200.3.4")) && !ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
        assert!(Network::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Network::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Network::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(Network::parse("nginx").unwrap_err().contains("not an IP"));
    }

    #[test]
    fn only_trusted_peers_may_name_the_client() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        // Straight from the internet: the header is the client's own words.
        assert_eq!(resolve(ip("203.0.113.9"), ["1.1.1.1"].into_iter(), &trusted), ip("203.0.113.9"));
        // Through nginx on loopback.
        assert_eq!(resolve(ip("127.0.0.1"), ["198.51.100.7"].into_iter(), &trusted), ip("198.51.100.7"));
        // A forged left part is skipped: the right-most untrusted hop counts.
        let chain = ["6.6.6.6, 198.51.100.7, 10.1.1.1"];
        assert_eq!(resolve(ip("127.0.0.1"), chain.into_iter(), &trusted), ip("198.51.100.7"));
        // Several headers are one list; ports and brackets are allowed.
        let split = ["6.6.6.6", "[2001:db8::5]:443"];
        assert_eq!(resolve(ip("10.0.0.2"), split.into_iter(), &trusted), ip("2001:db8::5"));
        // No header, or garbage: the proxy itself.
        assert_eq!(resolve(ip("127.0.0.1"), std::iter::empty(), &trusted), ip("127.0.0.1"));
        assert_eq!(resolve(ip("127.0.0.1"), ["unknown"].into_iter(), &trusted), ip("127.0.0.1"));
        // Nothing trusted: headers are ignored.
        assert_eq!(resolve(ip("127.0.0.1"), ["198.51.100.7"].into_iter(), &[]), ip("127.0.0.1"));
    }
}
