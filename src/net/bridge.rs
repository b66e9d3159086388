//! Bridges' outgoing connections, in the same loop as everything else.
//!
//! Nothing here blocks the loop: an address that is not an IP literal is resolved by one
//! small resolver thread, which only calls `getaddrinfo` (through `ToSocketAddrs`) and wakes
//! the loop with the answer; the connect is non-blocking (CONNECT waits in the broker's output
//! until the socket is writable); back-off, timeouts and keepalive are the core's
//! (`broker/bridge/`), which also gives up on a resolver that does not answer. Once open, a
//! bridge's socket is one more entry of the connection slab, read and written like a client's.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;

use log::{error, warn};
use mio::net::TcpStream;
use mio::{Interest, Token, Waker};

use super::{Extra, Layer, Server, Sock, CONN_BASE};
use crate::broker::Dial;

/// The resolver thread's wake-up token.
pub(super) const RESOLVER_TOKEN: usize = CONN_BASE - 2;

/// What the resolver thread is asked: resolve a name, or (`probe`) also check that a
/// connection to it opens (a bridge on a secondary address looking at its first one).
struct Ask {
    dial: Dial,
    probe: bool,
}

/// The addresses found, or why not; for a probe, the address that accepted a connection.
type Answer = (Dial, bool, Result<Vec<SocketAddr>, String>);

/// How long a probe of a bridge's first address may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the server keeps for its bridges: the resolver, and each bridge's TLS client
/// configuration (`None`: plain TCP).
#[derive(Default)]
pub(super) struct Links {
    resolver: Option<Resolver>,
    #[cfg(feature = "tls")]
    pub(super) tls: Vec<Option<Arc<rustls::ClientConfig>>>,
}

/// The resolver thread and its channels (started when first needed).
struct Resolver {
    ask: mpsc::Sender<Ask>,
    answers: mpsc::Receiver<Answer>,
}

impl Resolver {
    fn start(waker: Waker) -> io::Result<Resolver> {
        let (ask, questions) = mpsc::channel::<Ask>();
        let (tell, answers) = mpsc::channel::<Answer>();
        let waker = Arc::new(waker);
        std::thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                for Ask { dial: d, probe } in questions {
                    let r: Result<Vec<SocketAddr>, String> = (d.host.as_str(), d.port)
                        .to_socket_addrs()
                        .map(|a| a.collect())
                        .map_err(|e| e.to_string());
                    let r = match r {
                        // A probe answers with the address that accepted a connection.
                        Ok(addrs) if probe => Ok(addrs
                            .into_iter()
                            .find(|a| {
                                std::net::TcpStream::connect_timeout(a, PROBE_TIMEOUT).is_ok()
                            })
                            .into_iter()
                            .collect()),
                        r => r,
                    };
                    if tell.send((d, probe, r)).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            })?;
        Ok(Resolver { ask, answers })
    }
}

impl Server {
    /// Starts the connections the core says are due.
    pub(super) fn bridges_due(&mut self) {
        let now = self.now();
        while let Some(d) = self.broker.bridge_probe_due(now) {
            self.ask_resolver(d, true, now);
        }
        while let Some(d) = self.broker.bridge_due(now) {
            if let Ok(ip) = d.host.parse::<IpAddr>() {
                let addr = SocketAddr::new(ip, d.port);
                self.bridge_connect(d, &[addr]);
                continue;
            }
            self.ask_resolver(d, false, now);
        }
    }

    /// Hands `d` to the resolver thread (started on first use).
    fn ask_resolver(&mut self, d: Dial, probe: bool, now: crate::broker::Millis) {
        if self.links.resolver.is_none() {
            let started =
                Waker::new(self.poll.registry(), Token(RESOLVER_TOKEN)).and_then(Resolver::start);
            match started {
                Ok(r) => self.links.resolver = Some(r),
                Err(e) => {
                    error!("Unable to start the resolver thread: {e}.");
                    self.resolver_failed(d, probe, "no resolver", now);
                    return;
                }
            }
        }
        if let Some(r) = &self.links.resolver {
            if let Err(mpsc::SendError(a)) = r.ask.send(Ask { dial: d, probe }) {
                self.resolver_failed(a.dial, probe, "resolver gone", now);
            }
        }
    }

    fn resolver_failed(&mut self, d: Dial, probe: bool, why: &str, now: crate::broker::Millis) {
        if probe {
            self.broker.bridge_probed(d.bridge, d.attempt, false, now);
        } else {
            self.broker.bridge_failed(d.bridge, d.attempt, why, now);
        }
    }

    /// Answers from the resolver thread.
    pub(super) fn bridges_resolved(&mut self) {
        loop {
            let Some(r) = &self.links.resolver else {
                return;
            };
            let Ok((d, probe, answer)) = r.answers.try_recv() else {
                return;
            };
            if probe {
                let now = self.now();
                let reachable = answer.is_ok_and(|a| !a.is_empty());
                self.broker
                    .bridge_probed(d.bridge, d.attempt, reachable, now);
                continue;
            }
            match answer {
                Ok(mut addrs) if !addrs.is_empty() => {
                    // IPv4 first: a remote listening on 127.0.0.1 only is reached from
                    // "localhost" at once.
                    addrs.sort_by_key(|a| a.is_ipv6());
                    self.bridge_connect(d, &addrs);
                }
                Ok(_) => {
                    let now = self.now();
                    let why = format!("{}: no address", d.host);
                    self.broker.bridge_failed(d.bridge, d.attempt, &why, now);
                }
                Err(e) => {
                    let now = self.now();
                    let why = format!("{}: {e}", d.host);
                    self.broker.bridge_failed(d.bridge, d.attempt, &why, now);
                }
            }
        }
    }

    /// The TLS client layer of a bridge connection.
    #[cfg(feature = "tls")]
    fn tls_layer(&self, d: &Dial) -> Result<Box<dyn Layer>, String> {
        let Some(Some(config)) = self.links.tls.get(d.bridge) else {
            return Err("no TLS configuration".into());
        };
        let layer = super::tls_client::TlsClientLayer::new(config.clone(), &d.host)?;
        Ok(Box::new(layer))
    }

    #[cfg(not(feature = "tls"))]
    fn tls_layer(&self, _d: &Dial) -> Result<Box<dyn Layer>, String> {
        Err("this midge was built without TLS".into())
    }

    /// Each bridge's TLS client configuration, by bridge index.
    #[cfg(feature = "tls")]
    pub fn set_bridge_tls(&mut self, tls: Vec<Option<Arc<rustls::ClientConfig>>>) {
        self.links.tls = tls;
    }

    /// A non-blocking connect to the first address; the core's CONNECT waits in its output.
    fn bridge_connect(&mut self, d: Dial, addrs: &[SocketAddr]) {
        let now = self.now();
        let mut last = None;
        let mut stream = None;
        for &a in addrs {
            match TcpStream::connect(a) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{a}: {e}")),
            }
        }
        let Some(mut stream) = stream else {
            let why = last.unwrap_or_else(|| "no address".into());
            self.broker.bridge_failed(d.bridge, d.attempt, &why, now);
            return;
        };
        let key = self.socks.vacant_key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(CONN_BASE + key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("Unable to register a bridge connection: {e}.");
            self.broker
                .bridge_failed(d.bridge, d.attempt, &e.to_string(), now);
            return;
        }
        if self.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let extra = if d.tls {
            match self.tls_layer(&d) {
                Ok(layer) => Some(Box::new(Extra {
                    kept: Vec::new(),
                    layers: vec![layer],
                })),
                Err(why) => {
                    let _ = self.poll.registry().deregister(&mut stream);
                    self.broker.bridge_failed(d.bridge, d.attempt, &why, now);
                    return;
                }
            }
        } else {
            None
        };
        self.socks.insert(Sock {
            stream,
            extra,
            writable: true,
            closing: false,
            queued: false,
            // A bridge keeps its layers (TLS) while idle.
            stack: 0,
        });
        if !self.broker.bridge_open(d.bridge, d.attempt, key, now) {
            let mut s = self.socks.remove(key);
            let _ = self.poll.registry().deregister(&mut s.stream);
        }
    }
}
