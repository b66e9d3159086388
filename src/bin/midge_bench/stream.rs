//! A client connection's byte stream: plain TCP, or TLS (`--tls`) over it with rustls, both
//! nonblocking with `Read`/`Write` semantics the engine already handles (`WouldBlock` when the
//! socket or the TLS buffers have nothing to give or no room).
//!
//! TLS here is a load generator's: the broker's certificate is not verified (its signature
//! still is computed by the broker, and the key exchange happens in full), and sessions are
//! never resumed, so every connection costs the broker a full handshake.

use std::io::{self, Read, Write};
use std::net::Shutdown;
#[cfg(feature = "tls")]
use std::sync::Arc;

use mio::net::TcpStream;

/// What TLS client connections are made with (`None`: plain TCP).
#[cfg(feature = "tls")]
pub type TlsClient = Option<(
    Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
)>;
#[cfg(not(feature = "tls"))]
pub type TlsClient = Option<std::convert::Infallible>;

/// Encrypted output a connection may hold (the engine's own batches are 64 kB).
#[cfg(feature = "tls")]
const TLS_OUT_LIMIT: usize = 256 * 1024;

pub struct Stream {
    pub tcp: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Stream {
    pub fn new(tcp: TcpStream, tls: &TlsClient) -> io::Result<Stream> {
        #[cfg(feature = "tls")]
        {
            let tls = match tls {
                Some((config, name)) => {
                    let mut c = rustls::ClientConnection::new(config.clone(), name.clone())
                        .map_err(io::Error::other)?;
                    c.set_buffer_limit(Some(TLS_OUT_LIMIT));
                    Some(Box::new(c))
                }
                None => None,
            };
            Ok(Stream { tcp, tls })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = tls;
            Ok(Stream { tcp })
        }
    }

    pub fn shutdown(&self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    /// Writes queued TLS records: `Ok` once none is left, `WouldBlock` when the socket is full.
    #[cfg(feature = "tls")]
    fn flush_tls(tls: &mut rustls::ClientConnection, tcp: &mut TcpStream) -> io::Result<()> {
        while tls.wants_write() {
            if tls.write_tls(tcp)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

impl Stream {
    /// Whether this is plain TCP (no TLS).
    pub fn is_plain(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return false;
        }
        true
    }

    /// Consumes up to `room.len()` received bytes without copying them out (`recv` with
    /// `MSG_TRUNC`, which TCP on Linux takes as "discard"); `room` is not written. Plain TCP only.
    pub fn discard(&mut self, room: &mut [u8]) -> io::Result<usize> {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        if !self.is_plain() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        recv(self.tcp.as_raw_fd(), room, MsgFlags::MSG_TRUNC).map_err(io::Error::from)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            loop {
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if tls.read_tls(&mut self.tcp)? == 0 {
                    return Ok(0);
                }
                tls.process_new_packets().map_err(io::Error::other)?;
                // Handshake messages, and anything written before the handshake finished.
                match Self::flush_tls(tls, &mut self.tcp) {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                    _ => {}
                }
            }
        }
        self.tcp.read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            Self::flush_tls(tls, &mut self.tcp)?;
            let n = tls.writer().write(buf)?;
            match Self::flush_tls(tls, &mut self.tcp) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
            return if n == 0 && !buf.is_empty() {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            };
        }
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            return Self::flush_tls(tls, &mut self.tcp);
        }
        Ok(())
    }
}

/// The client configuration for `--tls`: TLS 1.2 and 1.3, no resumption, no certificate check.
#[cfg(feature = "tls")]
pub fn client(sni: &str) -> Result<TlsClient, String> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct Unchecked(Vec<SignatureScheme>);
    impl ServerCertVerifier for Unchecked {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.clone()
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unchecked(schemes)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let name = ServerName::try_from(sni.to_string()).map_err(|e| format!("--tls-sni: {e}"))?;
    Ok(Some((Arc::new(config), name)))
}

#[cfg(not(feature = "tls"))]
pub fn client(_: &str) -> Result<TlsClient, String> {
    Err("--tls: this midge_bench was built without TLS support (cargo feature `tls`)".into())
}
