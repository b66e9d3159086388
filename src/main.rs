//! `midge`: the broker binary. Command line as mosquitto's: `midge [-c config] [-d] [-p port]
//! [-v] [-h]`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use log::{error, info, warn};

use std::collections::HashMap;
use std::rc::Rc;

use midge::auth::acl::Acl;
use midge::auth::password::PasswordFile;
use midge::broker::{Broker, ListenerPolicy};
use midge::config::{self, Config};
use midge::logging::{self, LogOptions};
use midge::net;
use midge::persist::atomic::NewFile;
use midge::store::{Autosave, Loaded, Store};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn usage(opts: &getopts::Options) -> String {
    let brief = format!(
        "midge version {VERSION}\n\nmidge is an MQTT v5.0/v3.1.1/v3.1 broker.\n\n\
         Usage: midge [-c config_file] [-d] [-h] [-p port] [-v]"
    );
    opts.usage(&brief)
}

/// `-d`: start a copy of this program in its own process group with no terminal, and exit.
fn daemonize() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "-d" && a != "--daemon")
        .collect();
    std::process::Command::new(exe)
        .args(args)
        .env("MIDGE_DAEMONIZED", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(())
}

fn main() -> ExitCode {
    let mut opts = getopts::Options::new();
    opts.optopt(
        "c",
        "config-file",
        "read the configuration from a file",
        "FILE",
    );
    opts.optflag("d", "daemon", "run in the background");
    opts.optmulti(
        "p",
        "port",
        "listen on this port (local only mode unless a listener is configured)",
        "PORT",
    );
    opts.optflag("v", "verbose", "verbose logging (all log types)");
    opts.optflag("h", "help", "display this help");
    let m = match opts.parse(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("Error: {e}\n\n{}", usage(&opts));
            return ExitCode::from(1);
        }
    };
    if m.opt_present("h") {
        println!("{}", usage(&opts));
        return ExitCode::SUCCESS;
    }
    let verbose = m.opt_present("v") || logging::verbose_from_env();
    if let Err(e) = logging::init(&LogOptions {
        verbose,
        ..LogOptions::default()
    }) {
        eprintln!("Error: {e}");
        return ExitCode::from(1);
    }

    let mut cfg = Config::default();
    let config_file = m.opt_str("c");
    let config_file_for_reload = config_file.clone();
    if let Some(path) = &config_file {
        if let Err(e) = load_config(path, &mut cfg) {
            error!("Error: {e}");
            return ExitCode::from(1);
        }
    }
    let mut local_port = 1883;
    for p in m.opt_strs("p") {
        match p.parse::<u16>() {
            Ok(port) if cfg.local_only() => local_port = port,
            Ok(port) => cfg.listeners.push(config::Listener::new(port, None)),
            Err(_) => {
                error!("Error: Invalid port '{p}'.");
                return ExitCode::from(1);
            }
        }
    }
    if let Err(e) = logging::init(&LogOptions::from_config(&cfg, verbose)) {
        error!("Error: {e}");
        return ExitCode::from(1);
    }
    let listener_policies = match policies(&cfg, local_port) {
        Ok(p) => p,
        Err(e) => {
            error!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    // Certificates and keys are read now, while still root if started as root.
    let listener_stacks = match stacks(&cfg) {
        Ok(s) => s,
        Err(e) => {
            error!("Error: {e}");
            return ExitCode::from(1);
        }
    };

    if m.opt_present("d") && std::env::var_os("MIDGE_DAEMONIZED").is_none() {
        return match daemonize() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("Error: unable to start in the background: {e}.");
                ExitCode::from(1)
            }
        };
    }

    info!("midge version {VERSION} starting");
    match &config_file {
        Some(path) => info!("Config loaded from {path}."),
        None => info!("Using default config."),
    }
    if cfg.local_only() {
        info!("Starting in local only mode. Connections will only be possible from clients running on this machine.");
        info!("Create a configuration file which defines a listener to allow remote access.");
    }
    // Persistence is read before any socket opens: a file from a newer midge stops start-up.
    let store = cfg
        .persistence
        .then(|| Store::new(cfg.persistence_location.as_deref(), &cfg.persistence_file));
    let loaded = match store.as_ref().map(Store::load) {
        None => None,
        Some(Ok(Loaded::Nothing)) => None,
        Some(Ok(Loaded::Snapshot(s))) => Some(s),
        Some(Err(e)) => {
            error!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    let listeners = match net::bind(&cfg.all_listeners(), local_port) {
        Ok(l) => l,
        Err(e) => {
            error!("Error: {e}.");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &cfg.pid_file {
        if let Err(e) = write_pid_file(path) {
            error!("Error: Unable to write pid file {path}: {e}.");
            return ExitCode::from(1);
        }
    }
    // As mosquitto: started as root, continue as the configured user, or as `midge` when that
    // user exists and none is configured.
    let user = cfg.user.clone().or_else(|| {
        nix::unistd::User::from_name("midge")
            .ok()
            .flatten()
            .map(|_| "midge".to_string())
    });
    if let Some(user) = &user {
        if let Err(e) = drop_privileges(user) {
            error!("Error: {e}");
            return ExitCode::from(1);
        }
    }
    let mut bcfg = cfg.broker.clone();
    bcfg.listeners = listener_policies;
    bcfg.id_seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    // A bridge's remote client id defaults to HOSTNAME.NAME, as in mosquitto.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    for b in &mut bcfg.bridges {
        if b.remote_clientid.is_none() {
            b.remote_clientid = Some(format!("{host}.{}", b.name));
        }
    }
    let mut broker = Broker::new(bcfg);
    if let Some(snap) = loaded {
        let (r, s) = broker.restore(snap, 0);
        info!("Restored {r} retained messages and {s} sessions from the persistence file.");
    }
    broker.start_bridges(0);
    let mut server = match net::Server::new(broker, listeners, cfg.set_tcp_nodelay) {
        Ok(s) => s,
        Err(e) => {
            error!("Error: {e}.");
            return ExitCode::from(1);
        }
    };
    // Bridges with TLS: their client configurations, read now so that a bad file stops
    // start-up with a message naming it.
    #[cfg(feature = "tls")]
    {
        let mut tls = Vec::new();
        for b in server.broker().bridge_configs() {
            if !b.tls.enabled() {
                tls.push(None);
                continue;
            }
            match net::tls_client::client_config(&b.name, &b.tls) {
                Ok(c) => tls.push(Some(c)),
                Err(e) => {
                    error!("Error: {e}.");
                    return ExitCode::from(1);
                }
            }
        }
        server.set_bridge_tls(tls);
    }
    #[cfg(not(feature = "tls"))]
    if let Some(b) = server.broker().bridge_configs().find(|b| b.tls.enabled()) {
        error!(
            "Error: bridge {}: this midge was built without TLS.",
            b.name
        );
        return ExitCode::from(1);
    }
    server.set_stacks(listener_stacks);
    if let Some(store) = store {
        server.persist(
            store,
            Autosave {
                interval: cfg.autosave_interval,
                on_changes: cfg.autosave_on_changes,
            },
        );
    }
    let reload_cfg = cfg.clone();
    let reload: net::Reload = Box::new(move || {
        // mosquitto re-reads the password and ACL files on SIGHUP.
        let mut fresh = Config::default();
        if let Some(path) = &config_file_for_reload {
            load_config(path, &mut fresh).map_err(|e| e.to_string())?;
        } else {
            fresh = reload_cfg.clone();
        }
        logging::init(&LogOptions::from_config(&fresh, verbose))?;
        if fresh.all_listeners().len() != reload_cfg.all_listeners().len() {
            return Err("the listeners changed; restart midge to apply them".into());
        }
        let policies = policies(&fresh, local_port)?;
        // mosquitto reloads the certificate and key; midge also the CAs and the CRL.
        let stacks = match stacks(&fresh) {
            Ok(s) => Some(s),
            Err(e) => {
                error!("Error: TLS reload failed, new connections keep the old certificates: {e}");
                None
            }
        };
        Ok(net::Reloaded { policies, stacks })
    });
    match net::Signals::new().and_then(|s| server.handle_signals(s, reload)) {
        Ok(()) => {}
        Err(e) => warn!("Signals will not be handled: {e}."),
    }
    info!("midge version {VERSION} running");
    notify_ready();
    let result = server.run();
    if let Some(path) = &cfg.pid_file {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("Error: event loop failed: {e}.");
            ExitCode::from(1)
        }
    }
}

/// Writes this process's id and a newline to `path`, atomically: an init script or a
/// supervisor reading the file at the moment it appears sees the whole line, never an empty
/// or partial file.
fn write_pid_file(path: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut new = NewFile::create(
        std::path::PathBuf::from(format!("{path}.new")),
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
    )?;
    new.file()
        .write_all(format!("{}\n", std::process::id()).as_bytes())?;
    new.commit(std::path::Path::new(path))
}

/// `user NAME`: when started as root, continue as NAME (after the listeners are open, so
/// ports below 1024 work). As root with `user root`, or as another user, nothing changes.
fn drop_privileges(name: &str) -> Result<(), String> {
    use nix::unistd::{geteuid, setgid, setgroups, setuid, User};
    if !geteuid().is_root() {
        return Ok(());
    }
    if name == "root" {
        warn!("Warning: midge should not be run as root.");
        return Ok(());
    }
    let user = User::from_name(name)
        .map_err(|e| format!("Unable to look up user '{name}': {e}."))?
        .ok_or_else(|| format!("Invalid user '{name}'."))?;
    setgroups(&[user.gid]).map_err(|e| format!("Unable to drop privileges to '{name}': {e}."))?;
    setgid(user.gid).map_err(|e| format!("Unable to drop privileges to '{name}': {e}."))?;
    setuid(user.uid).map_err(|e| format!("Unable to drop privileges to '{name}': {e}."))?;
    info!("Dropped privileges to user '{name}'.");
    Ok(())
}

/// Reads `path` and the `include_dir` files it names into `cfg`.
fn load_config(path: &str, cfg: &mut Config) -> Result<(), config::Error> {
    let text = std::fs::read_to_string(path).map_err(|e| config::Error {
        file: path.to_string(),
        line: 0,
        msg: format!("Unable to open config file: {e}"),
    })?;
    let mut read_dir = |dir: &str| -> Result<Vec<(String, String)>, String> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".conf") {
                continue;
            }
            let full = entry.path();
            let text =
                std::fs::read_to_string(&full).map_err(|e| format!("{}: {e}", full.display()))?;
            files.push((full.display().to_string(), text));
        }
        Ok(files)
    };
    config::parse(&text, path, cfg, Some(&mut read_dir))?;
    cfg.check()?;
    for w in std::mem::take(&mut cfg.warnings) {
        warn!("Warning: {w}.");
    }
    Ok(())
}

/// Each listener's transport (by configuration index): TLS for those with certfile and keyfile,
/// under WebSocket for those with `protocol websockets`; plain TCP otherwise.
fn stacks(cfg: &Config) -> Result<Vec<net::Stack>, String> {
    let listeners = cfg.all_listeners();
    let websockets = net::websocket::stacks(
        &listeners,
        cfg.websockets_headers_size,
        cfg.websockets_log_level,
        net::websocket::packet_limit(&cfg.broker),
    );
    let mut out = Vec::new();
    for (l, ws) in listeners.iter().zip(websockets) {
        if !l.tls.enabled() {
            out.push(ws);
            continue;
        }
        #[cfg(feature = "tls")]
        {
            let config = net::tls::server_config(&l.tls)?;
            out.push(net::tls::stack(config, l.tls.username).under(ws));
        }
        #[cfg(not(feature = "tls"))]
        return Err(format!(
            "listener {}: this midge was built without TLS support",
            l.port
        ));
    }
    Ok(out)
}

/// Loads a password file; unreadable lines are logged with their numbers (and those users
/// cannot log in), never with a password.
fn load_passwords(path: &str) -> Result<PasswordFile, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("Unable to open password file {path}: {e}."))?;
    // Bytes, so that one line that is not UTF-8 does not make the whole file unreadable.
    let (file, warnings) = PasswordFile::parse_bytes(&bytes);
    for w in warnings {
        warn!("Warning: password file {path} line {}: {}", w.line, w.msg);
    }
    Ok(file)
}

fn load_acl(path: &str) -> Result<Acl, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Unable to open acl_file {path}: {e}."))?;
    Acl::parse(&text).map_err(|e| format!("acl_file {path} {e}."))
}

/// One broker policy per listener (or one for local only mode), security files loaded once
/// each and shared.
fn policies(cfg: &Config, local_port: u16) -> Result<Vec<ListenerPolicy>, String> {
    let mut pw_cache: HashMap<String, Rc<PasswordFile>> = HashMap::new();
    let mut acl_cache: HashMap<String, Rc<Acl>> = HashMap::new();
    let listeners = cfg.all_listeners();
    let local = config::Listener::new(local_port, None);
    let list: Vec<&config::Listener> = if listeners.is_empty() {
        vec![&local]
    } else {
        listeners.iter().collect()
    };
    let mut out = Vec::new();
    for l in list {
        let sec = cfg.security_for(Some(l));
        let passwords = match &sec.password_file {
            None => None,
            Some(p) => Some(match pw_cache.get(p) {
                Some(f) => f.clone(),
                None => {
                    let f = Rc::new(load_passwords(p)?);
                    pw_cache.insert(p.clone(), f.clone());
                    f
                }
            }),
        };
        let acl = match &sec.acl_file {
            None => None,
            Some(p) => Some(match acl_cache.get(p) {
                Some(a) => a.clone(),
                None => {
                    let a = Rc::new(load_acl(p)?);
                    acl_cache.insert(p.clone(), a.clone());
                    a
                }
            }),
        };
        out.push(ListenerPolicy {
            port: l.port,
            allow_anonymous: cfg.allow_anonymous(sec),
            allow_zero_length_clientid: sec.allow_zero_length_clientid.unwrap_or(true),
            auto_id_prefix: sec.auto_id_prefix.clone().unwrap_or_else(|| "auto-".into()),
            use_username_as_clientid: l.use_username_as_clientid,
            max_qos: l.max_qos,
            max_topic_alias: l.max_topic_alias,
            mount_point: l.mount_point.clone(),
            max_connections: usize::try_from(l.max_connections).ok(),
            passwords,
            acl,
            cert_username: l.tls.enabled() && l.tls.username != config::CertUsername::Connect,
        });
    }
    Ok(out)
}

/// Tells systemd (`Type=notify`) that the listeners are open and clients can connect.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(b"READY=1", &a))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    if let Err(e) = sent {
        warn!("Could not notify systemd: {e}.");
    }
}
