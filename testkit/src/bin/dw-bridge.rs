//! Test helper: forwards every connection accepted on LISTEN to CONNECT, both ways, until
//! killed. Each address is `tcp:HOST:PORT` or `unix:PATH`. Two of them, one inside a private
//! engine's network namespace (started with `nsenter --net`) and one outside, joined by a
//! Unix socket, make a loopback registry reachable at the same `localhost:PORT` from both
//! (testkit::engines::PrivateEngine::reach).

use std::process::ExitCode;

use tokio::io::{AsyncRead, AsyncWrite};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connect(addr: &str) -> std::io::Result<Box<dyn Io>> {
    match addr.split_once(':') {
        Some(("tcp", a)) => Ok(Box::new(tokio::net::TcpStream::connect(a).await?)),
        Some(("unix", p)) => Ok(Box::new(tokio::net::UnixStream::connect(p).await?)),
        _ => Err(std::io::Error::other(format!("bad address {addr}"))),
    }
}

async fn serve(listen: String, target: String) -> std::io::Result<()> {
    enum L {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    let l = match listen.split_once(':') {
        Some(("tcp", a)) => L::Tcp(tokio::net::TcpListener::bind(a).await?),
        Some(("unix", p)) => {
            let _ = std::fs::remove_file(p);
            L::Unix(tokio::net::UnixListener::bind(p)?)
        }
        _ => return Err(std::io::Error::other(format!("bad address {listen}"))),
    };
    loop {
        let mut inbound: Box<dyn Io> = match &l {
            L::Tcp(l) => Box::new(l.accept().await?.0),
            L::Unix(l) => Box::new(l.accept().await?.0),
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut out) = connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, target] = args.as_slice() else {
        eprintln!("usage: dw-bridge LISTEN CONNECT (tcp:HOST:PORT or unix:PATH)");
        return ExitCode::from(2);
    };
    match serve(listen.clone(), target.clone()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dw-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
