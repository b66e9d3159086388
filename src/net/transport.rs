//! The transport seam: a [`Layer`] (TLS, WebSocket framing) and a listener's [`Stack`] of them,
//! and the drain that moves their output down to the socket (see the `net` module docs for the
//! read and write paths through them).

use std::io::{self, Write};

use mio::net::TcpStream;

/// One layer of a connection's transport (TLS, WebSocket framing). It does no IO: the network
/// loop moves bytes between it, its neighbours and the socket (see the module docs).
pub trait Layer {
    /// Takes every byte of `input`, which came from below (the socket or the layer under this
    /// one), and appends what they carry for the layer above to `up`. Bytes it must answer
    /// with are queued for [`Layer::drain`]. An error closes the connection; its message says
    /// why, for the log.
    fn decode(&mut self, input: &[u8], up: &mut Vec<u8>) -> Result<(), String>;
    /// Takes bytes from above to send and returns how many it took: fewer, or 0, when its
    /// bounded output buffer is full (they are offered again after a drain).
    fn encode(&mut self, data: &[u8]) -> usize;
    /// Writes queued output into `down` until none is left (`Ok`), `down` is full
    /// (`WouldBlock`), or it fails.
    fn drain(&mut self, down: &mut dyn Write) -> io::Result<()>;
    /// Whether output is queued.
    fn pending(&self) -> bool;
    /// Queues the layer's goodbye (TLS close_notify, WebSocket close frame).
    fn close(&mut self);
    /// For the top layer: writes broker output `data` into `down` (the layer below, or the
    /// socket) and returns how many bytes of it went. A layer that only adds framing writes
    /// its header and `data` itself without copying them (WebSocket); the default takes them
    /// into the layer's buffer with [`Layer::encode`].
    fn send(&mut self, data: &[u8], down: &mut dyn Write) -> io::Result<usize> {
        let _ = down;
        Ok(self.encode(data))
    }
    /// The layer has had its last word (an HTTP answer, the reply to a WebSocket close): once
    /// everything queued is written, the connection ends as if the client had closed it.
    fn finished(&self) -> bool {
        false
    }
    /// The user name this layer established for the client (TLS: from its certificate, with
    /// `use_identity_as_username` or `use_subject_as_username`), handed over once.
    fn take_identity(&mut self) -> Option<String> {
        None
    }
    /// Holds nothing that a layer from its stack's `resume` would not hold (a WebSocket
    /// between frames): the connection may drop its layers while idle and get fresh ones
    /// when bytes come or go again.
    fn idle(&self) -> bool {
        false
    }
}

/// Builds a new connection's layers, bottom first.
pub type NewLayers = std::rc::Rc<dyn Fn() -> Vec<Box<dyn Layer>>>;

/// What a listener puts between its sockets and the broker. The default is plain TCP.
#[derive(Clone, Default)]
pub struct Stack {
    /// `None` (plain TCP) allocates nothing per connection.
    pub layers: Option<NewLayers>,
    /// The layers of a connection past its handshake, given back to an idle connection that
    /// dropped its own (see [`Layer::idle`]); `None`: its connections keep their layers.
    pub resume: Option<NewLayers>,
}

impl Stack {
    /// `self`'s layers below `above`'s: TLS under WebSocket makes wss.
    pub fn under(self, above: Stack) -> Stack {
        match (self.layers, above.layers) {
            (Some(low), Some(high)) => Stack {
                layers: Some(std::rc::Rc::new(move || {
                    let mut v = low();
                    v.extend(high());
                    v
                })),
                // Only a whole stack of idle-capable layers could be dropped and resumed.
                resume: None,
            },
            (Some(low), None) => Stack {
                layers: Some(low),
                resume: self.resume,
            },
            (None, high) => Stack {
                layers: high,
                resume: above.resume,
            },
        }
    }
}

/// `Layer::encode` of the layer below, as a `Write` for the layer above's `drain`.
pub(super) struct Down<'a>(pub(super) &'a mut dyn Layer);

impl Write for Down<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.encode(buf) {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Drains every layer toward the socket: `Ok` once nothing is queued anywhere, `WouldBlock`
/// when the socket is full.
pub(super) fn drain_layers(
    layers: &mut [Box<dyn Layer>],
    stream: &mut TcpStream,
) -> io::Result<()> {
    let mut rounds = 0;
    loop {
        for i in (0..layers.len()).rev() {
            let (below, this) = layers.split_at_mut(i);
            let r = match below.last_mut() {
                Some(b) => this[0].drain(&mut Down(b.as_mut())),
                None => this[0].drain(stream),
            };
            match r {
                // A layer above a full one waits for the one below to drain.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && i > 0 => {}
                r => r?,
            }
        }
        if !layers.iter().any(|l| l.pending()) {
            return Ok(());
        }
        // The bottom layer drained (or we would have returned WouldBlock): the ones above
        // have room again.
        rounds += 1;
        if rounds > 64 {
            // A layer that says it has output but writes none: wait for the socket.
            return Err(io::ErrorKind::WouldBlock.into());
        }
    }
}
