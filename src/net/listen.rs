//! Listening sockets: binding the configured listeners (or mosquitto's local-only pair) and
//! accepting their connections into the slab.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, ToSocketAddrs};

use log::{error, info, warn};
use mio::net::TcpListener;
use mio::{Interest, Token};

use super::sock::{Extra, Sock};
use super::{Server, CONN_BASE};
use crate::config::{Domain, Listener};

/// A bound listening socket.
pub struct Bound {
    pub(super) listener: TcpListener,
    pub addr: SocketAddr,
    /// Index of the listener configuration it belongs to (the broker's listener policy).
    pub index: usize,
}

/// Binds the configured listeners (index i of `listeners` becomes policy i), or mosquitto's
/// local-only pair (policy 0) when there are none.
pub fn bind(listeners: &[Listener], local_only_port: u16) -> io::Result<Vec<Bound>> {
    let mut out = Vec::new();
    // (addresses to try, whether failing is tolerated, interface, v6 only)
    type Spec = (Vec<SocketAddr>, bool, Option<String>, bool);
    let specs: Vec<Spec> = if listeners.is_empty() {
        let p = local_only_port;
        vec![
            (
                vec![SocketAddr::from(([127, 0, 0, 1], p))],
                false,
                None,
                false,
            ),
            (
                vec![SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], p))],
                true,
                None,
                true,
            ),
        ]
    } else {
        let mut v = Vec::new();
        for l in listeners {
            let v4 = SocketAddr::from(([0u8; 4], l.port));
            let v6 = SocketAddr::from(([0u16; 8], l.port));
            let addrs: Vec<SocketAddr> = match &l.bind {
                // [::] accepts IPv4 too (as IPv4-mapped addresses); 0.0.0.0 if IPv6 is off.
                None => match l.socket_domain {
                    None => vec![v6, v4],
                    Some(Domain::Ipv4) => vec![v4],
                    Some(Domain::Ipv6) => vec![v6],
                },
                Some(host) => (host.as_str(), l.port)
                    .to_socket_addrs()
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("listener address '{host}': {e}"))
                    })?
                    .filter(|a| match l.socket_domain {
                        None => true,
                        Some(Domain::Ipv4) => a.is_ipv4(),
                        Some(Domain::Ipv6) => a.is_ipv6(),
                    })
                    .collect(),
            };
            let v6_only = l.socket_domain == Some(Domain::Ipv6);
            v.push((addrs, false, l.bind_interface.clone(), v6_only));
        }
        v
    };
    for (index, (addrs, optional, iface, v6_only)) in specs.into_iter().enumerate() {
        let index = if listeners.is_empty() { 0 } else { index };
        let wildcard = addrs.len() == 2 && addrs.iter().all(|a| a.ip().is_unspecified());
        let mut last_err = None;
        let mut bound_any = false;
        for addr in addrs {
            match listen(addr, iface.as_deref(), v6_only || addr.ip().is_loopback()) {
                Ok(listener) => {
                    let local = listener.local_addr()?;
                    info!(
                        "Opening {} listen socket on port {}.",
                        if local.is_ipv4() { "ipv4" } else { "ipv6" },
                        local.port()
                    );
                    out.push(Bound {
                        listener,
                        addr: local,
                        index,
                    });
                    bound_any = true;
                    if wildcard {
                        // [::] already took the IPv4 side.
                        break;
                    }
                }
                Err(e) => {
                    if optional || (wildcard && addr.is_ipv6()) {
                        warn!(
                            "Could not open ipv6 listen socket on port {}: {e}.",
                            addr.port()
                        );
                    }
                    last_err = Some(io::Error::new(
                        e.kind(),
                        format!("cannot listen on {addr}: {e}"),
                    ));
                }
            }
        }
        // In local only mode a machine without IPv6 still gets its 127.0.0.1 listener.
        if !bound_any && !optional {
            return Err(last_err.unwrap_or_else(|| io::Error::other("no address to bind")));
        }
    }
    if out.is_empty() {
        return Err(io::Error::other("no listener could be opened"));
    }
    Ok(out)
}

/// A listening socket: SO_REUSEADDR, IPv6 sockets dual-stack unless `v6_only`, bound to
/// `iface` (SO_BINDTODEVICE) when given, non-blocking.
fn listen(addr: SocketAddr, iface: Option<&str>, v6_only: bool) -> io::Result<TcpListener> {
    use socket2::{Domain as D, Socket, Type};
    let domain = if addr.is_ipv4() { D::IPV4 } else { D::IPV6 };
    let sock = Socket::new(domain, Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(v6_only)?;
    }
    if let Some(name) = iface {
        sock.bind_device(Some(name.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("bind_interface {name}: {e}")))?;
    }
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(TcpListener::from_std(sock.into()))
}

pub(super) fn peer_string(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        ip => ip,
    };
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{}", addr.port()),
        IpAddr::V6(v6) => format!("{v6}:{}", addr.port()),
    }
}

impl Server {
    pub(super) fn accept(&mut self, listener: usize) {
        let Some(b) = self.listeners.get(listener) else {
            return;
        };
        let index = b.index;
        loop {
            match b.listener.accept() {
                Ok((mut stream, addr)) => {
                    let key = self.socks.vacant_key();
                    if key >= usize::MAX - CONN_BASE {
                        drop(stream);
                        continue;
                    }
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(CONN_BASE + key),
                        Interest::READABLE,
                    ) {
                        error!("Unable to register new connection: {e}.");
                        continue;
                    }
                    if self.nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    let extra = self
                        .stacks
                        .get(index)
                        .and_then(|s| s.layers.as_ref())
                        .map(|new| {
                            Box::new(Extra {
                                kept: Vec::new(),
                                layers: new(),
                            })
                        });
                    let resumable = self.stacks.get(index).is_some_and(|s| s.resume.is_some());
                    self.socks.insert(Sock {
                        stream,
                        extra,
                        writable: false,
                        closing: false,
                        queued: true,
                        stack: if resumable {
                            index
                                .checked_add(1)
                                .and_then(|i| u8::try_from(i).ok())
                                .unwrap_or(0)
                        } else {
                            0
                        },
                    });
                    let now = self.now();
                    self.broker.open(key, &peer_string(addr), index, now);
                    if self.broker.is_closed(key) {
                        // Refused (max_connections): not a byte read or written, whatever
                        // the transport would have answered.
                        if let Some(s) = self.socks.get_mut(key) {
                            s.closing = true;
                            let _ = s.stream.shutdown(Shutdown::Both);
                        }
                        self.to_release.push(key);
                        continue;
                    }
                    // Data may have arrived with the connection; edge-triggered readiness
                    // will not report it again.
                    self.ready.push(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE/ENFILE and the like: leave the backlog and try again shortly
                    // rather than spin on a socket that stays readable.
                    error!("Unable to accept new connection: {e}.");
                    self.accept_retry = Some(self.now() + 100);
                    return;
                }
            }
        }
    }
}
