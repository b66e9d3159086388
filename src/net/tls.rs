//! TLS listeners: rustls with the `ring` provider, as a transport [`Layer`].
//!
//! [`server_config`] reads a listener's files (certificate chain, key, CAs, CRL) and builds the
//! rustls configuration once; every connection accepted on the listener gets a [`TlsLayer`]
//! sharing it. SIGHUP builds a new configuration from the files again: connections accepted
//! afterwards get it, open ones keep the one they were accepted with.
//!
//! Memory: the layer exists only on TLS connections, and uses rustls' unbuffered API so that
//! midge owns the buffers: received bytes are kept only while a record is incomplete, and
//! encrypted output only until the socket takes it, at most about [`OUT_LIMIT`] (a full
//! buffer takes no more broker output, which then waits in the broker's bounded queues). An
//! idle TLS connection holds no buffer, only rustls' session state.

use std::io::{self, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection, WebPkiClientVerifier};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
    WriteTraffic,
};
use rustls::{RootCertStore, ServerConfig};

use super::{Layer, NewLayers, Stack};
use crate::config::{CertUsername, Tls};

/// Encrypted output a connection may hold before it stops taking more from the broker.
pub const OUT_LIMIT: usize = 64 * 1024;

/// Reads the files a TLS listener names and builds its rustls configuration. Errors name the
/// option's file and line, the file, and what is wrong with it.
pub fn server_config(t: &Tls) -> Result<Arc<ServerConfig>, String> {
    let read = |option: &str, path: &str| -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("{}{option} '{path}': {e}", t.at(option)))
    };
    let (Some(certfile), Some(keyfile)) = (&t.certfile, &t.keyfile) else {
        return Err("certfile and keyfile are needed for TLS".into());
    };
    let certs = certificates(&read("certfile", certfile)?).map_err(|e| {
        format!(
            "{}Unable to load server certificate '{certfile}': {e}. Check certfile.",
            t.at("certfile")
        )
    })?;
    let key = private_key(&read("keyfile", keyfile)?).map_err(|e| {
        format!(
            "{}Unable to load server key file '{keyfile}': {e}. Check keyfile.",
            t.at("keyfile")
        )
    })?;

    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| {
        let name = format!("{:?}", s.suite());
        let chosen = if name.starts_with("TLS13_") {
            &t.ciphers_tls13
        } else {
            &t.ciphers
        };
        chosen.as_ref().is_none_or(|list| list.contains(&name))
    });
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = if t.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("{}{e}", t.at("ciphers")))?;

    let builder = if t.require_certificate {
        let mut roots = RootCertStore::empty();
        if let Some(cafile) = &t.cafile {
            let found = certificates(&read("cafile", cafile)?).map_err(|e| {
                format!(
                    "{}Unable to load CA certificates from '{cafile}': {e}. Check cafile.",
                    t.at("cafile")
                )
            })?;
            for c in found {
                roots.add(c).map_err(|e| {
                    format!(
                        "{}Unable to load CA certificates from '{cafile}': {e}. Check cafile.",
                        t.at("cafile")
                    )
                })?;
            }
        }
        if let Some(capath) = &t.capath {
            add_dir(&mut roots, capath).map_err(|e| {
                format!(
                    "{}Unable to load CA certificates from '{capath}': {e}. Check capath.",
                    t.at("capath")
                )
            })?;
        }
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if let Some(crlfile) = &t.crlfile {
            let crls = revocation_lists(&read("crlfile", crlfile)?).map_err(|e| {
                format!(
                    "{}Unable to load certificate revocation file '{crlfile}': {e}. Check \
                     crlfile.",
                    t.at("crlfile")
                )
            })?;
            // As OpenSSL's X509_V_FLAG_CRL_CHECK: the client's own certificate is checked,
            // and a certificate whose issuer has no CRL in the file is refused.
            verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
        }
        let verifier = verifier
            .build()
            .map_err(|e| format!("{}{e}", t.at("require_certificate")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{}Server certificate '{certfile}' and key '{keyfile}' do not go together: {e}.",
            t.at("keyfile")
        )
    })?;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file, leaf first for a chain; none is an error.
pub(super) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&e))?;
    if certs.is_empty() {
        return Err("no PEM certificate (BEGIN CERTIFICATE) in it".into());
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC). An encrypted key is an error
/// that says how to decrypt it: nobody is there to type its passphrase.
pub(super) fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the key is encrypted with a passphrase, which midge cannot ask for; \
                    write a decrypted copy readable only by midge's user with \
                    `openssl pkey -in KEY -out KEY.plain`"
                .into(),
        );
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in it".into()
        }
        e => pem_error(&e),
    })
}

fn revocation_lists(pem: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&e))?;
    if crls.is_empty() {
        return Err("no PEM revocation list (BEGIN X509 CRL) in it".into());
    }
    if crls.iter().any(|c| subject::crl_version_1(c)) {
        // RFC 5280 5.1.2.1: a CRL with the extensions the profile requires is version 2.
        return Err(
            "it is a version 1 CRL and only version 2 is accepted: give `openssl ca` \
                    a crlnumber file (echo 01 > crlnumber, named by `crlnumber` in its \
                    config) and make the CRL again with `openssl ca -gencrl`"
                .into(),
        );
    }
    Ok(crls)
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "a PEM section has no end line ({})",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => {
            format!("bad PEM line '{}'", String::from_utf8_lossy(line))
        }
        E::Base64Decode(m) => format!("bad base64 in PEM: {m}"),
        E::Io(e) => e.to_string(),
        E::NoItemsFound => "nothing usable in it".into(),
        other => format!("{other:?}"),
    }
}

/// `capath`: every certificate in the directory's files (`openssl rehash` links, .pem, .crt).
/// Files that hold no certificate are skipped; a directory with none is an error.
pub(super) fn add_dir(roots: &mut RootCertStore, dir: &str) -> Result<(), String> {
    let mut found = 0usize;
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if let Ok(certs) = certificates(&bytes) {
            for c in certs {
                if roots.add(c).is_ok() {
                    found = found.saturating_add(1);
                }
            }
        }
    }
    if found == 0 {
        return Err("no CA certificate in the directory".into());
    }
    Ok(())
}

/// `v` grown to `at + extra` bytes, and the part from `at` on (where rustls writes records).
fn room(v: &mut Vec<u8>, at: usize, extra: usize) -> &mut [u8] {
    v.resize(at.saturating_add(extra), 0);
    v.get_mut(at..).unwrap_or_default()
}

/// The layers of a TLS listener's connections.
pub fn stack(config: Arc<ServerConfig>, username: CertUsername) -> Stack {
    let new: NewLayers = std::rc::Rc::new(move || {
        let layer: Box<dyn Layer> = Box::new(TlsLayer::new(config.clone(), username));
        vec![layer]
    });
    Stack {
        layers: Some(new),
        resume: None,
    }
}

/// One connection's TLS state, on rustls' unbuffered API: rustls keeps the session (keys,
/// handshake state) and midge the bytes, so buffers exist only while they hold something.
pub struct TlsLayer {
    /// `None` only if rustls refused to start a connection (then every read fails).
    conn: Option<UnbufferedServerConnection>,
    username: CertUsername,
    /// Received TLS bytes not processed yet: an incomplete record (none, unallocated, between
    /// records).
    incoming: Vec<u8>,
    /// Encrypted bytes waiting for the socket, at most about [`OUT_LIMIT`] (unallocated when
    /// empty).
    outgoing: Vec<u8>,
    /// Whether any byte has arrived (the first says whether the client speaks TLS at all).
    started: bool,
    /// The client does not speak TLS: it gets no TLS bytes, not even an alert.
    not_tls: bool,
    /// The user name from the client's certificate, once, after the handshake.
    identity: Option<String>,
    identity_done: bool,
}

impl TlsLayer {
    pub fn new(config: Arc<ServerConfig>, username: CertUsername) -> TlsLayer {
        TlsLayer {
            conn: UnbufferedServerConnection::new(config).ok(),
            username,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            started: false,
            not_tls: false,
            identity: None,
            identity_done: false,
        }
    }

    /// Runs rustls over the received bytes until it needs more: decrypted application data is
    /// appended to `up`, handshake records to `outgoing`.
    fn process(&mut self, up: &mut Vec<u8>) -> Result<(), rustls::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(rustls::Error::HandshakeNotComplete);
        };
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.incoming);
            let go_on = match state? {
                ConnectionState::ReadTraffic(mut rt) => {
                    while let Some(record) = rt.next_record() {
                        up.extend_from_slice(record?.payload);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    let at = self.outgoing.len();
                    let n = match e.encode(room(&mut self.outgoing, at, 4096)) {
                        Ok(n) => n,
                        Err(EncodeError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => e
                            .encode(room(&mut self.outgoing, at, required_size))
                            .unwrap_or(0),
                        Err(EncodeError::AlreadyEncoded) => 0,
                    };
                    self.outgoing.truncate(at.saturating_add(n));
                    true
                }
                // What was encoded is in `outgoing`, in order, for the next drain.
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    true
                }
                // Early data is not enabled; anything else means: wait for more bytes.
                ConnectionState::ReadEarlyData(mut rd) => {
                    while rd.next_record().is_some() {}
                    true
                }
                _ => false,
            };
            self.incoming.drain(..discard);
            if !go_on {
                break;
            }
        }
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        Ok(())
    }

    /// Gives `f` rustls' application-data writer with `outgoing` (grown to what it needs), once
    /// the handshake allows it; what `f` wrote stays in `outgoing`.
    fn write_traffic(
        &mut self,
        reserve: usize,
        mut f: impl FnMut(
            &mut WriteTraffic<'_, ServerConnectionData>,
            &mut [u8],
        ) -> Result<usize, EncryptError>,
    ) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.incoming);
        let done = match state {
            Ok(ConnectionState::WriteTraffic(mut wt)) => {
                let at = self.outgoing.len();
                let n = match f(&mut wt, room(&mut self.outgoing, at, reserve)) {
                    Ok(n) => Some(n),
                    Err(EncryptError::InsufficientSize(InsufficientSizeError {
                        required_size,
                    })) => f(&mut wt, room(&mut self.outgoing, at, required_size)).ok(),
                    Err(EncryptError::EncryptExhausted) => None,
                };
                self.outgoing.truncate(at.saturating_add(n.unwrap_or(0)));
                n.is_some()
            }
            _ => false,
        };
        self.incoming.drain(..discard);
        done
    }
}

impl Layer for TlsLayer {
    fn decode(&mut self, input: &[u8], up: &mut Vec<u8>) -> Result<(), String> {
        if self.conn.is_none() {
            return Err("TLS error: could not start a TLS session".into());
        }
        if !self.started && !input.is_empty() {
            self.started = true;
            // A TLS connection starts with a handshake record (22); an MQTT one with CONNECT.
            match input.first().copied().unwrap_or(0x16) {
                0x16 => {}
                b => {
                    self.not_tls = true;
                    return Err(match b {
                        0x10 => "plaintext MQTT on a TLS listener".into(),
                        b => format!("not TLS (first byte 0x{b:02x}) on a TLS listener"),
                    });
                }
            }
        }
        self.incoming.extend_from_slice(input);
        if let Err(e) = self.process(up) {
            // The alert rustls queued for the failure goes out before the connection closes.
            let _ = self.process(up);
            return Err(tls_error(&e));
        }
        if !self.identity_done {
            if let Some(conn) = self.conn.as_ref().filter(|c| !c.is_handshaking()) {
                self.identity_done = true;
                let leaf = conn.peer_certificates().and_then(|c| c.first());
                self.identity = match (self.username, leaf) {
                    (CertUsername::CommonName, Some(c)) => subject::common_name(c),
                    (CertUsername::Subject, Some(c)) => subject::rfc2253(c),
                    _ => None,
                };
            }
        }
        Ok(())
    }

    fn encode(&mut self, data: &[u8]) -> usize {
        let room = OUT_LIMIT.saturating_sub(self.outgoing.len());
        // Records carry at most 16 KiB each, plus a header and tag: room for them.
        let n = data.len().min(room);
        if n == 0 {
            return 0;
        }
        let records = n.div_ceil(16 * 1024);
        let reserve = n.saturating_add(records.saturating_mul(64));
        let data = data.get(..n).unwrap_or_default();
        let written = self.write_traffic(reserve, |wt, out| wt.encrypt(data, out));
        if written {
            n
        } else {
            0
        }
    }

    fn drain(&mut self, down: &mut dyn Write) -> io::Result<()> {
        if self.not_tls {
            self.outgoing = Vec::new();
            return Ok(());
        }
        let mut sent = 0;
        let r = loop {
            if sent == self.outgoing.len() {
                break Ok(());
            }
            match down.write(self.outgoing.get(sent..).unwrap_or_default()) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent = sent.saturating_add(n).min(self.outgoing.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if sent == self.outgoing.len() {
            self.outgoing = Vec::new();
        } else {
            self.outgoing.drain(..sent);
        }
        r
    }

    fn pending(&self) -> bool {
        !self.not_tls && !self.outgoing.is_empty()
    }

    fn close(&mut self) {
        // After a handshake: close_notify. During one, any alert rustls queued for a failure
        // is already in `outgoing`, and nothing more is sent.
        if self.conn.as_ref().is_some_and(|c| !c.is_handshaking()) {
            self.write_traffic(64, |wt, out| wt.queue_close_notify(out));
        }
    }

    fn take_identity(&mut self) -> Option<String> {
        self.identity.take()
    }
}

/// A log line's words for a TLS failure, plainer than rustls' own for the common cases.
fn tls_error(e: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    match e {
        E::NoCertificatesPresented => {
            "TLS error: the client sent no certificate (require_certificate)".into()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "TLS error: the client's certificate has expired".into()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "TLS error: the client's certificate is not valid yet (is the clock right?)".into()
        }
        E::InvalidCertificate(C::UnknownRevocationStatus) => {
            "TLS error: the client's certificate is from a CA that crlfile has no CRL for".into()
        }
        E::InvalidCertificate(C::Revoked) => {
            "TLS error: the client's certificate is revoked (crlfile)".into()
        }
        E::InvalidCertificate(C::UnknownIssuer) => {
            "TLS error: the client's certificate is not signed by a CA in cafile/capath".into()
        }
        E::InvalidCertificate(C::Other(o))
            if format!("{o:?}").contains("UnsupportedCertVersion") =>
        {
            "TLS error: the client's certificate is X.509 version 1; only version 3 is accepted \
             (sign it with an extensions file: openssl x509 -req ... -extfile client.ext)"
                .into()
        }
        E::AlertReceived(a) => format!("TLS error: the client sent alert {a:?}"),
        other => format!("TLS error: {other}"),
    }
}

/// The certificate subject as mosquitto's user names: the first common name
/// (`use_identity_as_username`) or the whole name in OpenSSL's RFC 2253 form
/// (`use_subject_as_username`). A small DER reader over the certificate; anything it does not
/// understand gives `None` (the client is then refused), never a panic.
pub mod subject {
    /// One DER element: (tag, contents, rest).
    fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &x in b.get(..n)? {
                len = (len << 8) | x as usize;
            }
            b = b.get(n..)?;
            len
        };
        Some((tag, b.get(..len)?, b.get(len..)?))
    }

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;

    /// The subject's RDNs: each a list of (OID bytes, value tag, value bytes).
    type Rdns<'a> = Vec<Vec<(&'a [u8], u8, &'a [u8])>>;

    fn subject(cert: &[u8]) -> Option<Rdns<'_>> {
        let (SEQUENCE, cert, _) = element(cert)? else {
            return None;
        };
        let (SEQUENCE, tbs, _) = element(cert)? else {
            return None;
        };
        let mut rest = tbs;
        // [0] version, optional.
        if rest.first() == Some(&0xa0) {
            rest = element(rest)?.2;
        }
        // serialNumber, signature, issuer, validity, then subject.
        for _ in 0..4 {
            rest = element(rest)?.2;
        }
        let (SEQUENCE, mut name, _) = element(rest)? else {
            return None;
        };
        let mut rdns = Vec::new();
        while !name.is_empty() {
            let (SET, mut set, next) = element(name)? else {
                return None;
            };
            name = next;
            let mut avas = Vec::new();
            while !set.is_empty() {
                let (SEQUENCE, ava, next) = element(set)? else {
                    return None;
                };
                set = next;
                let (OID, oid, value) = element(ava)? else {
                    return None;
                };
                let (tag, value, _) = element(value)?;
                avas.push((oid, tag, value));
            }
            rdns.push(avas);
        }
        Some(rdns)
    }

    /// A directory string's text: UTF8String, PrintableString, IA5String, TeletexString
    /// (taken as Latin-1), BMPString (UTF-16) or UniversalString (UTF-32).
    fn text(tag: u8, v: &[u8]) -> Option<String> {
        match tag {
            12 => String::from_utf8(v.to_vec()).ok(),
            19 | 22 => v
                .is_ascii()
                .then(|| String::from_utf8_lossy(v).into_owned()),
            20 => Some(v.iter().map(|&b| b as char).collect()),
            30 => {
                if v.len() % 2 != 0 {
                    return None;
                }
                let units: Vec<u16> = v
                    .chunks_exact(2)
                    .filter_map(|c| <[u8; 2]>::try_from(c).ok())
                    .map(u16::from_be_bytes)
                    .collect();
                String::from_utf16(&units).ok()
            }
            28 => {
                if v.len() % 4 != 0 {
                    return None;
                }
                v.chunks_exact(4)
                    .map(|c| {
                        <[u8; 4]>::try_from(c)
                            .ok()
                            .and_then(|b| char::from_u32(u32::from_be_bytes(b)))
                    })
                    .collect()
            }
            _ => None,
        }
    }

    /// Whether a DER CRL lacks the version field (version 1): its TBSCertList starts with the
    /// signature algorithm (a SEQUENCE) instead of the version (an INTEGER).
    pub fn crl_version_1(crl: &[u8]) -> bool {
        let tbs = element(crl).and_then(|(_, c, _)| element(c));
        matches!(tbs.and_then(|(_, t, _)| element(t)), Some((SEQUENCE, _, _)))
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];

    /// The first common name, as mosquitto's `use_identity_as_username`: valid UTF-8 without
    /// NUL, or nothing.
    pub fn common_name(cert: &[u8]) -> Option<String> {
        let rdns = subject(cert)?;
        let (_, tag, v) = rdns.iter().flatten().find(|(oid, _, _)| *oid == CN)?;
        let name = text(*tag, v)?;
        (!name.contains('\0')).then_some(name)
    }

    /// OpenSSL's short names for the attributes a subject usually has.
    fn short_name(oid: &[u8]) -> Option<&'static str> {
        Some(match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x04] => "SN",
            [0x55, 0x04, 0x05] => "serialNumber",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x09] => "street",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            [0x55, 0x04, 0x0c] => "title",
            [0x55, 0x04, 0x0f] => "businessCategory",
            [0x55, 0x04, 0x11] => "postalCode",
            [0x55, 0x04, 0x2a] => "GN",
            [0x55, 0x04, 0x2b] => "initials",
            [0x55, 0x04, 0x2e] => "dnQualifier",
            [0x55, 0x04, 0x41] => "pseudonym",
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
            _ => return None,
        })
    }

    /// An OID in dotted form.
    fn dotted(oid: &[u8]) -> Option<String> {
        let (&first, rest) = oid.split_first()?;
        let mut parts = vec![
            (first / 40).min(2) as u64,
            match first {
                0..=39 => first,
                40..=79 => first.saturating_sub(40),
                _ => first.saturating_sub(80),
            } as u64,
        ];
        let mut n: u64 = 0;
        for &b in rest {
            n = n.checked_mul(128)? | (b & 0x7f) as u64;
            if b & 0x80 == 0 {
                parts.push(n);
                n = 0;
            }
        }
        Some(
            parts
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("."),
        )
    }

    /// The subject as OpenSSL prints it with `XN_FLAG_RFC2253` (what mosquitto's
    /// `use_subject_as_username` takes): last attribute first, `,` between RDNs, `+` inside one,
    /// RFC 2253 escapes, bytes above 0x7f as `\XX`, unknown attributes as `OID=#hex`.
    pub fn rfc2253(cert: &[u8]) -> Option<String> {
        let rdns = subject(cert)?;
        let mut out = String::new();
        // OpenSSL reverses the whole list of attributes, those of a multi-valued RDN included.
        let entries = rdns
            .iter()
            .enumerate()
            .flat_map(|(i, rdn)| rdn.iter().map(move |a| (i, a)));
        let mut last = None;
        for (rdn, (oid, tag, v)) in entries.collect::<Vec<_>>().into_iter().rev() {
            match last {
                Some(l) if l == rdn => out.push('+'),
                Some(_) => out.push(','),
                None => {}
            }
            last = Some(rdn);
            match (short_name(oid), text(*tag, v)) {
                (Some(name), Some(value)) => {
                    out.push_str(name);
                    out.push('=');
                    escape(&value, &mut out);
                }
                _ => {
                    out.push_str(&dotted(oid)?);
                    out.push_str("=#");
                    // The whole DER element: tag, length, contents.
                    let mut der = vec![*tag];
                    let len = v.len();
                    if len < 0x80 {
                        der.push(len as u8);
                    } else {
                        let bytes: Vec<u8> = len
                            .to_be_bytes()
                            .into_iter()
                            .skip_while(|&b| b == 0)
                            .collect();
                        der.push(0x80 | bytes.len() as u8);
                        der.extend(bytes);
                    }
                    der.extend_from_slice(v);
                    for b in der {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
        Some(out)
    }

    fn escape(value: &str, out: &mut String) {
        let bytes = value.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let first = i == 0;
            let last = bytes.len().checked_sub(1) == Some(i);
            match b {
                b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                    out.push('\\');
                    out.push(b as char);
                }
                b'#' if first => out.push_str("\\#"),
                b' ' if first || last => out.push_str("\\ "),
                0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{b:02X}")),
                _ => out.push(b as char),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn der(pem: &str) -> Vec<u8> {
        certificates(pem.as_bytes()).unwrap().remove(0).to_vec()
    }

    /// A certificate made by `openssl req -utf8 -multivalue-rdn` with a subject that needs every
    /// escape, and OpenSSL's own RFC 2253 rendering of it (`openssl x509 -nameopt RFC2253`):
    /// what mosquitto's use_subject_as_username gives.
    #[test]
    fn the_subject_reads_as_openssl_prints_it() {
        let cert = der(include_str!("../../tests/fixtures/tls/subject.pem"));
        let expected = include_str!("../../tests/fixtures/tls/subject.rfc2253").trim_end();
        assert_eq!(subject::rfc2253(&cert).as_deref(), Some(expected));
        // The first CN in the certificate's order (OpenSSL's X509_NAME_get_index_by_NID).
        assert_eq!(
            subject::common_name(&cert).as_deref(),
            Some(" sensor #1; \"lab\"")
        );
    }

    /// The DER reader never panics and gives nothing for anything truncated or mangled.
    #[test]
    fn a_damaged_certificate_gives_no_name() {
        let cert = der(include_str!("../../tests/fixtures/tls/subject.pem"));
        for n in 0..cert.len() {
            let _ = subject::rfc2253(&cert[..n]);
            assert_eq!(subject::common_name(&cert[..n]), None);
        }
        let mut bad = cert.clone();
        for i in 0..bad.len() {
            let keep = bad[i];
            bad[i] ^= 0xff;
            let _ = subject::rfc2253(&bad);
            let _ = subject::common_name(&bad);
            bad[i] = keep;
        }
        assert_eq!(
            subject::rfc2253(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }

    /// A rustls client and midge's TLS layer, bytes moved by hand: the handshake, data both
    /// ways, output bounded by OUT_LIMIT, and no buffer held once the connection is idle.
    #[test]
    fn the_layer_speaks_tls_with_bounded_buffers_that_idle_connections_give_back() {
        let cert = include_bytes!("../../tests/fixtures/tls/localhost.pem");
        let key = include_bytes!("../../tests/fixtures/tls/localhost.key");
        let server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certificates(cert).unwrap(), private_key(key).unwrap())
                .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(certificates(cert).unwrap().remove(0)).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = TlsLayer::new(Arc::new(server), CertUsername::Connect);
        let mut got = Vec::new();
        let mut up = Vec::new();
        // Moves bytes both ways until neither side has anything to say.
        let mut pump = |c: &mut rustls::ClientConnection, s: &mut TlsLayer, up: &mut Vec<u8>| {
            for _ in 0..100 {
                let mut wire = Vec::new();
                while c.wants_write() {
                    c.write_tls(&mut wire).unwrap();
                }
                if !wire.is_empty() {
                    s.decode(&wire, up).unwrap();
                }
                let mut back = Vec::new();
                s.drain(&mut back).unwrap();
                if back.is_empty() && wire.is_empty() {
                    return;
                }
                let mut r = &back[..];
                let mut buf = [0u8; 65536];
                while !r.is_empty() {
                    c.read_tls(&mut r).unwrap();
                    c.process_new_packets().unwrap();
                    while let Ok(n) = c.reader().read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                }
            }
            panic!("no quiet after 100 rounds");
        };
        pump(&mut c, &mut s, &mut up);
        assert!(!c.is_handshaking());
        // Client to broker: 100 kB across several records.
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut off = 0;
        while off < data.len() {
            off += c.writer().write(&data[off..]).unwrap();
            pump(&mut c, &mut s, &mut up);
        }
        assert_eq!(up, data);
        // Broker to client: more than OUT_LIMIT at once is taken only up to it.
        let big = vec![7u8; 3 * OUT_LIMIT];
        let n = s.encode(&big);
        assert_eq!(n, OUT_LIMIT);
        assert_eq!(s.encode(&big[n..]), 0, "a full buffer takes nothing more");
        pump(&mut c, &mut s, &mut up);
        assert_eq!(got.len(), OUT_LIMIT);
        assert!(got.iter().all(|&b| b == 7));
        // Idle: no buffer held.
        assert_eq!(s.incoming.capacity(), 0);
        assert_eq!(s.outgoing.capacity(), 0);
        assert!(!s.pending());
        // close_notify reaches the client.
        s.close();
        assert!(s.pending());
        let mut back = Vec::new();
        s.drain(&mut back).unwrap();
        c.read_tls(&mut &back[..]).unwrap();
        let st = c.process_new_packets().unwrap();
        assert!(st.peer_has_closed());
    }

    #[test]
    fn key_files_are_explained() {
        let e = private_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("the key is encrypted with a passphrase"),
            "{e}"
        );
        let e =
            private_key(b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n").unwrap_err();
        assert!(e.starts_with("the key is encrypted"), "{e}");
        let e = private_key(b"hello").unwrap_err();
        assert!(e.starts_with("no PEM private key"), "{e}");
        let e = certificates(b"").unwrap_err();
        assert_eq!(e, "no PEM certificate (BEGIN CERTIFICATE) in it");
    }
}
