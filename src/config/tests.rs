//! Tests of the configuration: defaults, validation, and `--help` in step with `Config`.

use super::*;

fn flat_keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_object() {
                    flat_keys(v, &key, out);
                } else {
                    out.push(key);
                }
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn help_lists_every_option_and_nothing_else() {
    let mut keys = Vec::new();
    flat_keys(
        &serde_json::to_value(Config::default()).unwrap(),
        "",
        &mut keys,
    );
    let mut documented: Vec<String> = OPTIONS
        .iter()
        .chain(super::LIMITS_OPTIONS)
        .chain(super::EMAIL_OPTIONS)
        .chain(super::SERVER_NOTICES_OPTIONS)
        .map(|(k, _)| k.to_string())
        .collect();
    keys.sort();
    documented.sort();
    assert_eq!(keys, documented);
}

#[test]
fn open_registration_on_a_public_address_is_refused() {
    let mut config = Config {
        listen: "0.0.0.0:8008".parse().unwrap(),
        ..Config::default()
    };
    assert!(config.validate().is_err());
    config.registration.tokens = vec!["let-me-in".into()];
    assert!(config.validate().is_ok());
    config.registration.tokens.clear();
    config.registration.enabled = false;
    assert!(config.validate().is_ok());
    config.registration.enabled = true;
    config.registration.allow_open_on_public_address = true;
    assert!(config.validate().is_ok());
}

#[test]
fn gif_settings_are_checked_and_the_key_is_never_printed() {
    let mut config = Config::default();
    config.gifs.giphy_api_key = Some("sekrit-key".into());
    config.validate().unwrap();
    assert!(!format!("{config:?}").contains("sekrit-key"));
    config.gifs.rating = "nc-17".into();
    assert!(config.validate().is_err());
    config.gifs.rating = "pg-13".into();
    config.gifs.giphy_base_url = "ftp://giphy.example".into();
    assert!(config.validate().is_err());
    config.gifs.giphy_base_url = "https://api.giphy.com".into();
    config.gifs.giphy_api_key = Some(String::new());
    assert!(config.validate().is_err());
}

#[test]
fn email_settings_are_checked_and_the_password_is_never_printed() {
    let mut config = Config::default();
    assert!(!config.email.enabled());
    config.email.smtp_host = Some("smtp.example.org".into());
    // A sender is required, and must be an address.
    assert!(config.validate().is_err());
    config.email.from = Some("not an address".into());
    assert!(config.validate().is_err());
    config.email.from = Some("Hearth <hearth@example.org>".into());
    config.validate().unwrap();
    assert_eq!(config.email.port(), 587);
    config.email.smtp_security = SmtpSecurity::Tls;
    assert_eq!(config.email.port(), 465);
    // A user without a password (or the reverse) is refused.
    config.email.smtp_user = Some("hearth".into());
    assert!(config.validate().is_err());
    config.email.smtp_password = Some("sekrit-password".into());
    config.validate().unwrap();
    assert!(!format!("{config:?}").contains("sekrit-password"));
}

#[test]
fn tls_needs_both_files_and_makes_the_base_url_https() {
    let mut config = Config::default();
    config.tls.certificate = Some("cert.pem".into());
    assert!(config.validate().is_err());
    config.tls.private_key = Some("key.pem".into());
    config.validate().unwrap();
    assert_eq!(config.public_baseurl(), "https://localhost:8008");
}

#[test]
fn federation_settings_are_checked() {
    let mut config = Config::default();
    assert!(config.federation.enabled && config.federation.verify_tls);
    assert!(!config.federation.ip_range_denylist.is_empty());
    config.federation.trusted_key_servers = vec!["not a server".into()];
    assert!(config.validate().is_err());
    config.federation.trusted_key_servers = vec!["matrix.org".into()];
    config.validate().unwrap();
    config.federation.max_retry_interval_secs = 0;
    assert!(config.validate().is_err());
}

#[test]
fn the_denylist_is_read_from_toml_and_bad_ranges_are_refused() {
    let parse = |text: &str| {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract::<Config>()
            .map_err(Box::new)
    };
    let config = parse("[federation]\nip_range_denylist = [\"10.0.0.0/8\", \"fc00::/7\"]").unwrap();
    assert_eq!(config.federation.ip_range_denylist.len(), 2);
    let config = parse("[federation]\nip_range_denylist = []").unwrap();
    assert!(config.federation.ip_range_denylist.is_empty());
    assert!(parse("[federation]\nip_range_denylist = [\"10.0.0.0/33\"]").is_err());
    assert!(parse("[federation]\nip_range_denylist = [\"example.org\"]").is_err());
}

#[test]
fn defaults_are_valid_and_local() {
    let config = Config::default();
    config.validate().unwrap();
    assert_eq!(config.public_baseurl(), "http://localhost:8008");
}
