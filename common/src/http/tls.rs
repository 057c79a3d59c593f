//! TLS settings of the one HTTP client for HTTPS peers (image registries): rustls on the
//! `ring` provider, trusting the system's CA roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured)
//! plus, optionally, a PEM bundle the operator names.
//!
//! A `FROM scratch` image has no system roots: the operator mounts a bundle (the host's
//! `/etc/ssl/certs`, or one file named by `SSL_CERT_FILE` or the extra-bundle option).
//! Settings without any root are not an error here (loopback registries speak plain HTTP
//! and need none); [`TlsSettings::roots`] lets the caller say why an HTTPS peer fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why the TLS settings could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA bundle {path}: {message}")]
    Bundle { path: PathBuf, message: String },
    #[error("TLS settings: {0}")]
    Config(String),
}

/// A rustls client configuration and what went into it.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub config: Arc<rustls::ClientConfig>,
    /// How many CA roots it trusts (0: no HTTPS peer can be verified).
    pub roots: usize,
    /// Roots of the system store that could not be read (logged by the caller, not fatal:
    /// one bad file in `/etc/ssl/certs` must not take HTTPS down).
    pub problems: Vec<String>,
}

impl TlsSettings {
    /// The system's roots (as [`rustls_native_certs`] finds them) and, when given, every
    /// certificate of the PEM bundle `extra` (an unreadable or empty bundle is an error:
    /// the operator named it).
    pub fn load(extra: Option<&Path>) -> Result<TlsSettings, TlsError> {
        let native = rustls_native_certs::load_native_certs();
        let mut problems: Vec<String> = native.errors.iter().map(|e| e.to_string()).collect();
        let mut store = rustls::RootCertStore::empty();
        let (_, ignored) = store.add_parsable_certificates(native.certs);
        if ignored > 0 {
            problems.push(format!("{ignored} system CA certificates could not be parsed"));
        }
        if let Some(path) = extra {
            let bundle = |message: String| TlsError::Bundle {
                path: path.to_path_buf(),
                message,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bundle(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bundle(e.to_string()))?;
            if certs.is_empty() {
                return Err(bundle("no PEM certificate in it".into()));
            }
            for cert in certs {
                store.add(cert).map_err(|e| bundle(e.to_string()))?;
            }
        }
        Self::with_roots(store, problems)
    }

    /// Exactly these roots (tests: a private CA).
    pub fn with_roots(store: rustls::RootCertStore, problems: Vec<String>) -> Result<TlsSettings, TlsError> {
        let roots = store.len();
        // rustls 0.23.48 deprecates `ring`'s provider for lacking post-quantum key exchange
        // (aws-lc-rs has it, at the cost of a C build of AWS-LC). Registry traffic is
        // authenticated end to end by the signatures; TLS here guards tokens and credentials
        // in transit, for which the classical groups are what every registry speaks today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        // The client speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsSettings {
            config: Arc::new(config),
            roots,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_bundle_that_is_not_pem_is_refused_with_its_path() {
        let tmp = tempfile::Builder::new()
            .prefix("dwtest-prov-tls-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "not a certificate\n").unwrap();
        let e = TlsSettings::load(Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("bad.pem") && e.contains("no PEM certificate"), "{e}");
        let missing = dir.join("missing.pem");
        let e = TlsSettings::load(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    /// A TLS server on a loopback port with the test CA's `localhost` certificate, answering
    /// every request with 200 and the SNI it saw.
    async fn tls_server() -> u16 {
        use rustls::pki_types::PrivateKeyDer;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls");
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("localhost.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("localhost.key")).unwrap();
        #[allow(deprecated)] // see TlsSettings::with_roots
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().unwrap_or("-").to_string();
                    let mut buf = vec![0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let body = format!("sni={sni}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn the_client_speaks_https_with_the_given_roots_and_refuses_unknown_issuers() {
        use crate::http::client::{Client, Target};
        let port = tls_server().await;
        let target = || Target::Tls {
            host: "localhost".into(),
            port,
        };
        let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls/ca.pem");
        let trusted = TlsSettings::load(Some(&ca)).unwrap();
        assert!(trusted.roots >= 1);
        let c =
            Client::new(target(), "test server", std::time::Duration::from_secs(5)).with_tls(trusted.config);
        let (resp, body) = c.get("GET over TLS", "/", &[], 1024).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(&body[..], b"sni=localhost");

        let untrusted = TlsSettings::with_roots(rustls::RootCertStore::empty(), vec![]).unwrap();
        let c = Client::new(target(), "test server", std::time::Duration::from_secs(5))
            .with_tls(untrusted.config);
        let e = c.get("GET over TLS", "/", &[], 1024).await.unwrap_err();
        assert!(e.is_unreachable(), "{e:?}");
        assert!(
            e.to_string().contains("UnknownIssuer") || e.to_string().contains("unknown issuer"),
            "{e}"
        );

        let c = Client::new(target(), "test server", std::time::Duration::from_secs(5));
        let e = c.get("GET over TLS", "/", &[], 1024).await.unwrap_err();
        assert!(e.to_string().contains("no TLS settings"), "{e}");
    }

    #[test]
    fn empty_roots_are_settings_that_say_so() {
        let s = TlsSettings::with_roots(rustls::RootCertStore::empty(), vec![]).unwrap();
        assert_eq!(s.roots, 0);
        assert_eq!(s.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
