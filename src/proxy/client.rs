//! The pooled upstream client (HTTP/1.1 and HTTP/2, plain or rustls).

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;
use crate::config::ProxyConfig;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("proxy.ca_file: {0}")]
    CaFile(String),
    #[error("no usable root certificates for an https upstream")]
    NoRoots,
}

/// Build the pool. Idle connections close after `pool_idle_timeout` (default
/// 4 s, below Node's 5 s keep-alive) so the gate never reuses a socket the
/// upstream is about to close; hyper retries a request whose pooled connection
/// turned out closed before any byte was written (`retry_canceled_requests`).
pub fn build(cfg: &ProxyConfig, https: bool) -> Result<UpstreamClient, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(30)));

    let tls = tls_config(cfg, https)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);

    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(1024)
        .retry_canceled_requests(true)
        .timer(TokioTimer::new())
        .build(connector))
}

fn tls_config(cfg: &ProxyConfig, https: bool) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = &cfg.ca_file {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ClientError::CaFile(format!("cannot read {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| ClientError::CaFile(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::CaFile(format!("{}: {e}", path.display())))?;
        }
    }
    if https && roots.is_empty() {
        return Err(ClientError::NoRoots);
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
