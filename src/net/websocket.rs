//! The WebSocket [`Layer`]: [`ws::Ws`] (no IO) plus the listener's settings and its `http_dir`
//! (read here, at the edge).

use std::io::{self, Write};
use std::path::PathBuf;
use std::rc::Rc;

use log::{info, warn};

use super::ws::{self, Action, HttpError, Why, Ws};
use super::{http, Layer, Stack};
use crate::config::Listener;

/// A WebSocket listener's settings, shared by its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `websockets_headers_size` (0: mosquitto's default).
    pub headers_size: usize,
    /// The largest frame or data message: the broker's packet limit.
    pub max_message: u32,
    pub http_dir: Option<PathBuf>,
    /// `websockets_log_level`: bit 2 (notice) logs upgrades, bit 3 (info) HTTP requests, under
    /// `log_type websockets`.
    pub log_level: u32,
}

/// One connection's WebSocket layer.
pub struct WsLayer {
    ws: Ws,
    settings: Rc<Settings>,
}

impl WsLayer {
    pub fn new(settings: Rc<Settings>) -> WsLayer {
        WsLayer {
            ws: Ws::new(),
            settings,
        }
    }
}

impl Layer for WsLayer {
    fn decode(&mut self, input: &[u8], up: &mut Vec<u8>) -> Result<(), String> {
        let s = &self.settings;
        let headers = match s.headers_size {
            0 => ws::DEFAULT_HEADERS_SIZE,
            n => n,
        };
        match self.ws.receive(input, up, headers, s.max_message) {
            Action::More => Ok(()),
            Action::Upgraded(protocol) => {
                if s.log_level & 4 != 0 {
                    info!(target: "websockets", "WebSocket upgrade, subprotocol {protocol}.");
                }
                Ok(())
            }
            Action::File { target, head } => {
                let (status, response) = match &s.http_dir {
                    Some(dir) => http::respond(dir, &target, head),
                    None => {
                        let e = HttpError {
                            status: 404,
                            message: "this listener serves no files (no http_dir)",
                        };
                        (404, ws::error_response(e, head))
                    }
                };
                if s.log_level & 8 != 0 {
                    let m = if head { "HEAD" } else { "GET" };
                    info!(target: "websockets", "HTTP {m} {target}: {status}.");
                }
                self.ws.respond(response);
                Ok(())
            }
            // The close is answered; the connection ends once the answer is written.
            Action::Close(Why::Peer(_)) => Ok(()),
            Action::Close(Why::Protocol(code, why)) => {
                Err(format!("WebSocket protocol error ({code}): {why}"))
            }
            Action::Close(Why::Refused(e)) => Err(format!(
                "HTTP request refused with {}: {}",
                e.status, e.message
            )),
        }
    }

    fn encode(&mut self, data: &[u8]) -> usize {
        self.ws.encode(data)
    }

    fn send(&mut self, data: &[u8], down: &mut dyn Write) -> io::Result<usize> {
        self.ws.send(data, down)
    }

    fn drain(&mut self, down: &mut dyn Write) -> io::Result<()> {
        self.ws.drain(down)
    }

    fn pending(&self) -> bool {
        self.ws.has_pending()
    }

    fn close(&mut self) {
        self.ws.close();
    }

    fn finished(&self) -> bool {
        self.ws.finished()
    }

    fn idle(&self) -> bool {
        self.ws.idle()
    }
}

/// The largest packet the broker accepts under `cfg` (as `Broker::new` computes it): the
/// bound on WebSocket frames and messages.
pub fn packet_limit(cfg: &crate::broker::Config) -> usize {
    let max = crate::mqtt::MAX_REMAINING_LENGTH + 5;
    let mut limit = if cfg.message_size_limit > 0 {
        cfg.message_size_limit
            .saturating_add(2 + 65_535 + 2 + 5 + 65_536)
            .min(max)
    } else {
        max
    };
    if cfg.max_packet_size > 0 {
        limit = limit.min(cfg.max_packet_size);
    }
    limit
}

/// The stacks of `listeners` (in [`super::bind`]'s order): a WebSocket layer for those with
/// `protocol websockets`, plain TCP for the others. `max_message` is the broker's packet limit.
pub fn stacks(
    listeners: &[Listener],
    headers_size: u16,
    log_level: u32,
    max_message: usize,
) -> Vec<Stack> {
    listeners
        .iter()
        .map(|l| {
            if !l.websockets {
                return Stack::default();
            }
            let settings = Rc::new(Settings {
                headers_size: headers_size as usize,
                max_message: max_message.min(u32::MAX as usize) as u32,
                // Absolute from the start, whatever the working directory becomes later.
                http_dir: l.http_dir.as_ref().map(|d| {
                    let d = PathBuf::from(d);
                    if !d.is_dir() {
                        warn!(
                            "Warning: http_dir {} is not a directory: its files will not be found.",
                            d.display()
                        );
                    }
                    std::path::absolute(&d).unwrap_or(d)
                }),
                log_level,
            });
            let fresh = settings.clone();
            Stack {
                layers: Some(Rc::new(move || {
                    vec![Box::new(WsLayer::new(fresh.clone())) as Box<dyn Layer>]
                })),
                // An idle upgraded connection drops its layer and gets this one back.
                resume: Some(Rc::new(move || {
                    vec![Box::new(WsLayer {
                        ws: Ws::open(),
                        settings: settings.clone(),
                    }) as Box<dyn Layer>]
                })),
            }
        })
        .collect()
}
