//! Signals as events of the loop: each handled signal sets its flag and writes a byte to a
//! socket pair whose read end the loop polls, so a signal wakes `poll` and is handled between
//! batches, never inside a signal handler.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use log::{error, info};
use mio::{Interest, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use super::{Reload, Server, SIGNAL_TOKEN};

/// What the loop is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload the password and ACL files.
    Reload,
    /// SIGTERM or SIGINT: stop cleanly.
    Stop,
    /// SIGUSR1: save the in-memory state now.
    Save,
}

pub struct Signals {
    pub(crate) wake: mio::net::UnixStream,
    flags: Vec<(Signal, Arc<AtomicBool>)>,
}

impl Signals {
    pub fn new() -> io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for (sig, what) in [
            (SIGHUP, Signal::Reload),
            (SIGTERM, Signal::Stop),
            (SIGINT, Signal::Stop),
            (SIGUSR1, Signal::Save),
        ] {
            let flag = match flags.iter().find(|(w, _)| *w == what) {
                Some((_, f)) => Arc::clone(f),
                None => {
                    let f = Arc::new(AtomicBool::new(false));
                    flags.push((what, Arc::clone(&f)));
                    f
                }
            };
            // The flag first, then the wake-up, so the loop always sees the flag it was woken
            // for.
            signal_hook::flag::register(sig, flag)?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(Signals {
            wake: mio::net::UnixStream::from_std(read),
            flags,
        })
    }

    /// Drains the wake-up bytes and returns the signals that arrived, in a fixed order.
    pub fn take(&mut self) -> Vec<Signal> {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

impl Server {
    /// Handles SIGHUP (calling `reload`), SIGTERM and SIGINT (run returns) from now on.
    pub fn handle_signals(&mut self, mut signals: Signals, reload: Reload) -> io::Result<()> {
        self.poll.registry().register(
            &mut signals.wake,
            Token(SIGNAL_TOKEN),
            Interest::READABLE,
        )?;
        self.signals = Some(signals);
        self.reload = Some(reload);
        Ok(())
    }

    /// Handles pending signals; true when the loop must stop.
    pub(super) fn on_signals(&mut self) -> bool {
        let Some(signals) = self.signals.as_mut() else {
            return false;
        };
        let mut stop = false;
        for sig in signals.take() {
            match sig {
                Signal::Reload => {
                    info!("Reloading config.");
                    if let Some(reload) = self.reload.as_mut() {
                        match reload() {
                            Ok(r) => {
                                self.broker.set_policies(r.policies);
                                if let Some(stacks) = r.stacks {
                                    self.stacks = stacks;
                                }
                            }
                            Err(e) => error!("Error: reload failed, keeping the old rules: {e}"),
                        }
                    }
                }
                Signal::Stop => stop = true,
                Signal::Save => self.save(),
            }
        }
        stop
    }
}
