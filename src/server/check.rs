//! `hearth --check-config`: everything start-up would refuse, found without starting.
//! The store is not opened, so a running server's configuration can be checked too.

use anyhow::{Context, bail};

use crate::config::{Config, JwtAlgorithm};

/// Reads every file the configuration names (certificates, keys, CA bundles) as start-up
/// or the first request would, and returns a one-line summary of what would be served.
pub fn check_config(config: &Config) -> anyhow::Result<String> {
    if let Some((cert, key)) = config.tls.paths() {
        super::tls::server_config(cert, key)?;
    }
    for path in &config.federation.extra_ca_files {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "cannot read federation.extra_ca_files entry {}",
                path.display()
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
    }
    let jwt = &config.jwt;
    if jwt.enabled
        && let Some(path) = &jwt.public_key_file
    {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read jwt.public_key_file {}", path.display()))?;
        let parsed = match jwt.algorithm {
            JwtAlgorithm::RS256 => jsonwebtoken::DecodingKey::from_rsa_pem(&pem).map(drop),
            JwtAlgorithm::ES256 => jsonwebtoken::DecodingKey::from_ec_pem(&pem).map(drop),
            _ => Ok(()),
        };
        parsed.with_context(|| {
            format!(
                "jwt.public_key_file {} is not a PEM {:?} public key",
                path.display(),
                jwt.algorithm
            )
        })?;
    }
    if config.data.exists() && !config.data.is_dir() {
        bail!(
            "the data directory {} exists and is not a directory",
            config.data.display()
        );
    }
    let scheme = if config.tls.paths().is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!(
        "configuration OK: {} serving {scheme}://{} with data in {}, clients told {}, federation {}",
        config.server_name,
        config.listen,
        config.data.display(),
        config.public_baseurl(),
        match (&config.federation.enabled, &config.well_known.server) {
            (false, _) => "off".to_owned(),
            (true, Some(delegated)) => format!("delegated to {delegated}"),
            (true, None) => format!("at {} (port 8448 unless it names one)", config.server_name),
        }
    ))
}
