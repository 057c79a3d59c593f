//! The floor of the authorization-plugin benchmark: a minimal Docker authorization plugin
//! that allows everything and judges nothing, so that what the engine's plugin round trip
//! itself costs can be told from what dockwarden's judging adds (bench/authz.sh). It answers
//! `/Plugin.Activate`, `/AuthZPlugin.AuthZReq` and `/AuthZPlugin.AuthZRes` on the Unix
//! socket given, reading each request whole (as the engine's client expects), and `GET
//! /count` with the number of authorization requests answered.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

async fn answer(req: Request<Incoming>, count: Arc<AtomicU64>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let _ = req.into_body().collect().await;
    let body = match path.as_str() {
        "/Plugin.Activate" => r#"{"Implements":["authz"]}"#.to_string(),
        "/AuthZPlugin.AuthZReq" => {
            count.fetch_add(1, Relaxed);
            r#"{"Allow":true}"#.to_string()
        }
        "/count" => count.load(Relaxed).to_string(),
        _ => r#"{"Allow":true}"#.to_string(),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/vnd.docker.plugins.v1.2+json"),
    );
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dw-floor-plugin SOCKET");
        return ExitCode::from(2);
    };
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dw-floor-plugin: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let count = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let count = count.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let count = count.clone();
                async move { Ok::<_, Infallible>(answer(req, count).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
