//! Static files of a WebSocket listener's `http_dir`, as mosquitto serves them: `GET` and
//! `HEAD` only, `/` (or any directory) means its `index.html`, nothing outside the directory
//! (no `..` however encoded, no symbolic link leading out), no directory listings.
//!
//! [`resolve`] turns a request target into a path inside the directory without touching the
//! file system; [`respond`] reads the file and builds the whole answer.

use std::path::{Path, PathBuf};

use super::ws::{error_response, http_response, HttpError};

/// Larger files are not served (the answer is built in memory).
pub const MAX_FILE: u64 = 32 * 1024 * 1024;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const BAD: HttpError = HttpError {
    status: 400,
    message: "bad request target",
};
const ESCAPE: HttpError = HttpError {
    status: 403,
    message: "path leads outside http_dir",
};
const NOT_FOUND: HttpError = HttpError {
    status: 404,
    message: "no such file",
};

/// The path, relative to `http_dir`, that `target` names: percent-decoded, the query and
/// fragment dropped, empty segments skipped, `.` and `..` segments refused (403) whatever
/// their encoding. Never touches the file system.
pub fn resolve(target: &str) -> Result<PathBuf, HttpError> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(BAD);
    }
    let raw = path.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(BAD);
            };
            bytes.push(h << 4 | l);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    let Ok(decoded) = String::from_utf8(bytes) else {
        return Err(BAD);
    };
    if decoded.contains('\0') {
        return Err(BAD);
    }
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" => {}
            "." | ".." => return Err(ESCAPE),
            s => rel.push(s),
        }
    }
    Ok(rel)
}

/// The `Content-Type` for a file name.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

/// The file under `dir` that `target` names, checked after following every symbolic link.
fn find(dir: &Path, target: &str) -> Result<PathBuf, HttpError> {
    let rel = resolve(target)?;
    let root = dir.canonicalize().map_err(|_| NOT_FOUND)?;
    let mut path = root.join(rel).canonicalize().map_err(|_| NOT_FOUND)?;
    if !path.starts_with(&root) {
        return Err(ESCAPE);
    }
    if path.is_dir() {
        // No listings: a directory means its index.html.
        path = path
            .join("index.html")
            .canonicalize()
            .map_err(|_| HttpError {
                status: 403,
                message: "directory listings are not served",
            })?;
        if !path.starts_with(&root) {
            return Err(ESCAPE);
        }
    }
    Ok(path)
}

/// The whole answer to `GET target` (or `HEAD`) for `http_dir` `dir`, and its status.
pub fn respond(dir: &Path, target: &str, head: bool) -> (u16, Vec<u8>) {
    let err = |e: HttpError| (e.status, error_response(e, head));
    let path = match find(dir, target) {
        Ok(p) => p,
        Err(e) => return err(e),
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= MAX_FILE => {}
        Ok(m) if m.is_file() => {
            return err(HttpError {
                status: 500,
                message: "file too large to serve",
            })
        }
        _ => return err(NOT_FOUND),
    }
    match std::fs::read(&path) {
        Ok(body) => (
            200,
            http_response(200, content_type(&path), "", &body, head),
        ),
        Err(_) => err(NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_inside_the_directory() {
        assert_eq!(resolve("/"), Ok(PathBuf::new()));
        assert_eq!(resolve("/index.html"), Ok(PathBuf::from("index.html")));
        assert_eq!(
            resolve("/js/mqtt.min.js?v=5#x"),
            Ok(PathBuf::from("js/mqtt.min.js"))
        );
        assert_eq!(resolve("/a%20b.txt"), Ok(PathBuf::from("a b.txt")));
        // An absolute path in the target stays under the directory.
        assert_eq!(resolve("//etc/passwd"), Ok(PathBuf::from("etc/passwd")));
        assert_eq!(resolve("/%2fetc%2fpasswd"), Ok(PathBuf::from("etc/passwd")));
    }

    #[test]
    fn escapes_are_refused_however_spelled() {
        for t in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2e%2fetc/passwd",
            "/.%2e/x",
            "/a/..",
            "/./x",
            "/..%2f..%2fetc",
        ] {
            assert_eq!(resolve(t), Err(ESCAPE), "{t}");
        }
    }

    #[test]
    fn malformed_targets_are_bad_requests() {
        for t in [
            "",
            "index.html",
            "http://host/x",
            "/%",
            "/%2",
            "/%zz",
            "/%00",
            "/%ff",
        ] {
            assert_eq!(resolve(t), Err(BAD), "{t:?}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type(Path::new("a/index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("mqtt.min.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("x.png")), "image/png");
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }

    #[test]
    fn files_directories_and_symlinks() {
        let base = std::env::temp_dir().join(format!("midge-http-{}", std::process::id()));
        let dir = base.join("www");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("sub/index.html"), "sub").unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        let _ = std::os::unix::fs::symlink(base.join("secret.txt"), dir.join("link.txt"));
        let _ = std::os::unix::fs::symlink(&base, dir.join("up"));

        let (s, r) = respond(&dir, "/", false);
        assert_eq!(s, 200);
        assert_eq!(
            r,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n\
              X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n<p>hi</p>"
        );
        let (s, r) = respond(&dir, "/index.html", true);
        assert_eq!(s, 200);
        assert!(r.ends_with(
            b"Content-Length: 9\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(respond(&dir, "/sub/", false).0, 200);
        assert_eq!(respond(&dir, "/empty", false).0, 403);
        assert_eq!(respond(&dir, "/nothing.js", false).0, 404);
        assert_eq!(respond(&dir, "/link.txt", false).0, 403);
        assert_eq!(respond(&dir, "/up/secret.txt", false).0, 403);
        assert_eq!(respond(&dir, "/%2e%2e/secret.txt", false).0, 403);
        let _ = std::fs::remove_dir_all(&base);
    }
}
