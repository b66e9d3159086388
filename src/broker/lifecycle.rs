//! How connections and sessions end: DISCONNECT, [`Broker::close`] (the log line, the MQTT 5
//! DISCONNECT that says why, the will), session expiry and delayed wills, and the end of a
//! session (its subscriptions go, a will still waiting is published).

use log::{debug, info};

use super::session::NEVER;
use super::timers::after_secs;
use super::{reason, shared, unmounted, Broker, ConnId, Fault, Handled, Millis, SessionId};
use super::{Key, State, Version};
use crate::auth::acl::Access;
use crate::mqtt::{self, Properties, QoS};

/// Why a connection ends; decides the log line, the MQTT 5 DISCONNECT reason code and whether
/// the will is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client sent DISCONNECT: the will is discarded [MQTT-3.1.2-10] (unless MQTT 5
    /// reason 0x04 asked for it).
    Disconnect,
    /// The client closed the socket without DISCONNECT.
    Eof,
    /// The socket failed.
    SocketError,
    /// Nothing heard for 1.5 × keepalive [MQTT-3.1.2-24], or no CONNECT in time.
    Timeout,
    /// The client broke the protocol; the MQTT 5 reason code to send.
    Protocol(u8),
    /// The client broke the protocol, and is not told why (as mosquitto does for a broken
    /// CONNECT, a second CONNECT, a remaining length of five bytes or a PINGREQ with a body).
    Dropped,
    /// Another connection took over the client id [MQTT-3.1.4-2]; whether its CONNECT asked
    /// for a clean start.
    Takeover(bool),
    /// CONNECT was refused with a CONNACK return code.
    Refused,
    /// The broker is shutting down.
    Shutdown,
}

impl Broker {
    /// DISCONNECT from the client: the will is discarded [MQTT-3.1.2-10], unless an MQTT 5
    /// client asks for it with reason 0x04.
    pub(super) fn on_disconnect(
        &mut self,
        id: ConnId,
        sid: SessionId,
        code: u8,
        props: &Properties<'_>,
        now: Millis,
    ) -> Handled {
        if let Some(interval) = props.session_expiry_interval {
            let s = &mut self.sessions[sid];
            // [MQTT-3.14.2-2]: a session that was to end at disconnect cannot be extended.
            if s.expiry_interval == 0 && interval != 0 {
                return Err(Fault::protocol(
                    reason::PROTOCOL_ERROR,
                    "[MQTT-3.14.2-2] DISCONNECT raised a session expiry interval of 0",
                ));
            }
            s.expiry_interval = interval;
        }
        if code == reason::DISCONNECT_WITH_WILL {
            // The will is published as if the connection had been lost.
            self.close(id, Close::Eof, now);
        } else {
            self.close(id, Close::Disconnect, now);
        }
        Ok(())
    }

    /// Session deadlines due at `now`: a delayed will whose time has come is published, and a
    /// session whose time is up ends.
    pub(super) fn session_timers_due(&mut self, now: Millis) {
        while let Some((sid, serial)) = self.timers.pop_session(now) {
            let Some(s) = self.sessions.get_mut(sid) else {
                continue;
            };
            if s.serial != serial || s.conn.is_some() {
                continue;
            }
            if let Some((at, _)) = &s.flow.pending_will {
                if *at <= now {
                    if let Some((_, w)) = s.flow.pending_will.take() {
                        debug!("Sending delayed will of {} to '{}'.", s.client_id, w.topic);
                        self.publish(w, None);
                    }
                }
            }
            let s = &self.sessions[sid];
            if s.expires_at <= now {
                info!("Client {} expired.", s.client_id);
                self.stats.expired += 1;
                self.end_session(sid);
            }
        }
    }

    /// Ends a session: its subscriptions go, and a will still waiting for its delay is sent
    /// now (the will goes at the earlier of its delay and the session's end).
    pub(super) fn end_session(&mut self, sid: SessionId) {
        self.hand_over_shared(sid, true);
        let keys: Vec<Box<str>> = self.sessions[sid]
            .subs
            .iter()
            .map(|(k, _, _)| k.clone())
            .collect();
        for k in keys {
            self.unsubscribe_key(sid, &k);
        }
        let mut s = self.sessions.remove(sid);
        self.by_id.remove(&s.client_id, sid, &self.sessions);
        if let Some((_, w)) = s.flow.get_mut().and_then(|f| f.pending_will.take()) {
            debug!("Sending will of {} to '{}'.", s.client_id, w.topic);
            self.publish(w, None);
        }
    }

    fn will_allowed(&self, listener: usize, user: Option<&str>, client: &str, topic: &str) -> bool {
        if topic.starts_with("$SYS") {
            return false;
        }
        match &self.cfg.listeners[listener].acl {
            None => true,
            Some(acl) => {
                let mount = self.cfg.listeners[listener].mount_point.as_deref();
                acl.check(user, client, unmounted(mount, topic), Access::Write)
            }
        }
    }

    /// Ends connection `id`: logs why, tells an MQTT 5 client why in a DISCONNECT, detaches (or
    /// ends) its session and publishes its will unless it sent DISCONNECT. The socket is
    /// closed by the network layer.
    pub fn close(&mut self, id: ConnId, why: Close, now: Millis) {
        self.now = now;
        let name = self.client_name(id).to_owned();
        let Some(conn) = self.live(id) else {
            return;
        };
        let was_connected = conn.state == State::Connected;
        let v5 = conn.version == Version::V5;
        if was_connected && v5 {
            let code = match why {
                Close::Protocol(c) => Some(c),
                Close::Timeout => Some(reason::KEEP_ALIVE_TIMEOUT),
                Close::Takeover(_) => Some(reason::SESSION_TAKEN_OVER),
                Close::Shutdown => Some(reason::SERVER_SHUTTING_DOWN),
                _ => None,
            };
            if let Some(code) = code {
                mqtt::encode_reason(
                    conn.out.bytes(),
                    mqtt::DISCONNECT,
                    code,
                    &Properties::default(),
                );
            }
        }
        conn.state = State::Closed;
        let (will, will_delay) = match conn.extra.get_mut() {
            Some(e) => (e.will.take(), e.will_delay),
            None => (None, 0),
        };
        let session = conn.session.take();
        let listener = conn.listener as usize;
        let username = session.and_then(|sid| self.sessions[sid].username.clone());
        match why {
            Close::Disconnect => info!("Client {name} disconnected."),
            Close::Eof => info!("Client {name} closed its connection."),
            Close::SocketError => info!("Socket error on client {name}, disconnecting."),
            Close::Timeout => info!("Client {name} has exceeded timeout, disconnecting."),
            Close::Shutdown => info!("Client {name} disconnected: server shutting down."),
            Close::Protocol(_) | Close::Dropped | Close::Takeover(_) | Close::Refused => {}
        }
        self.mark(id);
        self.bridge_closed(listener, id, now);
        let will = will.filter(|w| {
            was_connected
                && why != Close::Disconnect
                && if self.will_allowed(listener, username.as_deref(), &name, &w.topic) {
                    true
                } else {
                    info!("Denied will of {name} to '{}'.", w.topic);
                    false
                }
        });
        let Some(sid) = session else {
            if let Some(w) = will {
                self.publish(w, None);
            }
            return;
        };
        let s = &mut self.sessions[sid];
        s.conn = Key::NONE;
        let blockers = s
            .flow
            .get_mut()
            .map(|f| std::mem::take(&mut f.blockers))
            .unwrap_or_default();
        self.resume(&blockers);
        if shared::has_shared(&self.sessions[sid]) {
            self.hand_over_shared(sid, false);
        }
        let s = &mut self.sessions[sid];
        // On takeover, as mosquitto 2.0: the will goes only if the old session or the new
        // CONNECT is clean (3.1.1 clean session, 5.0 session expiry 0 / clean start); a
        // delayed will is cancelled by the session the new connection resumes.
        let will = match why {
            Close::Takeover(new_clean) if !(s.clean || new_clean) => None,
            Close::Takeover(false) if will_delay > 0 => None,
            _ => will,
        };
        if let Some(w) = will {
            if will_delay > 0 && s.expiry_interval > 0 {
                // MQTT 5 Will Delay: sent later, unless the session is resumed first.
                let at = after_secs(now, will_delay);
                s.flow.pending_will = Some((at, w));
                self.timers.arm_session(sid, s.serial, at);
            } else {
                debug!("Sending will of {name} to '{}'.", w.topic);
                self.publish(w, None);
            }
        }
        let s = &mut self.sessions[sid];
        if s.expiry_interval == 0 {
            self.end_session(sid);
            return;
        }
        if !self.cfg.queue_qos0_messages {
            if let Some(f) = s.flow.get_mut() {
                f.queue.retain(|q| q.qos != QoS::AtMostOnce);
                f.queued_bytes = f.queue.iter().map(|q| q.msg.payload.len()).sum();
            }
        }
        s.flow.trim();
        if s.expiry_interval != NEVER {
            let at = after_secs(now, s.expiry_interval);
            s.expires_at = at;
            self.timers.arm_session(sid, s.serial, at);
        }
    }
}
