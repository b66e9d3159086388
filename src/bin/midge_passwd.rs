//! midge_passwd: manages password files for midge, and for mosquitto: the same options, messages
//! and exit statuses as mosquitto_passwd 2.0, and files that Debian's mosquitto 2.0 reads.
//!
//! ```text
//! midge_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] FILE USER
//! midge_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b FILE USER PASSWORD
//! midge_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] -U FILE
//! ```
//!
//! Where it differs from mosquitto_passwd 2.0.11, on purpose:
//! - The file is replaced atomically (a temporary file in the same directory, fsync, rename), so
//!   an error or a power cut leaves either the old file or the new one. The old file's mode and
//!   owner are kept.
//! - Comment lines, blank lines and lines it does not understand are kept as they are (2.0.11
//!   reports "Corrupt password file" and then writes a file without them).
//! - `-U` keeps lines that are already hashed (anything starting with `$`) instead of hashing the
//!   hash, and hashes everything after the first `:` (2.0.11 stops at the next `:`).
//! - Extra arguments are an error rather than ignored (`-b FILE USER my password` would otherwise
//!   set the password "my"). User names that could never log in (empty, with blanks around them,
//!   or starting with `#`) are refused.
//! - An empty password is refused with `-b` too, as at the prompt (mosquitto_passwd 2.0 writes
//!   its hash with `-b`, but neither broker ever accepts an empty password).
//! - Ctrl-C at a password prompt exits with status 130 (mosquitto_passwd: 0).
//! - After writing, the problems the broker would log about the file are printed as warnings.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use getopts::{Fail as OptFail, Options, ParsingStyle};
use midge::auth::password::{
    is_blank, HashType, PasswordFile, PasswordHash, DEFAULT_ITERATIONS, MAX_ITERATIONS, SALT_LEN,
};
use midge::persist::atomic::{dir_of, sync_dir, NewFile};

/// The longest user name or password, as in MQTT (and mosquitto_passwd).
const MAX_LEN: usize = 65535;

/// A failure, already worded for stderr (nothing printed if empty), and the exit status.
#[derive(Debug, PartialEq, Eq)]
struct Fail {
    msg: String,
    code: u8,
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail {
        msg: msg.into(),
        code: 1,
    }
}

/// Usage text, printed to stdout (as mosquitto_passwd does).
const USAGE: &str = "\
midge_passwd is a tool for managing password files for midge and mosquitto.

Usage: midge_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username
       midge_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password
       midge_passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] -U passwordfile
 -b : run in batch mode to allow passing passwords on the command line.
 -c : create a new password file. This will overwrite existing files.
 -D : delete the username rather than adding/updating its password.
 -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.
      Mosquitto 1.6 and earlier defaulted to sha512.
 -I : the number of sha512-pbkdf2 iterations. Defaults to 101, as mosquitto_passwd 2.0.
 -U : update a plain text password file to use hashed passwords. Lines that are
      already hashed are kept as they are.

The file is replaced atomically: the new version is written to a temporary file in the
same directory, then renamed over it.
";

fn usage() -> Fail {
    print!("{USAGE}");
    let _ = io::stdout().flush();
    fail("")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha512,
    Sha512Pbkdf2,
}

#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Add or update a user; `create` starts a new file; `password` is `-b`'s.
    Set {
        user: String,
        password: Option<Vec<u8>>,
        create: bool,
    },
    Delete {
        user: String,
    },
    Convert,
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    algorithm: Algorithm,
    iterations: u32,
    file: PathBuf,
    action: Action,
}

/// Parses the command line (without the program name) as mosquitto_passwd 2.0 does, checking in
/// the same order so that the same mistake gets the same message.
fn parse_args(args: &[OsString]) -> Result<Args, Fail> {
    if args.is_empty() {
        return Err(usage());
    }
    let mut opts = Options::new();
    // Options come before the file name, as for mosquitto_passwd: `-b FILE -x PASS` has the
    // password "-x".
    opts.parsing_style(ParsingStyle::StopAtFirstFree);
    opts.optflagmulti("b", "", "batch mode");
    opts.optflagmulti("c", "", "create");
    opts.optflagmulti("D", "", "delete");
    opts.optflagmulti("U", "", "convert plain text");
    opts.optmulti("H", "", "hash", "HASH");
    opts.optmulti("I", "", "iterations", "N");
    opts.optflag("h", "help", "help");
    let m = match opts.parse(args) {
        Ok(m) => m,
        Err(OptFail::ArgumentMissing(o)) => {
            return Err(fail(format!(
                "Error: -{o} argument given but not enough other arguments."
            )))
        }
        Err(OptFail::UnrecognizedOption(o)) => {
            eprintln!("Error: Unknown option '{o}'.");
            return Err(usage());
        }
        Err(_) => return Err(usage()),
    };
    if m.opt_present("h") {
        print!("{USAGE}");
        return Err(Fail {
            msg: String::new(),
            code: 0,
        });
    }
    let mut algorithm = Algorithm::Sha512Pbkdf2;
    for h in m.opt_strs("H") {
        algorithm = match h.as_str() {
            "sha512" => Algorithm::Sha512,
            "sha512-pbkdf2" => Algorithm::Sha512Pbkdf2,
            _ => return Err(fail(format!("Error: Unknown hash type '{h}'"))),
        };
    }
    let mut iterations = DEFAULT_ITERATIONS;
    for i in m.opt_strs("I") {
        iterations = match i.parse::<u64>() {
            Ok(n) if n > u64::from(MAX_ITERATIONS) => {
                return Err(fail(format!(
                    "Error: Number of iterations must be at most {MAX_ITERATIONS}."
                )))
            }
            Ok(n) if n >= 1 => n as u32,
            _ => return Err(fail("Error: Number of iterations must be > 0.")),
        };
    }
    let (batch, create, delete, convert) = (
        m.opt_present("b"),
        m.opt_present("c"),
        m.opt_present("D"),
        m.opt_present("U"),
    );
    for (a, b, x, y) in [
        (create, delete, 'c', 'D'),
        (create, convert, 'c', 'U'),
        (delete, convert, 'D', 'U'),
        (delete, batch, 'b', 'D'),
    ] {
        if a && b {
            return Err(fail(format!(
                "Error: -{x} and -{y} cannot be used together."
            )));
        }
    }
    let free = &m.free;
    let too_many = |n: usize| free.len() > n;
    let action = if create {
        let need = if batch { 3 } else { 2 };
        if free.len() < need {
            return Err(fail(if batch {
                "Error: -c argument given but password file, username, or password missing."
            } else {
                "Error: -c argument given but password file or username missing."
            }));
        }
        if too_many(need) {
            return Err(usage());
        }
        Action::Set {
            user: free[1].clone(),
            password: batch.then(|| free[2].clone().into_bytes()),
            create: true,
        }
    } else if delete {
        if free.len() < 2 {
            return Err(fail(
                "Error: -D argument given but password file or username missing.",
            ));
        }
        if too_many(2) {
            return Err(usage());
        }
        Action::Delete {
            user: free[1].clone(),
        }
    } else if convert {
        if free.len() != 1 {
            return Err(fail("Error: -U argument given but password file missing."));
        }
        Action::Convert
    } else if batch && free.len() == 3 {
        Action::Set {
            user: free[1].clone(),
            password: Some(free[2].clone().into_bytes()),
            create: false,
        }
    } else if !batch && free.len() == 2 {
        Action::Set {
            user: free[1].clone(),
            password: None,
            create: false,
        }
    } else {
        return Err(usage());
    };
    match &action {
        Action::Set { user, password, .. } => {
            check_user(user)?;
            // The broker never accepts an empty password, so a line for one is refused, as
            // mosquitto_passwd refuses one at its prompt.
            if password.as_ref().is_some_and(|p| p.is_empty()) {
                return Err(fail("Error: Empty password."));
            }
            if password.as_ref().is_some_and(|p| p.len() > MAX_LEN) {
                return Err(fail(
                    "Error: Password must be less than 65536 characters long.",
                ));
            }
        }
        Action::Delete { user } => check_user(user)?,
        Action::Convert => {}
    }
    Ok(Args {
        algorithm,
        iterations,
        file: PathBuf::from(&free[0]),
        action,
    })
}

/// mosquitto_passwd's checks, then midge's: names that could never log in are refused.
fn check_user(user: &str) -> Result<(), Fail> {
    if user.len() > MAX_LEN {
        return Err(fail(
            "Error: Username must be less than 65536 characters long.",
        ));
    }
    if user.chars().any(char::is_control) {
        return Err(fail("Error: Username must not contain control characters."));
    }
    if user.contains(':') {
        return Err(fail("Error: Username must not contain the ':' character."));
    }
    if user.is_empty() {
        return Err(fail("Error: Username must not be empty."));
    }
    if user.starts_with(is_blank) || user.ends_with(is_blank) {
        return Err(fail(
            "Error: Username must not begin or end with a space (the broker would trim it).",
        ));
    }
    if user.starts_with('#') {
        return Err(fail(
            "Error: Username must not begin with '#' (the line would be a comment).",
        ));
    }
    Ok(())
}

/// An OS error as C's strerror words it (without Rust's " (os error N)").
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn random_bytes(buf: &mut [u8]) -> Result<(), Fail> {
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| {
            fail(format!(
                "Error: Unable to read random bytes from /dev/urandom. {}.",
                strerror(&e)
            ))
        })
}

/// Hashes a password with a fresh 12-byte salt; returns the field after `user:`.
fn new_hash(password: &[u8], algorithm: Algorithm, iterations: u32) -> Result<String, Fail> {
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt)?;
    let kind = match algorithm {
        Algorithm::Sha512 => HashType::Sha512,
        Algorithm::Sha512Pbkdf2 => HashType::Sha512Pbkdf2 { iterations },
    };
    Ok(PasswordHash::create(password, kind, &salt).encode())
}

// ---------------------------------------------------------------------------------------------
// Editing a file's text, line by line. Bytes, not `str`: a line midge_passwd does not understand
// (not UTF-8, say) is kept as it is.

fn trim(b: &[u8]) -> &[u8] {
    let blank = |c: &u8| is_blank(char::from(*c));
    let start = b.iter().position(|c| !blank(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !blank(c)).map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[derive(Debug, PartialEq, Eq)]
enum Kind<'a> {
    Blank,
    Comment,
    /// `user` trimmed; `rest` everything after the first `:`.
    Entry {
        user: &'a [u8],
        rest: &'a [u8],
    },
    NoColon,
}

/// Splits a line (without its `\n`) as the broker does (see `midge::auth::password::split_line`).
fn classify(line: &[u8]) -> Kind<'_> {
    let t = trim(line);
    if t.is_empty() {
        return Kind::Blank;
    }
    if t[0] == b'#' {
        return Kind::Comment;
    }
    match line.iter().position(|&b| b == b':') {
        Some(colon) => Kind::Entry {
            user: trim(&line[..colon]),
            rest: &line[colon + 1..],
        },
        None => Kind::NoColon,
    }
}

/// The lines of a file, each with its `\n` (the last may have none).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
}

fn content(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\n").unwrap_or(raw)
}

/// The line end to give a rewritten line: the old one's `\r\n`, else `\n`.
fn eol(raw: &[u8]) -> &'static [u8] {
    if raw.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// `user`'s first line replaced by `user:field`, later lines for `user` removed, or the line
/// appended if there was none; every other line kept byte for byte, in order.
fn set_user(text: &[u8], user: &str, field: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + user.len() + field.len() + 2);
    let mut done = false;
    for raw in lines(text) {
        match classify(content(raw)) {
            Kind::Entry { user: u, .. } if u == user.as_bytes() => {
                if !done {
                    out.extend_from_slice(user.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(field.as_bytes());
                    out.extend_from_slice(eol(raw));
                    done = true;
                }
            }
            _ => out.extend_from_slice(raw),
        }
    }
    if !done {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(user.as_bytes());
        out.push(b':');
        out.extend_from_slice(field.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Every line for `user` removed, or `None` if there was none.
fn delete_user(text: &[u8], user: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut found = false;
    for raw in lines(text) {
        match classify(content(raw)) {
            Kind::Entry { user: u, .. } if u == user.as_bytes() => found = true,
            _ => out.extend_from_slice(raw),
        }
    }
    found.then_some(out)
}

/// `-U`: every `user:plaintext` line hashed with `hash`; comments, blank lines and lines already
/// hashed (starting with `$`) kept. A line that is not `user:password` stops the conversion, as
/// in mosquitto_passwd. Returns the new text and warnings for `$` lines that are not valid hashes.
fn convert(
    text: &[u8],
    mut hash: impl FnMut(&[u8]) -> Result<String, Fail>,
) -> Result<(Vec<u8>, Vec<String>), Fail> {
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut warnings = Vec::new();
    for (i, raw) in lines(text).enumerate() {
        let corrupt = || fail(format!("Error: Corrupt password file at line {}.", i + 1));
        match classify(content(raw)) {
            Kind::Blank | Kind::Comment => out.extend_from_slice(raw),
            Kind::NoColon => return Err(corrupt()),
            Kind::Entry { user, rest } => {
                let password = trim(rest);
                if user.is_empty() || password.is_empty() {
                    return Err(corrupt());
                }
                if password.starts_with(b"$") {
                    let valid = std::str::from_utf8(password)
                        .ok()
                        .and_then(|p| p.split(':').next())
                        .is_some_and(|p| PasswordHash::parse(p.trim_matches(is_blank)).is_ok());
                    if !valid {
                        warnings.push(format!(
                            "Warning: line {}: the password of user {:?} begins with '$', so it \
                             was taken for a hash and kept as it is, but it is not a $6$ or $7$ \
                             hash.",
                            i + 1,
                            String::from_utf8_lossy(user)
                        ));
                    }
                    out.extend_from_slice(raw);
                } else {
                    out.extend_from_slice(user);
                    out.push(b':');
                    out.extend_from_slice(hash(password)?.as_bytes());
                    out.extend_from_slice(eol(raw));
                }
            }
        }
    }
    Ok((out, warnings))
}

// ---------------------------------------------------------------------------------------------
// Files.

/// The file to change: symbolic links followed, as mosquitto_passwd's realpath() does.
fn resolve(path: &Path) -> Result<PathBuf, Fail> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(fail(format!(
            "Error reading password file: {}",
            strerror(&e)
        ))),
    }
}

/// Reads the file, opening it for writing too so that a file we may not change is refused
/// before anything happens (mosquitto_passwd opens it "r+").
fn read_existing(path: &Path) -> Result<(Vec<u8>, fs::Metadata), Fail> {
    let err = |e: io::Error| {
        fail(format!(
            "Error: Unable to open password file {}. {}.",
            path.display(),
            strerror(&e)
        ))
    };
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(err)?;
    let meta = f.metadata().map_err(err)?;
    let mut text = Vec::new();
    f.read_to_end(&mut text).map_err(err)?;
    Ok((text, meta))
}

/// Replaces `path` with `contents` atomically: a temporary file in the same directory, written,
/// given the old file's owner and mode (a new file gets 0666 less the umask, as
/// mosquitto_passwd's fopen), fsynced, renamed over `path`; then the directory is fsynced. On
/// any error the temporary file is removed and `path` is untouched.
fn write_atomic(path: &Path, contents: &[u8], old: Option<&fs::Metadata>) -> Result<(), Fail> {
    let shown = path.display();
    let Some(name) = path.file_name() else {
        return Err(fail(format!(
            "Error: Unable to open file {shown} for writing. Is a directory."
        )));
    };
    let dir = dir_of(path);
    let mut suffix = [0u8; 6];
    random_bytes(&mut suffix)?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".midge_passwd-");
    for b in suffix {
        tmp_name.push(format!("{b:02x}"));
    }
    let tmp = dir.join(tmp_name);

    let mut options = fs::OpenOptions::new();
    options
        .write(true)
        .create_new(true)
        .mode(if old.is_some() { 0o600 } else { 0o666 });
    let mut new = NewFile::create(tmp, &options).map_err(|e| {
        let mut msg = format!(
            "Error: Unable to open file {shown} for writing. {}.",
            strerror(&e)
        );
        if e.kind() == io::ErrorKind::PermissionDenied {
            msg.push_str(&format!(
                " (midge_passwd replaces the file atomically, so it needs write access to the \
                 directory {}.)",
                dir.display()
            ));
        }
        fail(msg)
    })?;
    let written = (|| {
        let file = new.file();
        if let Some(old) = old {
            let me = file.metadata()?;
            if (me.uid(), me.gid()) != (old.uid(), old.gid()) {
                std::os::unix::fs::fchown(&*file, Some(old.uid()), Some(old.gid()))?;
            }
            file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))?;
        }
        file.write_all(contents)?;
        new.commit(path)
    })();
    if let Err(e) = written {
        return Err(fail(format!(
            "Error: Unable to write password file {shown}. {}.",
            strerror(&e)
        )));
    }
    // The rename is only durable once the directory is; failing here changes nothing.
    let _ = sync_dir(path);
    Ok(())
}

/// Prints what the broker would log about the file now, so the admin hears of it here first.
fn report(path: &Path, text: &[u8]) {
    let (_, warnings) = PasswordFile::parse_bytes(text);
    for w in warnings {
        eprintln!("Warning: {}, line {}: {}", path.display(), w.line, w.msg);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a password: "Password: " and "Reenter password: " on stdout, read from stdin. When
// stdin is a terminal, echo is off (and line editing is done here, so that Ctrl-C can put the
// terminal back before exiting).

/// A terminal with echo, line buffering and signal keys off; put back as it was when dropped.
struct RawTerminal {
    saved: String,
}

fn stty(args: &[&str]) -> io::Result<String> {
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl RawTerminal {
    fn new() -> io::Result<RawTerminal> {
        let saved = stty(&["-g"])?;
        let t = RawTerminal { saved };
        stty(&["-echo", "-icanon", "-isig", "min", "1", "time", "0"])?;
        Ok(t)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = stty(&[self.saved.as_str()]);
    }
}

enum Input {
    Line(Vec<u8>),
    Interrupted,
}

/// One line typed on a raw terminal: Enter ends it, Ctrl-D ends it, Ctrl-C cancels, Backspace
/// deletes a character, Ctrl-U the line.
fn read_terminal_line(input: &mut impl Read) -> io::Result<Input> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(0) => return Ok(Input::Line(line)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        match byte[0] {
            b'\r' | b'\n' | 0x04 => return Ok(Input::Line(line)),
            0x03 => return Ok(Input::Interrupted),
            0x7f | 0x08 => {
                // One character, however many bytes of UTF-8.
                while let Some(b) = line.pop() {
                    if b & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            0x15 => line.clear(),
            b if line.len() <= MAX_LEN => line.push(b),
            _ => {}
        }
    }
}

/// One line from a pipe or file, without its `\n` (or `\r\n`).
fn read_plain_line(input: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    input
        .take(MAX_LEN as u64 + 2)
        .read_until(b'\n', &mut line)?;
    if line.ends_with(b"\n") {
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
    }
    Ok(line)
}

fn prompt(text: &str, terminal: bool) -> Result<Vec<u8>, Fail> {
    let mut out = io::stdout();
    let _ = write!(out, "{text}");
    let _ = out.flush();
    let stdin = io::stdin();
    let mut lock = stdin.lock();
    let read = if terminal {
        read_terminal_line(&mut lock)
    } else {
        read_plain_line(&mut lock).map(Input::Line)
    };
    // mosquitto_passwd ends the prompt's line after a non-empty answer only; on a terminal the
    // Enter key was not echoed, so the line is always ended there.
    if terminal || matches!(&read, Ok(Input::Line(l)) if !l.is_empty()) {
        let _ = writeln!(out);
    }
    let _ = out.flush();
    match read {
        Ok(Input::Line(l)) if l.len() > MAX_LEN => Err(fail(
            "Error: Password must be less than 65536 characters long.",
        )),
        Ok(Input::Line(l)) => Ok(l),
        Ok(Input::Interrupted) => Err(Fail {
            msg: String::new(),
            code: 130,
        }),
        Err(e) => Err(fail(format!(
            "Error: Unable to read the password. {}.",
            strerror(&e)
        ))),
    }
}

/// Asks twice, as mosquitto_passwd: an empty password is refused (status 1), two different ones
/// too (status 2).
fn ask_password() -> Result<Vec<u8>, Fail> {
    let terminal = io::stdin().is_terminal();
    let _raw = if terminal {
        Some(RawTerminal::new().map_err(|e| {
            fail(format!(
                "Error: Unable to turn off echo on the terminal (stty: {}). \
                 Give the password with -b instead.",
                strerror(&e)
            ))
        })?)
    } else {
        None
    };
    let first = prompt("Password: ", terminal)?;
    if first.is_empty() {
        return Err(fail("Error: Empty password."));
    }
    let second = prompt("Reenter password: ", terminal)?;
    if second.is_empty() {
        return Err(fail("Error: Empty password."));
    }
    if first != second {
        return Err(Fail {
            msg: "Error: Passwords do not match.".into(),
            code: 2,
        });
    }
    Ok(first)
}

// ---------------------------------------------------------------------------------------------

fn run(args: &[OsString]) -> Result<(), Fail> {
    let args = parse_args(args)?;
    let path = resolve(&args.file)?;
    let hash = |p: &[u8]| new_hash(p, args.algorithm, args.iterations);
    match args.action {
        Action::Set {
            user,
            password,
            create: true,
        } => {
            let password = match password {
                Some(p) => p,
                None => ask_password()?,
            };
            let old = fs::metadata(&path).ok();
            if old.as_ref().is_some_and(|m| m.is_dir()) {
                return Err(fail(format!(
                    "Error: Unable to open file {} for writing. Is a directory.",
                    path.display()
                )));
            }
            let text = format!("{user}:{}\n", hash(&password)?);
            write_atomic(&path, text.as_bytes(), old.as_ref())?;
            report(&path, text.as_bytes());
        }
        Action::Set {
            user,
            password,
            create: false,
        } => {
            let (text, meta) = read_existing(&path)?;
            let password = match password {
                Some(p) => p,
                None => ask_password()?,
            };
            let new = set_user(&text, &user, &hash(&password)?);
            write_atomic(&path, &new, Some(&meta))?;
            report(&path, &new);
        }
        Action::Delete { user } => {
            let (text, meta) = read_existing(&path)?;
            let Some(new) = delete_user(&text, &user) else {
                return Err(fail(format!(
                    "Warning: User {user} not found in password file."
                )));
            };
            write_atomic(&path, &new, Some(&meta))?;
            report(&path, &new);
        }
        Action::Convert => {
            let (text, meta) = read_existing(&path)?;
            let (new, warnings) = convert(&text, hash)?;
            for w in warnings {
                eprintln!("{w}");
            }
            if new != text {
                write_atomic(&path, &new, Some(&meta))?;
            }
            report(&path, &new);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.msg.is_empty() {
                eprintln!("{}", f.msg);
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, Fail> {
        let v: Vec<OsString> = a.iter().map(OsString::from).collect();
        parse_args(&v)
    }

    fn err(a: &[&str]) -> String {
        args(a).unwrap_err().msg
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            args(&["-b", "f", "u", "p"]).unwrap(),
            Args {
                algorithm: Algorithm::Sha512Pbkdf2,
                iterations: 101,
                file: "f".into(),
                action: Action::Set {
                    user: "u".into(),
                    password: Some(b"p".to_vec()),
                    create: false
                }
            }
        );
        assert_eq!(
            args(&["-H", "sha512", "-c", "f", "u"]).unwrap(),
            Args {
                algorithm: Algorithm::Sha512,
                iterations: 101,
                file: "f".into(),
                action: Action::Set {
                    user: "u".into(),
                    password: None,
                    create: true
                }
            }
        );
        assert_eq!(
            args(&["-I", "1000", "-D", "f", "u"]).unwrap().action,
            Action::Delete { user: "u".into() }
        );
        assert_eq!(args(&["-I", "1000", "-U", "f"]).unwrap().iterations, 1000);
        assert_eq!(args(&["-U", "f"]).unwrap().action, Action::Convert);
    }

    #[test]
    fn options_stop_at_the_file_name() {
        assert_eq!(
            args(&["-b", "f", "-x", "-c"]).unwrap().action,
            Action::Set {
                user: "-x".into(),
                password: Some(b"-c".to_vec()),
                create: false
            }
        );
    }

    #[test]
    fn the_last_h_and_i_count() {
        let a = args(&[
            "-H",
            "sha512",
            "-H",
            "sha512-pbkdf2",
            "-I",
            "5",
            "-I",
            "7",
            "-U",
            "f",
        ]);
        let a = a.unwrap();
        assert_eq!((a.algorithm, a.iterations), (Algorithm::Sha512Pbkdf2, 7));
    }

    #[test]
    fn mosquitto_passwd_error_messages() {
        assert_eq!(
            err(&["-c", "-D", "f", "u"]),
            "Error: -c and -D cannot be used together."
        );
        assert_eq!(
            err(&["-c", "-U", "f"]),
            "Error: -c and -U cannot be used together."
        );
        assert_eq!(
            err(&["-D", "-U", "f"]),
            "Error: -D and -U cannot be used together."
        );
        assert_eq!(
            err(&["-b", "-D", "f", "u"]),
            "Error: -b and -D cannot be used together."
        );
        assert_eq!(
            err(&["-H", "md5", "f", "u"]),
            "Error: Unknown hash type 'md5'"
        );
        assert_eq!(
            err(&["-H"]),
            "Error: -H argument given but not enough other arguments."
        );
        assert_eq!(
            err(&["-I"]),
            "Error: -I argument given but not enough other arguments."
        );
        for n in ["0", "-5", "abc", ""] {
            assert_eq!(
                err(&["-I", n, "f", "u"]),
                "Error: Number of iterations must be > 0."
            );
        }
        assert_eq!(
            err(&["-I", "2147483648", "f", "u"]),
            "Error: Number of iterations must be at most 2147483647."
        );
        assert_eq!(
            err(&["-c", "f"]),
            "Error: -c argument given but password file or username missing."
        );
        assert_eq!(
            err(&["-c", "-b", "f", "u"]),
            "Error: -c argument given but password file, username, or password missing."
        );
        assert_eq!(
            err(&["-D", "f"]),
            "Error: -D argument given but password file or username missing."
        );
        assert_eq!(
            err(&["-U"]),
            "Error: -U argument given but password file missing."
        );
        assert_eq!(
            err(&["-U", "f", "u"]),
            "Error: -U argument given but password file missing."
        );
    }

    #[test]
    fn user_names_are_checked() {
        assert_eq!(
            err(&["-b", "f", "a:b", "p"]),
            "Error: Username must not contain the ':' character."
        );
        assert_eq!(
            err(&["-b", "f", "a\tb", "p"]),
            "Error: Username must not contain control characters."
        );
        assert_eq!(
            err(&["-D", "f", "a\u{7f}"]),
            "Error: Username must not contain control characters."
        );
        let long = "u".repeat(65536);
        assert_eq!(
            err(&["-b", "f", &long, "p"]),
            "Error: Username must be less than 65536 characters long."
        );
        assert!(args(&["-b", "f", &long[1..], "p"]).is_ok());
        assert_eq!(
            err(&["-b", "f", "", "p"]),
            "Error: Username must not be empty."
        );
        assert_eq!(err(&["-b", "f", "u", ""]), "Error: Empty password.");
        assert_eq!(err(&["-c", "-b", "f", "u", ""]), "Error: Empty password.");
        assert!(err(&["-b", "f", " u", "p"]).starts_with("Error: Username must not begin or end"));
        assert!(err(&["-b", "f", "u ", "p"]).starts_with("Error: Username must not begin or end"));
        assert!(err(&["-b", "f", "#u", "p"]).starts_with("Error: Username must not begin with '#'"));
        assert!(args(&["-b", "f", "J\u{fc}rgen M\u{fc}ller", "p"]).is_ok());
    }

    #[test]
    fn long_passwords_are_refused() {
        let long = "p".repeat(65536);
        assert_eq!(
            err(&["-b", "f", "u", &long]),
            "Error: Password must be less than 65536 characters long."
        );
    }

    #[test]
    fn usage_errors_exit_1_with_nothing_on_stderr() {
        for a in [
            &[][..],
            &["f"][..],
            &["-b", "f", "u"][..],
            &["f", "u", "p"][..],
            &["-b", "f", "u", "my", "password"][..],
            &["-c", "-b", "f", "u", "p", "x"][..],
            &["-D", "f", "u", "x"][..],
            &["-x", "f", "u"][..],
        ] {
            assert_eq!(
                args(a).unwrap_err(),
                Fail {
                    msg: String::new(),
                    code: 1
                },
                "{a:?}"
            );
        }
    }

    #[test]
    fn classify_matches_the_broker() {
        assert_eq!(classify(b""), Kind::Blank);
        assert_eq!(classify(b" \t\r"), Kind::Blank);
        assert_eq!(classify(b"  # x:y"), Kind::Comment);
        assert_eq!(classify(b"abc"), Kind::NoColon);
        assert_eq!(
            classify(b" u :p:q\r"),
            Kind::Entry {
                user: b"u",
                rest: b"p:q\r"
            }
        );
        assert_eq!(trim(b"  "), b"");
        assert_eq!(trim(b" a b "), b"a b");
    }

    #[test]
    fn set_user_replaces_in_place_and_keeps_everything_else() {
        let text = b"# head\r\n\nalice:$7$x\nbob:old\r\nbroken line\nbob:older\ncarol:$6$y";
        assert_eq!(
            set_user(text, "bob", "NEW"),
            b"# head\r\n\nalice:$7$x\nbob:NEW\r\nbroken line\ncarol:$6$y".to_vec()
        );
        assert_eq!(
            set_user(text, "dave", "NEW"),
            b"# head\r\n\nalice:$7$x\nbob:old\r\nbroken line\nbob:older\ncarol:$6$y\ndave:NEW\n"
                .to_vec()
        );
        assert_eq!(set_user(b"", "u", "H"), b"u:H\n".to_vec());
        assert_eq!(set_user(b"a:x\n", "u", "H"), b"a:x\nu:H\n".to_vec());
        // A comment naming the user is not the user's line.
        assert_eq!(set_user(b"#u:x\n", "u", "H"), b"#u:x\nu:H\n".to_vec());
        // The broker trims names; so does the match.
        assert_eq!(set_user(b" u :x\n", "u", "H"), b"u:H\n".to_vec());
    }

    #[test]
    fn delete_user_removes_every_line_of_the_user() {
        let text = b"# c\nbob:1\nalice:2\nbob:3\n\ncarol:4";
        assert_eq!(
            delete_user(text, "bob"),
            Some(b"# c\nalice:2\n\ncarol:4".to_vec())
        );
        assert_eq!(
            delete_user(text, "carol"),
            Some(b"# c\nbob:1\nalice:2\nbob:3\n\n".to_vec())
        );
        assert_eq!(delete_user(text, "dave"), None);
        assert_eq!(delete_user(text, "bo"), None);
    }

    const ALICE: &str = "alice:$7$101$AAECAwQFBgcICQoL$l8zqSPOVOsX6BzXddvHVSUz51tfFGYiwZgYMerEYSK2kmFD86m93us2E5cM8HAComZhsUAqG/9HmFNzmBd+GRQ==";

    fn fake(p: &[u8]) -> Result<String, Fail> {
        Ok(format!("$H({})", String::from_utf8_lossy(p)))
    }

    #[test]
    fn convert_hashes_plain_text_and_keeps_the_rest() {
        let text = b"# users\r\njohn_doe:EXAMPLE_PASSWORD\r\n\n mary : pass word:with colon \nh:$7$101$AAECAwQFBgcICQoL$l8zqSPOVOsX6BzXddvHVSUz51tfFGYiwZgYMerEYSK2kmFD86m93us2E5cM8HAComZhsUAqG/9HmFNzmBd+GRQ==\nlast:pw";
        let (out, warnings) = convert(text, fake).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# users\r\njohn_doe:$H(EXAMPLE_PASSWORD)\r\n\nmary:$H(pass word:with colon)\nh:$7$101$AAECAwQFBgcICQoL$l8zqSPOVOsX6BzXddvHVSUz51tfFGYiwZgYMerEYSK2kmFD86m93us2E5cM8HAComZhsUAqG/9HmFNzmBd+GRQ==\nlast:$H(pw)\n"
        );
        assert_eq!(warnings, Vec::<String>::new());
    }

    #[test]
    fn convert_keeps_dollar_lines_and_warns_about_bad_ones() {
        let valid = format!("b:{} :x\n", &ALICE["alice:".len()..]);
        let (out, warnings) = convert(valid.as_bytes(), fake).unwrap();
        assert_eq!(out, valid.as_bytes());
        assert_eq!(warnings, Vec::<String>::new());
        let (out, warnings) = convert(b"a:$ecret\n", fake).unwrap();
        assert_eq!(out, b"a:$ecret\n".to_vec());
        assert_eq!(
            warnings,
            vec![
                "Warning: line 1: the password of user \"a\" begins with '$', so it was taken \
                 for a hash and kept as it is, but it is not a $6$ or $7$ hash."
                    .to_owned()
            ]
        );
    }

    #[test]
    fn convert_stops_at_a_corrupt_line() {
        for (text, line) in [
            (&b"a:b\nbroken\n"[..], 2),
            (&b"a:\n"[..], 1),
            (&b"a:b\n :pw\n"[..], 2),
            (&b"# c\n\na:  \r\n"[..], 3),
        ] {
            assert_eq!(
                convert(text, fake).unwrap_err().msg,
                format!("Error: Corrupt password file at line {line}."),
                "{text:?}"
            );
        }
    }

    #[test]
    fn terminal_line_editing() {
        let read = |bytes: &[u8]| match read_terminal_line(&mut &bytes[..]).unwrap() {
            Input::Line(l) => Some(l),
            Input::Interrupted => None,
        };
        assert_eq!(read(b"secret\rrest"), Some(b"secret".to_vec()));
        assert_eq!(read(b"secret\n"), Some(b"secret".to_vec()));
        assert_eq!(read(b"secrex\x7ft\n"), Some(b"secret".to_vec()));
        assert_eq!(read("p\u{e4}\x7f\x7fok\n".as_bytes()), Some(b"ok".to_vec()));
        assert_eq!(read(b"\x7f\x08x\r"), Some(b"x".to_vec()));
        assert_eq!(read(b"wrong\x15right\r"), Some(b"right".to_vec()));
        assert_eq!(read(b"abc\x04"), Some(b"abc".to_vec()));
        assert_eq!(read(b"abc"), Some(b"abc".to_vec()));
        assert_eq!(read(b"ab\x03cd\r"), None);
    }

    #[test]
    fn plain_line_reading() {
        let read = |bytes: &[u8]| read_plain_line(&mut &bytes[..]).unwrap();
        assert_eq!(read(b"pw\npw\n"), b"pw".to_vec());
        assert_eq!(read(b"pw\r\n"), b"pw".to_vec());
        assert_eq!(read(b"pw"), b"pw".to_vec());
        assert_eq!(read(b""), b"".to_vec());
        assert_eq!(read(b" p w \n"), b" p w ".to_vec());
        let long = vec![b'x'; 70000];
        assert_eq!(read(&long).len(), 65537);
    }

    #[test]
    fn strerror_drops_the_rust_suffix() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(strerror(&e), "No such file or directory");
    }
}
