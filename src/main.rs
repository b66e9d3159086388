//! `midge`: the broker binary. Command line as mosquitto's: `midge [-c config] [-d] [-p port]
//! [-v] [-h]`.

use std::io::Write;
use std::process::ExitCode;

use log::{error, info};

use midge::broker::Broker;
use midge::config::{self, Config};
use midge::net;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn usage(opts: &getopts::Options) -> String {
    let brief = format!(
        "midge version {VERSION}\n\nmidge is an MQTT v3.1.1/v3.1 broker.\n\n\
         Usage: midge [-c config_file] [-d] [-h] [-p port] [-v]"
    );
    opts.usage(&brief)
}

fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|buf, record| {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            writeln!(buf, "{ts}: {}", record.args())
        })
        .init();
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
    init_logging(m.opt_present("v"));

    let mut cfg = Config::default();
    let config_file = m.opt_str("c");
    if let Some(path) = &config_file {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                error!("Error: Unable to open config file {path}: {e}.");
                return ExitCode::from(1);
            }
        };
        if let Err(e) = config::parse(&text, path, &mut cfg) {
            error!("Error: {e}");
            return ExitCode::from(1);
        }
    }
    let mut local_port = 1883;
    for p in m.opt_strs("p") {
        match p.parse::<u16>() {
            Ok(port) if cfg.local_only() => local_port = port,
            Ok(port) => cfg.listeners.push(config::Listener { port, bind: None }),
            Err(_) => {
                error!("Error: Invalid port '{p}'.");
                return ExitCode::from(1);
            }
        }
    }

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
    let listeners = match net::bind(&cfg.listeners, local_port) {
        Ok(l) => l,
        Err(e) => {
            error!("Error: {e}.");
            return ExitCode::from(1);
        }
    };
    let mut bcfg = cfg.broker_config();
    bcfg.id_seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    let broker = Broker::new(bcfg);
    let mut server = match net::Server::new(broker, listeners) {
        Ok(s) => s,
        Err(e) => {
            error!("Error: {e}.");
            return ExitCode::from(1);
        }
    };
    info!("midge version {VERSION} running");
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("Error: event loop failed: {e}.");
            ExitCode::from(1)
        }
    }
}
