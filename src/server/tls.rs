//! The listener's TLS settings: a certificate chain and its private key from PEM files,
//! read once at start-up with errors that say which file is wrong and how.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Reads and checks the certificate and key; the server refuses to start without them.
pub fn server_config(cert_path: &Path, key_path: &Path) -> anyhow::Result<ServerConfig> {
    let certs = read_certificates(cert_path)?;
    let key = read_private_key(key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => anyhow!(
                "the TLS private key {} does not belong to the certificate {} (tls.private_key must be the key of tls.certificate)",
                key_path.display(),
                cert_path.display()
            ),
            other => anyhow!(
                "cannot use the TLS certificate {} with the key {}: {other}",
                cert_path.display(),
                key_path.display()
            ),
        })?;
    // HTTP/1.1 only, as on the plain listener: WebSocket sync upgrades need it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the TLS certificate {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("the TLS certificate {} is not valid PEM", path.display()))?;
    if certs.is_empty() {
        bail!(
            "the TLS certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the TLS private key {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("the TLS private key {} is not valid PEM", path.display()))?
        .ok_or_else(|| {
            anyhow!(
                "the TLS private key file {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            )
        })
}
