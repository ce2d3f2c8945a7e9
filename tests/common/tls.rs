//! Self-signed certificates for `localhost` and TLS connections to a gate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A self-signed certificate for `localhost`, written as `cert.pem` and
/// `key.pem` in a temporary folder.
pub struct SelfSigned {
    pub cert: rcgen::CertifiedKey,
    pub dir: tempfile::TempDir,
}

impl SelfSigned {
    pub fn localhost() -> SelfSigned {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = SelfSigned { cert, dir };
        std::fs::write(out.cert_path(), out.cert.cert.pem()).expect("write cert.pem");
        std::fs::write(out.key_path(), out.cert.key_pair.serialize_pem()).expect("write key.pem");
        out
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The `[server]` section of a gate that serves this certificate.
    pub fn server_toml(&self) -> String {
        format!(
            "[server]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            self.cert_path().display(),
            self.key_path().display()
        )
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.cert.der().clone()
    }
}

/// A TLS connection to `addr` as `localhost`, trusting `trusted` and
/// offering `alpn` (none if empty).
pub async fn tls_connect(
    addr: SocketAddr,
    trusted: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.clone()).expect("a valid root");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    connector
        .connect(ServerName::try_from("localhost").expect("a DNS name"), tcp)
        .await
        .expect("TLS handshake")
}
