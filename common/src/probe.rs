//! The `healthcheck` subcommand both binaries offer: images are `FROM scratch` with no shell
//! or curl, so Docker and Kubernetes health checks call the binary, which GETs its own
//! health URL. Plain HTTP/1.0 over TCP; no client crate needed for one request.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// GETs `url` (`http://host:port/path`) and returns whether the answer was 200.
/// `0.0.0.0` is probed as `127.0.0.1`, so the listen address can be used as is.
pub fn http_ok(url: &str, timeout: Duration) -> Result<bool, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.replace("0.0.0.0", "127.0.0.1");
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    // One write: a request split over several writes can meet a server that already
    // answered and closed.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    // The status line's first 12 bytes ("HTTP/1.1 200"), however the reads split them.
    let mut head = Vec::with_capacity(12);
    let mut buf = [0u8; 64];
    while head.len() < 12 {
        match s.read(&mut buf).map_err(|e| format!("read: {e}"))? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    Ok(line.starts_with("HTTP/1.0 200") || line.starts_with("HTTP/1.1 200"))
}

/// Runs the probe for a `healthcheck` subcommand: prints the outcome, returns the exit code.
pub fn healthcheck(url: &str) -> std::process::ExitCode {
    match http_ok(url, Duration::from_secs(3)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("unhealthy: {url} did not answer 200");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            for (i, s) in l.incoming().take(2).enumerate() {
                let mut s = s.unwrap();
                // Read the whole request head before answering, as a real server does.
                let mut head = Vec::new();
                let mut buf = [0u8; 256];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let status = if i == 0 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let url = format!("http://0.0.0.0:{port}/healthz");
        assert_eq!(http_ok(&url, Duration::from_secs(2)), Ok(true));
        assert_eq!(http_ok(&url, Duration::from_secs(2)), Ok(false));
        t.join().unwrap();
        assert!(http_ok("https://x/", Duration::from_secs(1)).is_err());
    }
}
