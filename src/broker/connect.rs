//! CONNECT, in two steps as in mosquitto (`handle__connect`, then `connect__on_authorised`):
//! [`Broker::validate_connect`] checks the packet and the listener's policy (authentication
//! data, the will, the client id, the credentials) and changes nothing; then
//! [`Broker::admit`] takes over an existing connection with the same client id, resumes or
//! creates the session, sets the connection up and sends CONNACK.

use std::collections::HashMap;
use std::rc::Rc;

use log::info;

use super::conn::V5Conn;
use super::session::{Session, NEVER};
use super::timers::{after_secs, keepalive_deadline};
use super::{connack, mounted, reason, Broker, Close, ConnId, Fault, Handled, Message, Millis};
use super::{Key, SessionId, State};
use crate::mqtt::{self, Properties, QoS, Version};

impl Broker {
    /// CONNECT, the first packet of a connection.
    pub(super) fn on_connect(&mut self, id: ConnId, c: mqtt::Connect<'_>, now: Millis) -> Handled {
        let Some(conn) = self.live(id) else {
            return Ok(());
        };
        conn.version = c.version;
        let listener = conn.listener as usize;
        // use_identity_as_username / use_subject_as_username: the certificate's name replaces
        // the CONNECT's user name and password, as in mosquitto.
        let cert_name = conn.extra.get_mut().and_then(|e| e.cert_name.take());
        let mut c = c;
        if self.cfg.listeners[listener].cert_username {
            c.username = cert_name.as_deref();
            c.password = None;
        }
        let client_id = self.validate_connect(listener, &c)?;
        self.admit(id, listener, &c, client_id, now);
        Ok(())
    }

    /// Checks a CONNECT against the protocol and listener `listener`'s policy. Returns the
    /// client id to use (empty: one is to be assigned), or why the CONNECT is refused.
    fn validate_connect(&self, listener: usize, c: &mqtt::Connect<'_>) -> Result<String, Fault> {
        let v5 = c.version == Version::V5;
        // Authentication Data without an Authentication Method is ignored, as mosquitto 2.0
        // ignores it (section 3.1.2.11.10 calls it a Protocol Error).
        if let Some(w) = &c.will {
            // [MQTT-3.2.2-12] [MQTT-3.2.2-13]: a will the server could not publish as asked is
            // refused at CONNECT (MQTT 5 says why; 3.1.1 has no code for it, as in mosquitto).
            let policy = &self.cfg.listeners[listener];
            if w.qos > policy.max_qos {
                return Err(Fault::WillRefused {
                    code5: reason::QOS_NOT_SUPPORTED,
                    why: "will QoS over max_qos [MQTT-3.2.2-12]",
                });
            } else if w.retain && !self.cfg.retain_available {
                return Err(Fault::WillRefused {
                    code5: reason::RETAIN_NOT_SUPPORTED,
                    why: "retained will while retain_available is false [MQTT-3.2.2-13]",
                });
            }
        }
        // A max_keepalive below 65535 refuses a 3.1/3.1.1 client asking for more, or for none
        // (CONNACK 2, as mosquitto 2.0.20 does: CVE-2020-13849); MQTT 5 clients are told the
        // server's keepalive instead.
        let max_keepalive = self.cfg.max_keepalive;
        if !v5 && max_keepalive < u16::MAX && (c.keep_alive > max_keepalive || c.keep_alive == 0) {
            return Err(Fault::Refused {
                code: connack::IDENTIFIER_REJECTED,
                code5: reason::CLIENT_IDENTIFIER_NOT_VALID,
                why: "keepalive over max_keepalive",
            });
        }
        if c.props.authentication_method.is_some() {
            // Enhanced authentication is not offered.
            return Err(Fault::Refused {
                code: connack::NOT_AUTHORIZED,
                code5: reason::BAD_AUTHENTICATION_METHOD,
                why: "unsupported authentication method",
            });
        }
        let policy = &self.cfg.listeners[listener];
        let mut client_id: String = if c.client_id.is_empty() {
            // [MQTT-3.1.3-8]: in 3.1.1 an empty id needs a clean session (and MQTT 3.1 allows
            // none); MQTT 5 allows it either way [MQTT-3.1.3-6].
            if c.version == Version::V31
                || (!c.clean_session && !v5)
                || !policy.allow_zero_length_clientid
            {
                return Err(Fault::Refused {
                    code: connack::IDENTIFIER_REJECTED,
                    code5: reason::CLIENT_IDENTIFIER_NOT_VALID,
                    why: "empty client id not allowed [MQTT-3.1.3-8]",
                });
            }
            String::new()
        } else {
            c.client_id.to_owned()
        };
        if policy.use_username_as_clientid {
            match c.username {
                Some(u) => client_id = u.to_owned(),
                None => {
                    return Err(Fault::Refused {
                        code: connack::NOT_AUTHORIZED,
                        code5: reason::NOT_AUTHORIZED,
                        why: "not authorised (use_username_as_clientid needs a user name)",
                    })
                }
            }
        }
        if let Some(prefix) = &self.cfg.clientid_prefixes {
            if !client_id.starts_with(prefix.as_str()) && !client_id.is_empty() {
                return Err(Fault::Refused {
                    code: connack::IDENTIFIER_REJECTED,
                    code5: reason::CLIENT_IDENTIFIER_NOT_VALID,
                    why: "client id lacks the required clientid_prefixes",
                });
            }
        }
        if self.is_bridge_id(&client_id) {
            return Err(Fault::Refused {
                code: connack::IDENTIFIER_REJECTED,
                code5: reason::CLIENT_IDENTIFIER_NOT_VALID,
                why: "client id is a bridge's local client id",
            });
        }
        // Authentication, as mosquitto 2.0: a user name is checked against the password file
        // if there is one; without one, a client is admitted only when anonymous access is on.
        if policy.cert_username {
            // The certificate was verified in the handshake; one without a usable name is
            // refused as a bad user name (mosquitto's answer).
            return match c.username {
                Some(_) => Ok(client_id),
                None => Err(Fault::Refused {
                    code: connack::BAD_USERNAME_OR_PASSWORD,
                    code5: reason::BAD_USER_NAME_OR_PASSWORD,
                    why: "no user name in the client's certificate (use_identity_as_username)",
                }),
            };
        }
        // A user name without a password is refused, as in mosquitto. Every refusal answers
        // Not authorized (0x87 / 5), as mosquitto 2.0 does for a wrong password too.
        let admitted = match (c.username, &policy.passwords) {
            (Some(u), Some(pw)) => c.password.is_some_and(|p| pw.check(u, p)),
            _ => policy.allow_anonymous,
        };
        let code5 = reason::NOT_AUTHORIZED;
        if !admitted {
            return Err(Fault::Refused {
                code: connack::NOT_AUTHORIZED,
                code5,
                why: "not authorised",
            });
        }
        Ok(client_id)
    }

    /// Admits a validated CONNECT as `client_id` (empty: one is assigned [MQTT-3.1.3-7]).
    fn admit(
        &mut self,
        id: ConnId,
        listener: usize,
        c: &mqtt::Connect<'_>,
        mut client_id: String,
        now: Millis,
    ) {
        let v5 = c.version == Version::V5;
        let assigned = client_id.is_empty();
        if assigned {
            // [MQTT-3.1.3-7]
            client_id = self.assign_id(listener);
        }
        let (sid, present) = self.open_session(id, &client_id, c, listener, now);
        let policy = &self.cfg.listeners[listener];
        let mount = policy.mount_point.as_deref();
        let will = c.will.as_ref().map(|w| {
            Rc::new(Message {
                topic: mounted(mount, w.topic).into(),
                payload: w.payload.into(),
                qos: w.qos,
                retain: w.retain,
                origin: None,
                props: w.props.forwardable().into(),
                expiry: w.props.message_expiry_interval.map(|e| after_secs(now, e)),
            })
        });
        let will_delay = c
            .will
            .as_ref()
            .and_then(|w| w.props.will_delay_interval)
            .unwrap_or(0);
        let log = self.cfg.connection_messages;
        let max_keepalive = self.cfg.max_keepalive;
        let alias_to_clients = self.cfg.topic_alias_to_clients;
        let incoming = self.sessions[sid].flow.incoming.len();
        let in_quota = self
            .receive_maximum()
            .saturating_sub(u16::try_from(incoming).unwrap_or(u16::MAX));
        let Some(conn) = self.live(id) else {
            return;
        };
        conn.state = State::Connected;
        conn.session = Key::some(sid);
        let peer = conn.extra.get_mut().and_then(|e| e.peer.take());
        if will.is_some() {
            conn.extra.will = will;
            conn.extra.will_delay = will_delay;
        }
        conn.trim(now);
        // MQTT 5: a keepalive over max_keepalive (or none at all, when max_keepalive is set
        // below 65535) is replaced by the server's, as mosquitto does.
        let keep_alive = if v5
            && (c.keep_alive > max_keepalive || (c.keep_alive == 0 && max_keepalive < u16::MAX))
        {
            max_keepalive
        } else {
            c.keep_alive
        };
        conn.keep_alive = keep_alive;
        if v5 {
            conn.v5 = Some(Box::new(V5Conn {
                receive_max: c.props.receive_maximum.unwrap_or(u16::MAX),
                max_packet: c.props.maximum_packet_size.unwrap_or(0),
                alias_max_out: if alias_to_clients {
                    c.props.topic_alias_maximum.unwrap_or(0)
                } else {
                    0
                },
                aliases_out: HashMap::new(),
                aliases_in: Vec::new(),
                in_quota,
            }));
        }
        let keepalive_due = keepalive_deadline(conn.last_rx, keep_alive);
        if log {
            let user = c.username.map(|u| format!(", u'{u}'")).unwrap_or_default();
            info!(
                "New client connected from {} as {client_id} (p{}, c{}, k{}{user}).",
                peer.as_deref().unwrap_or("?"),
                c.version.log_number(),
                c.clean_session as u8,
                c.keep_alive,
            );
        }
        if keep_alive > 0 {
            self.arm(id, keepalive_due);
        }
        let assigned = assigned.then_some(client_id.as_str());
        self.send_connack(id, listener, c, present, assigned, keep_alive);
        if present {
            self.resend_inflight(sid);
            self.pump(sid);
        }
    }

    /// [MQTT-3.1.4-2]: an existing connection with this client id is closed first. Then its
    /// session is resumed, or a new one made (a clean start ends the old one). Returns the
    /// session, now attached to connection `id`, and whether it was resumed (Session Present).
    fn open_session(
        &mut self,
        id: ConnId,
        client_id: &str,
        c: &mqtt::Connect<'_>,
        listener: usize,
        now: Millis,
    ) -> (SessionId, bool) {
        if let Some(old) = self
            .by_id
            .get(client_id, &self.sessions)
            .and_then(|sid| self.sessions[sid].conn.get())
        {
            info!("Client {client_id} already connected, closing old connection.");
            self.close(old, Close::Takeover(c.clean_session), now);
        }
        let existing = self.by_id.get(client_id, &self.sessions);
        let (sid, present) = match existing {
            Some(sid) if !c.clean_session => (sid, true),
            other => {
                if let Some(sid) = other {
                    self.end_session(sid);
                }
                self.serial += 1;
                let mut s = Session::new(client_id);
                s.serial = self.serial as u32;
                let sid = self.sessions.insert(s);
                self.by_id.insert(sid, &self.sessions);
                (sid, false)
            }
        };
        let expiry_interval = if c.version == Version::V5 {
            c.props.session_expiry_interval.unwrap_or(0)
        } else if c.clean_session {
            0
        } else {
            self.cfg.persistent_client_expiration.unwrap_or(NEVER)
        };
        let s = &mut self.sessions[sid];
        s.clean = expiry_interval == 0;
        s.expiry_interval = expiry_interval;
        s.expires_at = Millis::MAX;
        // A will waiting for its delay is not sent once the session is resumed [MQTT-3.1.3-9].
        if let Some(f) = s.flow.get_mut() {
            f.pending_will = None;
        }
        s.flow.trim();
        s.conn = Key::some(id);
        s.username = c.username.map(Into::into);
        s.listener = listener as u16;
        (sid, present)
    }

    /// CONNACK accepting the connection; for MQTT 5 with the limits the client must keep to,
    /// the assigned client id and the keepalive the server chose if not the client's.
    fn send_connack(
        &mut self,
        id: ConnId,
        listener: usize,
        c: &mqtt::Connect<'_>,
        present: bool,
        assigned: Option<&str>,
        keep_alive: u16,
    ) {
        let policy = &self.cfg.listeners[listener];
        let max_topic_alias = policy.max_topic_alias;
        let max_qos = policy.max_qos;
        let recv_max = self.receive_maximum();
        let retain_available = self.cfg.retain_available;
        let max_packet_size = self.cfg.max_packet_size;
        let v5 = c.version == Version::V5;
        if let Some(out) = self.out(id) {
            if v5 {
                let mut props = Properties {
                    assigned_client_identifier: assigned,
                    topic_alias_maximum: Some(max_topic_alias),
                    ..Properties::default()
                };
                if recv_max != u16::MAX {
                    props.receive_maximum = Some(recv_max);
                }
                if max_qos != QoS::ExactlyOnce {
                    props.maximum_qos = Some(max_qos.as_u8());
                }
                if !retain_available {
                    props.retain_available = Some(0);
                }
                if max_packet_size > 0 {
                    props.maximum_packet_size = Some(max_packet_size as u32);
                }
                if keep_alive != c.keep_alive {
                    props.server_keep_alive = Some(keep_alive);
                }
                mqtt::encode_connack_v5(out, present, reason::SUCCESS, &props);
            } else {
                mqtt::encode_connack(out, present, connack::ACCEPTED);
            }
        }
    }

    /// A client identifier for a client that sent none [MQTT-3.1.3-7]: the listener's
    /// `auto_id_prefix` and a UUID-shaped random number.
    pub(super) fn assign_id(&mut self, listener: usize) -> String {
        let x = &mut self.rng;
        let mut next = || {
            *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        format!(
            "{}{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            self.cfg.listeners[listener].auto_id_prefix,
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

impl Broker {
    /// The properties of a refusing MQTT 5 CONNACK: Maximum QoS when the listener's is below 2,
    /// as mosquitto sends it whatever the reason.
    pub(super) fn refusal_props(&self, id: ConnId) -> Properties<'static> {
        let max_qos = match self.conns.get(id) {
            Some(Some(c)) => self.cfg.listeners[c.listener as usize].max_qos,
            _ => mqtt::QoS::ExactlyOnce,
        };
        Properties {
            maximum_qos: (max_qos != mqtt::QoS::ExactlyOnce).then_some(max_qos.as_u8()),
            ..Properties::default()
        }
    }
}
