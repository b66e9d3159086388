//! midge_passwd and Debian's mosquitto 2.0, both directions:
//! - files written by `midge_passwd` are accepted by the real `mosquitto` broker (a correct
//!   password publishes, a wrong one gets "Connection Refused: not authorised.");
//! - files written by the real `mosquitto_passwd` are accepted by midge's parser;
//! - `midge_passwd` gives the same messages and exit statuses as `mosquitto_passwd` for the same
//!   mistakes, and edits files atomically without losing their other lines.
//!
//! Needs `mosquitto`, `mosquitto_passwd` and `mosquitto_pub` (Debian: the `mosquitto` and
//! `mosquitto-clients` packages) and util-linux's `script`; scripts/test.sh installs them. Every
//! child process runs under a deadline and is killed if the test ends first.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use midge::auth::password::{HashType, PasswordFile};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How long a child may take; generous for emulated ARM runs.
fn patience() -> Duration {
    if std::env::var_os("XCHECK_EXEC_WRAPPER").is_some() {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(20)
    }
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "midge-passwd-test-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // mosquitto resolves paths, so compare with the canonical form.
        TempDir(std::fs::canonicalize(&p).unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
    /// The names in the directory, to prove no temporary file was left behind.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Finds a tool on PATH (and in the sbin directories, where Debian puts `mosquitto`), or fails
/// the test saying how to get it.
fn require(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{tool}` was not found on PATH: run scripts/test.sh, which installs the Debian packages \
         mosquitto and mosquitto-clients (and util-linux's `script`) that these tests need"
    );
}

/// A child process killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a reader thread that collects everything from `r`.
fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
    buf
}

/// Runs `cmd` with `stdin`, killing it if it outlives the deadline.
fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}")),
    );
    let mut input = child.0.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    let out = collect(child.0.stdout.take().unwrap());
    let err = collect(child.0.stderr.take().unwrap());
    let deadline = Instant::now() + patience();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{what} did not finish in time");
        std::thread::sleep(Duration::from_millis(5));
    };
    // The pipes close when the child exits; give the readers a moment to finish.
    let settle = Instant::now() + Duration::from_secs(5);
    let output = loop {
        let done = Arc::strong_count(&out) == 1 && Arc::strong_count(&err) == 1;
        if done || Instant::now() > settle {
            break Output {
                status,
                stdout: out.lock().unwrap().clone(),
                stderr: err.lock().unwrap().clone(),
            };
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    output
}

fn midge_passwd_command() -> Command {
    let bin = env!("CARGO_BIN_EXE_midge_passwd");
    match std::env::var("XCHECK_EXEC_WRAPPER") {
        Ok(w) if !w.trim().is_empty() => {
            let mut words = w.split_whitespace();
            let mut c = Command::new(words.next().unwrap());
            c.args(words).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

/// Runs midge_passwd in `dir` with `args`.
fn midge_passwd(dir: &TempDir, args: &[&str]) -> Output {
    midge_passwd_stdin(dir, args, b"")
}

fn midge_passwd_stdin(dir: &TempDir, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = midge_passwd_command();
    c.current_dir(&dir.0).args(args);
    run(c, stdin)
}

fn mosquitto_passwd(dir: &TempDir, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(require("mosquitto_passwd"));
    c.current_dir(&dir.0).args(args);
    run(c, stdin)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// Whether these tests run as root (then mosquitto would switch to its own user before
/// reading the password file, unless told not to).
fn running_as_root(dir: &TempDir) -> bool {
    let p = dir.write(".whoami", "");
    let uid = std::fs::metadata(&p).unwrap().uid();
    std::fs::remove_file(p).unwrap();
    uid == 0
}

/// Debian's mosquitto broker on 127.0.0.1 with `allow_anonymous false` and a password file.
struct Mosquitto {
    _child: Guard,
    port: u16,
    log: PathBuf,
}

impl Mosquitto {
    fn start(dir: &TempDir, password_file: &Path) -> Mosquitto {
        let bin = require("mosquitto");
        let user = if running_as_root(dir) {
            "user root\n"
        } else {
            ""
        };
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let conf = dir.write(
                &format!("mosquitto-{attempt}.conf"),
                &format!(
                    "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                     log_dest stderr\n{user}",
                    password_file.display()
                ),
            );
            let log = dir.path(&format!("mosquitto-{attempt}.log"));
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let mut child = Guard(child);
            let deadline = Instant::now() + patience();
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Mosquitto {
                        _child: child,
                        port,
                        log,
                    };
                }
                if child.0.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(child);
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("mosquitto did not start:\n{last_log}");
    }

    /// `mosquitto_pub -u USER -P PASSWORD -t t -m m` against this broker.
    fn publish(&self, credentials: Option<(&str, &str)>) -> Output {
        let mut c = Command::new(require("mosquitto_pub"));
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some((u, p)) = credentials {
            c.args(["-u", u, "-P", p]);
        }
        c.args(["-t", "t", "-m", "m"]);
        run(c, b"")
    }

    #[track_caller]
    fn assert_accepts(&self, user: &str, password: &str) {
        let o = self.publish(Some((user, password)));
        assert!(
            o.status.success(),
            "mosquitto refused {user:?}: exit {:?}, {}\nbroker log:\n{}",
            o.status.code(),
            stderr(&o),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    #[track_caller]
    fn assert_refuses(&self, credentials: Option<(&str, &str)>) {
        let o = self.publish(credentials);
        assert_eq!(o.status.code(), Some(5), "{credentials:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("Connection Refused: not authorised."),
            "{credentials:?}: {}",
            stderr(&o)
        );
    }
}

fn parse(text: &str) -> PasswordFile {
    let (f, warnings) = PasswordFile::parse(text);
    assert_eq!(warnings, vec![], "{text}");
    f
}

// ---------------------------------------------------------------------------------------------
// midge_passwd → mosquitto

#[test]
fn files_written_by_midge_passwd_are_accepted_by_debian_mosquitto() {
    let dir = TempDir::new();
    dir.write("passwd", "# written by midge_passwd\n\n");
    ok(midge_passwd(
        &dir,
        &["-b", "passwd", "john_doe", "EXAMPLE_PASSWORD"],
    ));
    ok(midge_passwd(
        &dir,
        &[
            "-H",
            "sha512",
            "-b",
            "passwd",
            "mary_smith",
            "EXAMPLE_PASSWORD_2",
        ],
    ));
    ok(midge_passwd(
        &dir,
        &["-I", "1000", "-b", "passwd", "sensor", "iterations: 1000"],
    ));
    ok(midge_passwd(
        &dir,
        &["-b", "passwd", "J\u{fc}rgen", "p\u{e4}ss \u{2713}"],
    ));
    ok(midge_passwd_stdin(
        &dir,
        &["passwd", "typed"],
        b"typed password\ntyped password\n",
    ));

    let text = dir.read("passwd");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["# written by midge_passwd", ""]);
    assert!(lines[2].starts_with("john_doe:$7$101$"), "{text}");
    assert!(lines[3].starts_with("mary_smith:$6$"), "{text}");
    assert!(lines[4].starts_with("sensor:$7$1000$"), "{text}");
    assert!(lines[6].starts_with("typed:$7$101$"), "{text}");
    assert_eq!(lines.len(), 7);
    let f = parse(&text);
    assert_eq!(f.hash("john_doe").unwrap().salt_len(), 12);
    assert_eq!(f.hash("mary_smith").unwrap().kind(), HashType::Sha512);

    let broker = Mosquitto::start(&dir, &dir.path("passwd"));
    broker.assert_accepts("john_doe", "EXAMPLE_PASSWORD");
    broker.assert_accepts("mary_smith", "EXAMPLE_PASSWORD_2");
    broker.assert_accepts("sensor", "iterations: 1000");
    broker.assert_accepts("J\u{fc}rgen", "p\u{e4}ss \u{2713}");
    broker.assert_accepts("typed", "typed password");
    broker.assert_refuses(Some(("john_doe", "WRONG_PASSWORD")));
    broker.assert_refuses(Some(("mary_smith", "EXAMPLE_PASSWORD")));
    broker.assert_refuses(Some(("sensor", "iterations: 100")));
    broker.assert_refuses(Some(("nobody", "EXAMPLE_PASSWORD")));
    broker.assert_refuses(None);
}

#[test]
fn seeds_guide_plain_text_file_converted_with_u_is_accepted_by_mosquitto_and_midge() {
    // ../shared/seeds/002: write user:password lines, `mosquitto_passwd -U` them, restart.
    let dir = TempDir::new();
    dir.write(
        "passwd",
        "john_doe:EXAMPLE_PASSWORD\nmary_smith:EXAMPLE_PASSWORD_2\n",
    );
    let o = ok(midge_passwd(&dir, &["-U", "passwd"]));
    assert_eq!(stderr(&o), "");
    assert_eq!(stdout(&o), "");
    let text = dir.read("passwd");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("john_doe:$7$101$"), "{text}");
    assert!(lines[1].starts_with("mary_smith:$7$101$"), "{text}");
    assert!(!text.contains("EXAMPLE"));

    let f = parse(&text);
    assert!(f.check("john_doe", b"EXAMPLE_PASSWORD"));
    assert!(f.check("mary_smith", b"EXAMPLE_PASSWORD_2"));
    assert!(!f.check("john_doe", b"WRONG_PASSWORD"));

    let broker = Mosquitto::start(&dir, &dir.path("passwd"));
    broker.assert_accepts("john_doe", "EXAMPLE_PASSWORD");
    broker.assert_accepts("mary_smith", "EXAMPLE_PASSWORD_2");
    broker.assert_refuses(Some(("john_doe", "WRONG_PASSWORD")));
    broker.assert_refuses(None);
}

// ---------------------------------------------------------------------------------------------
// mosquitto_passwd → midge

#[test]
fn files_written_by_debian_mosquitto_passwd_now_are_accepted_by_midge() {
    // The committed fixtures are checked in src/auth/password.rs; this makes fresh ones.
    let dir = TempDir::new();
    let o = mosquitto_passwd(
        &dir,
        &["-c", "-b", "passwd", "john_doe", "EXAMPLE_PASSWORD"],
        b"",
    );
    ok(o);
    ok(mosquitto_passwd(
        &dir,
        &["-H", "sha512", "-b", "passwd", "old", "sha512 password"],
        b"",
    ));
    ok(mosquitto_passwd(
        &dir,
        &["-I", "7", "-b", "passwd", "seven", "7 times"],
        b"",
    ));
    dir.write("plain", "john_doe:EXAMPLE_PASSWORD\n");
    ok(mosquitto_passwd(&dir, &["-U", "plain"], b""));

    let f = parse(&dir.read("passwd"));
    assert!(f.check("john_doe", b"EXAMPLE_PASSWORD"));
    assert!(f.check("old", b"sha512 password"));
    assert!(f.check("seven", b"7 times"));
    assert!(!f.check("john_doe", b"WRONG_PASSWORD"));
    assert!(!f.check("old", b"sha512 passwor"));
    assert_eq!(
        f.hash("seven").unwrap().kind(),
        HashType::Sha512Pbkdf2 { iterations: 7 }
    );
    let f = parse(&dir.read("plain"));
    assert!(f.check("john_doe", b"EXAMPLE_PASSWORD"));
}

#[test]
fn committed_fixtures_are_accepted_by_debian_mosquitto_too() {
    // So the fixtures are what they claim to be.
    let dir = TempDir::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all = String::new();
    for f in ["mosquitto_passwd_pbkdf2.txt", "mosquitto_passwd_sha512.txt"] {
        let text = std::fs::read_to_string(fixtures.join(f)).unwrap();
        // One file: rename the $6$ users so no name repeats.
        let text = if f.contains("sha512") {
            text.lines().map(|l| format!("six_{l}\n")).collect()
        } else {
            text
        };
        all.push_str(&text);
    }
    let path = dir.write("passwd", &all);
    let broker = Mosquitto::start(&dir, &path);
    broker.assert_accepts("john_doe", "EXAMPLE_PASSWORD");
    broker.assert_accepts("sensor-1000", "iterations: 1000, colon and spaces");
    broker.assert_accepts("six_mary_smith", "EXAMPLE_PASSWORD_2");
    broker.assert_refuses(Some(("six_john_doe", "EXAMPLE_PASSWORD_2")));
}

// ---------------------------------------------------------------------------------------------
// Editing

const ALICE: &str = "alice:$7$101$AAECAwQFBgcICQoL$l8zqSPOVOsX6BzXddvHVSUz51tfFGYiwZgYMerEYSK2kmFD86m93us2E5cM8HAComZhsUAqG/9HmFNzmBd+GRQ==";

#[test]
fn u_keeps_hashed_lines_comments_and_blank_lines_as_they_are() {
    let dir = TempDir::new();
    let before = format!(
        "# users\n\n{ALICE}\r\n  bob : bob's password \nhash:$6$kept as it is\n\ncarol:c:with:colons"
    );
    dir.write("passwd", &before);
    let o = ok(midge_passwd(&dir, &["-U", "passwd"]));
    let text = dir.read("passwd");
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines[0], "# users");
    assert_eq!(lines[1], "");
    assert_eq!(lines[2], format!("{ALICE}\r"));
    assert!(lines[3].starts_with("bob:$7$101$"), "{text}");
    assert_eq!(lines[4], "hash:$6$kept as it is");
    assert_eq!(lines[5], "");
    assert!(lines[6].starts_with("carol:$7$101$"), "{text}");
    assert_eq!(lines[7], "");
    assert_eq!(lines.len(), 8);

    let (f, warnings) = PasswordFile::parse(&text);
    assert!(f.check("alice", b"pw"));
    assert!(f.check("bob", b"bob's password"));
    assert!(f.check("carol", b"c:with:colons"));
    assert!(!f.contains("hash"));
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].line, 5);
    // The kept '$' line that is not a hash is pointed out.
    let err = stderr(&o);
    assert!(
        err.contains("Warning: line 5: the password of user \"hash\" begins with '$'"),
        "{err}"
    );
    assert!(
        err.contains(", line 5: user \"hash\" cannot log in"),
        "{err}"
    );

    // Converting again changes nothing.
    let before = std::fs::read(dir.path("passwd")).unwrap();
    ok(midge_passwd(&dir, &["-U", "passwd"]));
    assert_eq!(std::fs::read(dir.path("passwd")).unwrap(), before);
}

#[test]
fn u_refuses_a_corrupt_file_and_leaves_it_untouched() {
    let dir = TempDir::new();
    let before = "john_doe:EXAMPLE_PASSWORD\n# fine\njohn_doe EXAMPLE_PASSWORD_2\nmary:x\n";
    dir.write("passwd", before);
    let o = midge_passwd(&dir, &["-U", "passwd"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "Error: Corrupt password file at line 3.\n");
    assert_eq!(dir.read("passwd"), before);
    assert_eq!(dir.names(), ["passwd"]);
}

#[test]
fn d_deletes_every_line_of_the_user_and_keeps_the_others() {
    let dir = TempDir::new();
    let before = format!("# c\nbob:$6$a$b\n{ALICE}\n\nbob:$7$x\ncarol:plain");
    dir.write("passwd", &before);
    let o = ok(midge_passwd(&dir, &["-D", "passwd", "bob"]));
    assert_eq!(dir.read("passwd"), format!("# c\n{ALICE}\n\ncarol:plain"));
    // What the broker will say about what is left.
    assert!(
        stderr(&o)
            .contains(", line 4: user \"carol\" cannot log in: the password is in plain text"),
        "{}",
        stderr(&o)
    );

    let before = dir.read("passwd");
    let o = midge_passwd(&dir, &["-D", "passwd", "bob"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Warning: User bob not found in password file.\n"
    );
    assert_eq!(dir.read("passwd"), before);
    assert_eq!(dir.names(), ["passwd"]);
}

#[test]
fn c_creates_a_file_or_overwrites_one() {
    let dir = TempDir::new();
    ok(midge_passwd(&dir, &["-c", "-b", "new", "u", "pw"]));
    let text = dir.read("new");
    assert_eq!(text.lines().count(), 1);
    assert!(parse(&text).check("u", b"pw"));

    dir.write("old", &format!("# old\n{ALICE}\nbob:$6$x$y\n"));
    ok(midge_passwd_stdin(
        &dir,
        &["-c", "old", "carol"],
        b"carol pw\ncarol pw\n",
    ));
    let text = dir.read("old");
    assert!(
        text.starts_with("carol:$7$101$") && text.lines().count() == 1,
        "{text}"
    );
    assert!(parse(&text).check("carol", b"carol pw"));
    let mut names = dir.names();
    names.sort();
    assert_eq!(names, ["new", "old"]);
}

#[test]
fn b_updates_the_line_in_place_and_keeps_every_other_byte() {
    let dir = TempDir::new();
    // A comment, CRLF, a damaged line, a duplicate of bob, and no newline at the end.
    let before =
        format!("# head\r\n\n{ALICE}\r\nbob:$6$old$old\r\nbroken line\nbob:$7$older\ncarol:x");
    dir.write("passwd", &before);
    ok(midge_passwd(&dir, &["-b", "passwd", "bob", "new bob"]));
    let text = dir.read("passwd");
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines[..3], ["# head\r", "", &format!("{ALICE}\r")]);
    assert!(
        lines[3].starts_with("bob:$7$101$") && lines[3].ends_with('\r'),
        "{text}"
    );
    assert_eq!(lines[4..], ["broken line", "carol:x"]);
    let (f, _) = PasswordFile::parse(&text);
    assert!(f.check("bob", b"new bob"));
    assert!(f.check("alice", b"pw"));

    // A new user goes at the end, after a newline for the last line.
    ok(midge_passwd(&dir, &["-b", "passwd", "dave", "d"]));
    let text2 = dir.read("passwd");
    assert!(
        text2.starts_with(&format!("{text}\ndave:$7$101$")),
        "{text2}"
    );
    assert!(text2.ends_with("==\n"));
    let (f, _) = PasswordFile::parse(&text2);
    assert!(f.check("dave", b"d"));
    assert!(f.check("bob", b"new bob"));
}

#[test]
fn a_damaged_line_is_reported_with_its_line_number() {
    let dir = TempDir::new();
    dir.write(
        "passwd",
        &format!("# c\n{ALICE}\nbad:$7$101$AAECAwQFBgcICQoL$AAAA\nno colon here\n"),
    );
    let o = ok(midge_passwd(&dir, &["-b", "passwd", "new", "pw"]));
    let p = dir.path("passwd");
    assert_eq!(
        stderr(&o),
        format!(
            "Warning: {0}, line 3: user \"bad\" cannot log in: the hash is 3 bytes long \
             instead of 64\nWarning: {0}, line 4: not a `user:hash` line (no ':'); ignored, no \
             user can log in with it\n",
            p.display()
        )
    );
    let (f, warnings) = PasswordFile::parse(&dir.read("passwd"));
    assert_eq!(warnings.iter().map(|w| w.line).collect::<Vec<_>>(), [3, 4]);
    assert!(!f.contains("bad"));
    assert!(f.check("alice", b"pw"));
    assert!(f.check("new", b"pw"));
}

#[test]
fn writes_replace_the_file_atomically_keeping_its_mode() {
    let dir = TempDir::new();
    let p = dir.write("passwd", &format!("{ALICE}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let inode = std::fs::metadata(&p).unwrap().ino();
    ok(midge_passwd(&dir, &["-b", "passwd", "bob", "pw"]));
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_ne!(
        meta.ino(),
        inode,
        "the file was rewritten in place, not replaced"
    );
    assert_eq!(dir.names(), ["passwd"]);

    // Through a symbolic link: the target changes, the link stays.
    std::os::unix::fs::symlink("passwd", dir.path("link")).unwrap();
    ok(midge_passwd(&dir, &["-b", "link", "carol", "pw"]));
    assert!(std::fs::symlink_metadata(dir.path("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(parse(&dir.read("passwd")).check("carol", b"pw"));
    assert_eq!(dir.names(), ["link", "passwd"]);
}

#[test]
fn failures_leave_the_file_untouched_and_no_temporary_file() {
    let dir = TempDir::new();
    let before = format!("# keep me\n{ALICE}\n");
    dir.write("passwd", &before);
    for (args, stdin, code) in [
        (&["-D", "passwd", "nobody"][..], &b""[..], 1),
        (&["passwd", "bob"][..], &b"one\ntwo\n"[..], 2),
        (&["passwd", "bob"][..], &b""[..], 1),
        (&["-b", "passwd", "bad:name", "pw"][..], &b""[..], 1),
        (&["-H", "md5", "-b", "passwd", "bob", "pw"][..], &b""[..], 1),
        (&["-c", "passwd", "bob"][..], &b"one\ntwo\n"[..], 2),
    ] {
        let o = midge_passwd_stdin(&dir, args, stdin);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert_eq!(dir.read("passwd"), before, "{args:?}");
        assert_eq!(dir.names(), ["passwd"], "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Same behaviour as mosquitto_passwd

/// Arguments, files to create first (name, text), and stdin.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [u8]);

#[test]
fn same_errors_and_exit_statuses_as_mosquitto_passwd() {
    let hashed = format!("{ALICE}\n");
    let cases: &[Case] = &[
        (&["-c", "-D", "f", "u"], &[], b""),
        (&["-c", "-U", "f"], &[], b""),
        (&["-D", "-U", "f"], &[], b""),
        (&["-b", "-D", "f", "u"], &[], b""),
        (&["-H", "md5", "-b", "f", "u", "p"], &[], b""),
        (&["-H"], &[], b""),
        (&["-I"], &[], b""),
        (&["-I", "0", "-b", "f", "u", "p"], &[], b""),
        (&["-I", "x", "-b", "f", "u", "p"], &[], b""),
        (&["-b", "f", "a:b", "p"], &[], b""),
        (&["-b", "f", "a\u{1}b", "p"], &[], b""),
        (&["-c", "f"], &[], b""),
        (&["-c", "-b", "f", "u"], &[], b""),
        (&["-D", "f"], &[], b""),
        (&["-U"], &[], b""),
        (&["-U", "f", "x"], &[], b""),
        (&["-b", "missing.txt", "u", "p"], &[], b""),
        (&["-U", "missing.txt"], &[], b""),
        (&["-D", "f", "nobody"], &[("f", &hashed)], b""),
        (&["-U", "f"], &[("f", "john:pw\nbroken\n")], b""),
        (&["-b", "dir", "u", "p"], &[], b""),
        (&["-c", "-b", "dir", "u", "p"], &[], b""),
        (&["-c", "-b", "/nonexistent-dir/f", "u", "p"], &[], b""),
        (&[], &[], b""),
        (&["f", "u", "p"], &[], b""),
        (&["-b", "f", "u"], &[], b""),
        // Interactive, reading a pipe: prompts on stdout.
        (&["-c", "f", "u"], &[], b"pw\npx\n"),
        (&["-c", "f", "u"], &[], b""),
        (&["-c", "f", "u"], &[], b"pw\n"),
        (&["-c", "f", "u"], &[], b"\npw\npw\n"),
        (&["-c", "f", "u"], &[], b"pw\n\n"),
        (&["f", "u"], &[("f", &hashed)], b"a\nb\n"),
        // Successes print nothing.
        (&["-c", "f", "u"], &[], b"pw\npw\n"),
        (&["-c", "-b", "f", "u", "p"], &[], b""),
        (&["-b", "f", "u", "p"], &[("f", &hashed)], b""),
        (&["-D", "f", "alice"], &[("f", &hashed)], b""),
        (&["-U", "f"], &[("f", "john:pw\n")], b""),
    ];
    for (args, files, stdin) in cases {
        let mut results = Vec::new();
        for tool in ["mosquitto_passwd", "midge_passwd"] {
            let dir = TempDir::new();
            std::fs::create_dir(dir.path("dir")).unwrap();
            for (name, text) in *files {
                dir.write(name, text);
            }
            let o = if tool == "midge_passwd" {
                midge_passwd_stdin(&dir, args, stdin)
            } else {
                mosquitto_passwd(&dir, args, stdin)
            };
            let dir_name = dir.0.display().to_string();
            let norm = |s: String| s.replace(&dir_name, "<DIR>");
            // The usage text names the tool and lists -I; only its presence is compared.
            let out = stdout(&o);
            let out = if out.contains("Usage:") {
                "<usage>".to_owned()
            } else {
                norm(out)
            };
            let file = std::fs::read_to_string(dir.path("f")).ok();
            results.push((o.status.code(), norm(stderr(&o)), out, file.is_some()));
        }
        assert_eq!(results[0], results[1], "{args:?} with {stdin:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A real terminal

/// Runs `sh -c COMMAND` on a pseudo-terminal made by util-linux's `script`, answering each
/// prompt in turn once it appears; returns everything the terminal showed.
fn on_terminal(dir: &TempDir, command: &str, answers: &[(&str, &[u8])]) -> String {
    let mut c = Command::new(require("script"));
    c.current_dir(&dir.0)
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard(c.spawn().expect("cannot run script"));
    let mut input = child.0.stdin.take().unwrap();
    let out = collect(child.0.stdout.take().unwrap());
    let _err = collect(child.0.stderr.take().unwrap());
    let deadline = Instant::now() + patience();
    let shown = || String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let mut seen = 0;
    for (prompt, answer) in answers {
        loop {
            let s = shown();
            if let Some(i) = s[seen..].find(prompt) {
                seen += i + prompt.len();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no {prompt:?} on the terminal: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        input.write_all(answer).unwrap();
        input.flush().unwrap();
    }
    loop {
        if child.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "terminal session hung: {:?}",
            shown()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(input);
    std::thread::sleep(Duration::from_millis(100));
    shown()
}

/// The `stty -a` flags among `words`.
fn flags(shown: &str) -> Vec<&str> {
    shown
        .split_whitespace()
        .filter(|w| ["echo", "-echo", "icanon", "-icanon", "isig", "-isig"].contains(w))
        .collect()
}

/// The shell words that run midge_passwd, honouring `XCHECK_EXEC_WRAPPER`.
fn midge_passwd_shell() -> String {
    let bin = format!("'{}'", env!("CARGO_BIN_EXE_midge_passwd"));
    match std::env::var("XCHECK_EXEC_WRAPPER") {
        Ok(w) if !w.trim().is_empty() => format!("{w} {bin}"),
        _ => bin,
    }
}

#[test]
fn on_a_terminal_passwords_are_not_echoed_and_the_terminal_is_restored() {
    let dir = TempDir::new();
    let bin = midge_passwd_shell();
    let shown = on_terminal(
        &dir,
        &format!("{bin} -c passwd typed; echo status=$?; stty -a"),
        &[
            ("Password: ", b"s3cretX\x7f\r"),
            ("Reenter password: ", b"s3cret\r"),
        ],
    );
    assert!(!shown.contains("s3cret"), "{shown:?}");
    assert!(shown.contains("status=0"), "{shown:?}");
    assert_eq!(flags(&shown), ["isig", "icanon", "echo"], "{shown:?}");
    assert!(parse(&dir.read("passwd")).check("typed", b"s3cret"));
}

#[test]
fn on_a_terminal_ctrl_c_restores_the_terminal_and_writes_nothing() {
    let dir = TempDir::new();
    let bin = midge_passwd_shell();
    let shown = on_terminal(
        &dir,
        &format!("{bin} -c passwd typed; echo status=$?; stty -a"),
        &[("Password: ", b"s3c\x03")],
    );
    assert!(!shown.contains("s3c"), "{shown:?}");
    assert!(shown.contains("status=130"), "{shown:?}");
    assert_eq!(flags(&shown), ["isig", "icanon", "echo"], "{shown:?}");
    assert!(!dir.path("passwd").exists());
}

#[test]
fn on_a_terminal_a_mismatch_is_refused_with_status_2() {
    let dir = TempDir::new();
    let bin = midge_passwd_shell();
    let shown = on_terminal(
        &dir,
        &format!("{bin} -c passwd typed; echo status=$?; stty -a"),
        &[("Password: ", b"one\r"), ("Reenter password: ", b"two\r")],
    );
    assert!(
        shown.contains("Error: Passwords do not match."),
        "{shown:?}"
    );
    assert!(shown.contains("status=2"), "{shown:?}");
    assert_eq!(flags(&shown), ["isig", "icanon", "echo"], "{shown:?}");
    assert!(!dir.path("passwd").exists());
}
