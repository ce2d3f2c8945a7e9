//! TLS for the client listener (rustls), ALPN `h2` and `http/1.1`.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::config::{ConfigError, TlsFiles};

/// Load the certificate chain and key into a server config. Errors name the key.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
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
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ConfigError::new(
                "server.tls_key_file",
                format!("does not match the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
