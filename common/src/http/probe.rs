//! The `healthcheck` subcommand both binaries offer: images are `FROM scratch` with no shell
//! or curl, so Docker and Kubernetes health checks call the binary, which GETs its own
//! health URL with the one HTTP client ([`crate::http::client`]).

use std::time::Duration;

use crate::http::client::{Client, Target};

/// GETs `url` (`http://host:port/path`) and returns whether the answer was 200.
/// `0.0.0.0` is probed as `127.0.0.1`, so the listen address can be used as is.
pub async fn http_ok(url: &str, timeout: Duration) -> Result<bool, String> {
    let (target, path) = Target::from_http_url(&url.replace("0.0.0.0", "127.0.0.1"))?;
    let path = if path.is_empty() { "/".to_string() } else { path };
    let client = Client::new(target, url.to_string(), timeout);
    match client.get("health probe", &path, &[], 64 << 10).await {
        Ok((resp, _)) => Ok(resp.status() == hyper::StatusCode::OK),
        Err(e) if e.status().is_some() => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the probe for a `healthcheck` subcommand: prints the outcome, returns the exit code.
pub async fn healthcheck(url: &str) -> std::process::ExitCode {
    match http_ok(url, Duration::from_secs(3)).await {
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn probes_a_local_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for i in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                // Read the whole request head before answering, as a real server does.
                let mut head = Vec::new();
                let mut buf = [0u8; 256];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let status = if i == 0 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let url = format!("http://0.0.0.0:{port}/healthz");
        assert_eq!(http_ok(&url, Duration::from_secs(2)).await, Ok(true));
        assert_eq!(http_ok(&url, Duration::from_secs(2)).await, Ok(false));
        server.await.unwrap();
        assert!(http_ok("https://x/", Duration::from_secs(1)).await.is_err());
    }
}
