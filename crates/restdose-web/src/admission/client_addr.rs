//! Who the client is: the peer, or (only behind a configured trusted proxy) the address that
//! proxy saw, from `X-Forwarded-For`.

use actix_web::HttpRequest;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client address of a request, as `client_addr` decides it, with the trusted proxies
/// configured for this server.
pub(crate) fn client_addr_of(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_addr(peer, forwarded, trusted)
}

/// The address of the client: the peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
/// were written by the client and may be forged). An entry that cannot be read stops the walk:
/// the last trusted hop is the best that is known. Several header lines count as one list in
/// order. IPv4-mapped IPv6 addresses are treated as IPv4.
pub fn client_addr<'a>(
    peer: Option<IpAddr>,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = forwarded.flat_map(|line| line.split(',')).collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        match parse_forwarded_entry(entry) {
            Some(ip) if is_trusted(&ip) => nearest = ip,
            Some(ip) => return Some(ip),
            None => return Some(nearest),
        }
    }
    Some(nearest)
}

/// One `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:5000`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Parses `trusted_proxies` entries: single addresses or CIDR networks.
pub fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR network"))
        })
        .collect()
}
