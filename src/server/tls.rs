//! TLS for the client listener (rustls), ALPN `h2` and `http/1.1`, with a
//! certificate that can be replaced while the gate runs.
//!
//! The server config resolves its certificate through [`ListenerCert`] on
//! every handshake, so a reload ([`ListenerCert::reload`], driven by
//! [`crate::reload`] on a file change or SIGHUP) applies to the next
//! connection and drops none: open connections keep the session they made.
//! A new pair that does not load or does not match is refused and the
//! previous one stays.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::config::{ConfigError, TlsFiles};
use crate::swap::Swap;

/// The listener's current certificate and key.
pub struct ListenerCert {
    files: TlsFiles,
    current: Swap<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for ListenerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerCert")
            .field("cert_file", &self.files.cert_file)
            .field("key_file", &self.files.key_file)
            .finish()
    }
}

impl ListenerCert {
    /// Load the pair named by `files`. Errors name the key.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, ConfigError> {
        let key = certified_key(files)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            current: Swap::new(Arc::new(key)),
        }))
    }

    /// Read the files again; on success new handshakes use the new pair, on
    /// failure the previous pair stays and the error says why.
    pub fn reload(&self) -> Result<(), ConfigError> {
        self.current.set(Arc::new(certified_key(&self.files)?));
        Ok(())
    }

    /// The files to watch for changes.
    pub fn files(&self) -> [&std::path::Path; 2] {
        [&self.files.cert_file, &self.files.key_file]
    }
}

impl ResolvesServerCert for ListenerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.get())
    }
}

/// The listener's server config: certificates from `cert`, ALPN h2 and http/1.1.
pub fn server_config(cert: Arc<ListenerCert>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Load the certificate chain and key and check they belong together.
fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConfigError::new(
                "server.tls_cert_file",
                format!("cannot load {}: {e}", files.cert_file.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            "server.tls_cert_file",
            format!("no certificate in {}", files.cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| {
        ConfigError::new(
            "server.tls_key_file",
            format!(
                "cannot load a private key from {}: {e}",
                files.key_file.display()
            ),
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
        ConfigError::new(
            "server.tls_key_file",
            format!("does not match the certificate: {e}"),
        )
    })
}
