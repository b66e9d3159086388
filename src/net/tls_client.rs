//! TLS towards a bridge's remote: rustls' client side as a transport [`Layer`], configured by
//! `bridge_cafile`, `bridge_capath`, `bridge_certfile`, `bridge_keyfile`, `bridge_insecure`,
//! `bridge_tls_version` and `bridge_alpn`. PEM files are read as the TLS listeners read them.
//!
//! The handshake runs in the loop like any other bytes: the ClientHello is written when the
//! socket connects, the broker's CONNECT waits in rustls until the handshake is done, and a
//! remote that never answers is given up by the bridge's connect timeout.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

use super::tls::{add_dir, certificates, private_key, OUT_LIMIT};
use super::Layer;
use crate::broker::BridgeTls;

/// Builds a bridge's rustls client configuration from its files; errors name the option and
/// the file.
pub fn client_config(name: &str, t: &BridgeTls) -> Result<Arc<ClientConfig>, String> {
    let at = |option: &str, path: &str, e: String| format!("bridge {name}: {option} '{path}': {e}");
    let mut roots = RootCertStore::empty();
    if let Some(cafile) = &t.cafile {
        let pem = std::fs::read(cafile).map_err(|e| at("bridge_cafile", cafile, e.to_string()))?;
        for c in certificates(&pem).map_err(|e| at("bridge_cafile", cafile, e))? {
            roots
                .add(c)
                .map_err(|e| at("bridge_cafile", cafile, e.to_string()))?;
        }
    }
    if let Some(capath) = &t.capath {
        add_dir(&mut roots, capath).map_err(|e| at("bridge_capath", capath, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match t.version.as_deref() {
        Some("tlsv1.3") => &[&rustls::version::TLS13],
        Some("tlsv1.2") => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let roots = Arc::new(roots);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| format!("bridge {name}: {e}"))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("bridge {name}: bridge_tls_version: {e}"))?;
    let builder = if t.insecure {
        // bridge_insecure: the chain is still checked, the host name is not.
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
    } else {
        builder.with_webpki_verifier(verifier)
    };
    let mut config = match (&t.certfile, &t.keyfile) {
        (Some(certfile), Some(keyfile)) => {
            let pem = std::fs::read(certfile)
                .map_err(|e| at("bridge_certfile", certfile, e.to_string()))?;
            let certs = certificates(&pem).map_err(|e| at("bridge_certfile", certfile, e))?;
            let pem =
                std::fs::read(keyfile).map_err(|e| at("bridge_keyfile", keyfile, e.to_string()))?;
            let key = private_key(&pem).map_err(|e| at("bridge_keyfile", keyfile, e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("bridge {name}: bridge_certfile/bridge_keyfile: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(format!(
                "bridge {name}: bridge_certfile and bridge_keyfile go together"
            ))
        }
    };
    if let Some(alpn) = &t.alpn {
        config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    }
    Ok(Arc::new(config))
}

/// `bridge_insecure`: a certificate for another name is accepted (nothing else is).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError as C, Error as E};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(E::InvalidCertificate(C::NotValidForName))
            | Err(E::InvalidCertificate(C::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// One bridge connection's TLS state.
pub struct TlsClientLayer {
    conn: ClientConnection,
}

impl TlsClientLayer {
    /// A client session for `host` (the name checked against the remote's certificate and
    /// sent as SNI; an IP address is checked against the certificate's IP addresses).
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<TlsClientLayer, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("'{host}' is not a host name for TLS: {e}"))?;
        let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        conn.set_buffer_limit(Some(OUT_LIMIT));
        Ok(TlsClientLayer { conn })
    }
}

impl Layer for TlsClientLayer {
    fn decode(&mut self, mut input: &[u8], up: &mut Vec<u8>) -> Result<(), String> {
        while !input.is_empty() {
            match self.conn.read_tls(&mut input) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("TLS error: {e}")),
            }
            let state = self
                .conn
                .process_new_packets()
                .map_err(|e| format!("TLS error: {e}"))?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = up.len();
                up.resize(start + n, 0);
                self.conn
                    .reader()
                    .read_exact(&mut up[start..])
                    .map_err(|e| format!("TLS error: {e}"))?;
            }
        }
        Ok(())
    }

    fn encode(&mut self, data: &[u8]) -> usize {
        self.conn.writer().write(data).unwrap_or(0)
    }

    fn drain(&mut self, down: &mut dyn Write) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(down)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    fn pending(&self) -> bool {
        self.conn.wants_write()
    }

    fn close(&mut self) {
        if !self.conn.is_handshaking() {
            self.conn.send_close_notify();
        }
    }
}
