//! A listener's TLS settings, the cipher suites midge offers and the `ciphers` lists over them,
//! and the checks that need the whole configuration (mosquitto's `config__check`).

use super::{Config, Error};

/// Where a client's user name comes from on a TLS listener with client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertUsername {
    /// The CONNECT packet's, checked against the password file as usual.
    #[default]
    Connect,
    /// `use_identity_as_username`: the certificate's first CN; no password needed.
    CommonName,
    /// `use_subject_as_username`: the whole subject, RFC 2253 form; no password needed.
    Subject,
}

/// A listener's TLS settings, with mosquitto's names and meanings. `certfile` and `keyfile`
/// together make the listener a TLS listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Trusted CAs for client certificates: a PEM file, and/or a directory of PEM files.
    pub cafile: Option<String>,
    pub capath: Option<String>,
    /// The server's certificate (a chain is fine: leaf first) and its private key, PEM.
    pub certfile: Option<String>,
    pub keyfile: Option<String>,
    /// Revoked client certificates, PEM.
    pub crlfile: Option<String>,
    pub require_certificate: bool,
    pub username: CertUsername,
    /// `tls_version tlsv1.3`: TLS 1.3 only; otherwise 1.2 and 1.3.
    pub tls13_only: bool,
    /// `ciphers`: the TLS 1.2 suites allowed, by IANA name (all when `None`).
    pub ciphers: Option<Vec<String>>,
    /// `ciphers_tls1.3`: the TLS 1.3 suites allowed, by IANA name (all when `None`).
    pub ciphers_tls13: Option<Vec<String>>,
    /// Where each option was set ("file:line"), for errors found when its file is read.
    pub at: Vec<(&'static str, String)>,
}

impl Tls {
    /// Whether the listener speaks TLS (`certfile` and `keyfile` given).
    pub fn enabled(&self) -> bool {
        self.certfile.is_some() && self.keyfile.is_some()
    }

    /// "file:line: " of the last time `option` was set, or "" if it never was.
    pub fn at(&self, option: &str) -> String {
        self.at
            .iter()
            .rev()
            .find(|(o, _)| *o == option)
            .map(|(_, at)| format!("{at}: "))
            .unwrap_or_default()
    }
}

/// The TLS 1.2 suites midge's TLS library has: (OpenSSL name, IANA name). A `ciphers` name
/// outside this list is an error rather than silently weaker or stronger than asked.
pub const TLS12_SUITES: &[(&str, &str)] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The TLS 1.3 suites: (OpenSSL name, IANA name as the TLS library spells it).
pub const TLS13_SUITES: &[(&str, &str)] = &[
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
];

/// `ciphers`: an OpenSSL cipher list (`:`, `,` or space separated) over the TLS 1.2 suites.
/// Names (OpenSSL or IANA) and the keywords DEFAULT, ALL, HIGH, ECDHE/EECDH/kECDHE, AESGCM,
/// AES128, AES256, CHACHA20, aRSA/RSA, aECDSA/ECDSA (joined with `+` to intersect) select;
/// `!X` or `-X` removes; `+X` and `@...` (ordering, security level) change nothing here, since
/// every suite offered is strong. A name that selects nothing midge has is an error.
pub(super) fn tls12_ciphers(list: &str) -> Result<Vec<String>, String> {
    let all = || TLS12_SUITES.iter().map(|(o, _)| *o);
    let select = |word: &str| -> Option<Vec<&'static str>> {
        if let Some((o, _)) = TLS12_SUITES
            .iter()
            .find(|(o, i)| o.eq_ignore_ascii_case(word) || i.eq_ignore_ascii_case(word))
        {
            return Some(vec![o]);
        }
        let mut chosen: Vec<&'static str> = all().collect();
        for part in word.split('+') {
            let keep: fn(&str) -> bool = match part {
                "DEFAULT" | "ALL" | "HIGH" | "ECDHE" | "EECDH" | "kECDHE" | "TLSv1.2" => |_| true,
                "AESGCM" => |o| o.contains("GCM"),
                "AES128" => |o| o.contains("AES128"),
                "AES256" => |o| o.contains("AES256"),
                "AES" => |o| o.contains("AES"),
                "CHACHA20" => |o| o.contains("CHACHA20"),
                "aRSA" | "RSA" => |o| o.contains("-RSA-"),
                "aECDSA" | "ECDSA" => |o| o.contains("-ECDSA-"),
                _ => return None,
            };
            chosen.retain(|o| keep(o));
        }
        Some(chosen)
    };
    let mut out: Vec<&'static str> = Vec::new();
    for word in list.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        if word.starts_with('@') || word.starts_with('+') {
            continue;
        }
        if let Some(neg) = word.strip_prefix('!').or_else(|| word.strip_prefix('-')) {
            // Removing what midge never offers (aNULL, RC4, SSLv2...) is already true.
            if let Some(gone) = select(neg) {
                out.retain(|o| !gone.contains(o));
            }
            continue;
        }
        match select(word) {
            Some(v) => {
                for o in v {
                    if !out.contains(&o) {
                        out.push(o);
                    }
                }
            }
            None => {
                return Err(format!(
                    "cipher '{word}' is not available in midge's TLS library (rustls); the TLS 1.2 \
                     ciphers it has are {}",
                    all().collect::<Vec<_>>().join(":")
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(format!("'{list}' leaves no TLS 1.2 cipher"));
    }
    Ok(out
        .into_iter()
        .filter_map(|o| TLS12_SUITES.iter().find(|(n, _)| *n == o))
        .map(|(_, iana)| iana.to_string())
        .collect())
}

/// `ciphers_tls1.3`: a `:` separated list of TLS 1.3 suite names.
pub(super) fn tls13_ciphers(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for word in list.split(':').filter(|w| !w.is_empty()) {
        match TLS13_SUITES
            .iter()
            .find(|(o, i)| o.eq_ignore_ascii_case(word) || i.eq_ignore_ascii_case(word))
        {
            Some((_, iana)) => out.push(iana.to_string()),
            None => {
                return Err(format!(
                    "ciphersuite '{word}' is not available in midge's TLS library (rustls); the \
                     TLS 1.3 ciphersuites it has are {}",
                    TLS13_SUITES
                        .iter()
                        .map(|(o, _)| *o)
                        .collect::<Vec<_>>()
                        .join(":")
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("expects at least one ciphersuite".into());
    }
    Ok(out)
}

impl Config {
    /// The checks that need the whole configuration (every file read), as mosquitto's
    /// `config__check`: TLS settings that contradict each other are errors naming the line;
    /// ones that do nothing are warnings added to `warnings`.
    pub fn check(&mut self) -> Result<(), Error> {
        let mut warnings = Vec::new();
        for l in self.all_listeners() {
            let t = &l.tls;
            let located = |option: &str, msg: String| {
                let at = t.at(option);
                let (file, line) = match at.trim_end_matches(": ").rsplit_once(':') {
                    Some((f, n)) => (f.to_string(), n.parse().unwrap_or(0)),
                    None => ("config".to_string(), 0),
                };
                Error { file, line, msg }
            };
            let port = l.port;
            match (&t.certfile, &t.keyfile) {
                (Some(_), None) => {
                    return Err(located(
                        "certfile",
                        format!(
                            "listener {port}: certfile without keyfile; both must be given to \
                             enable TLS (as in mosquitto)"
                        ),
                    ))
                }
                (None, Some(_)) => {
                    return Err(located(
                        "keyfile",
                        format!(
                            "listener {port}: keyfile without certfile; both must be given to \
                             enable TLS (as in mosquitto)"
                        ),
                    ))
                }
                _ => {}
            }
            if !t.enabled() {
                if let Some((option, at)) = t.at.first() {
                    warnings.push(format!(
                        "{at}: {option} has no effect: listener {port} has no certfile and \
                         keyfile, so it is not a TLS listener and its traffic is not encrypted"
                    ));
                }
                continue;
            }
            if !cfg!(feature = "tls") {
                return Err(located(
                    "certfile",
                    "this midge was built without TLS support (cargo feature `tls`)".into(),
                ));
            }
            if t.require_certificate && t.cafile.is_none() && t.capath.is_none() {
                return Err(located(
                    "require_certificate",
                    format!(
                        "listener {port}: require_certificate needs cafile or capath, the CAs \
                         that client certificates must be signed by"
                    ),
                ));
            }
            if !t.require_certificate {
                if t.crlfile.is_some() {
                    warnings.push(format!(
                        "{}crlfile has no effect without require_certificate true",
                        t.at("crlfile")
                    ));
                }
                let which = match t.username {
                    CertUsername::Connect => None,
                    CertUsername::CommonName => Some("use_identity_as_username"),
                    CertUsername::Subject => Some("use_subject_as_username"),
                };
                if let Some(option) = which {
                    warnings.push(format!(
                        "{}{option} without require_certificate true: clients are not asked \
                         for a certificate, so every client on listener {port} is refused (as \
                         in mosquitto)",
                        t.at(option)
                    ));
                }
            }
            if t.tls13_only && t.ciphers.is_some() {
                warnings.push(format!(
                    "{}ciphers has no effect: tls_version tlsv1.3 allows no TLS 1.2 cipher",
                    t.at("ciphers")
                ));
            }
        }
        self.warnings.extend(warnings);
        Ok(())
    }
}
