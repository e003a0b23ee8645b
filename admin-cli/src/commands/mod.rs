//! One module per command group.

pub mod audit;
pub mod media;
pub mod offline;
pub mod redact;
pub mod reports;
pub mod rooms;
pub mod server;
pub mod session;
pub mod tokens;
pub mod users;

use crate::client::Failure;

/// A password from `--password` or one line of standard input (`--password-stdin`).
#[derive(clap::Args, Debug, Clone)]
pub struct PasswordArgs {
    /// The password (visible to other local users in the process list; prefer
    /// --password-stdin)
    #[arg(long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

impl PasswordArgs {
    pub fn read(&self) -> Result<String, Failure> {
        if let Some(password) = &self.password {
            return Ok(password.clone());
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Failure::Local(format!("cannot read the password: {e}")))?;
            let password = line.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                return Err(Failure::Usage(
                    "the password on standard input is empty".into(),
                ));
            }
            return Ok(password);
        }
        Err(Failure::Usage(
            "give the password with --password-stdin (or --password)".into(),
        ))
    }
}

/// `--from` and `--limit` for paged lists.
#[derive(clap::Args, Debug, Clone)]
pub struct Paging {
    /// Skip this many entries
    #[arg(long, default_value_t = 0)]
    pub from: usize,
    /// Show at most this many entries
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// Builds a query string from the pairs that have a value.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", crate::client::enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// "N more: --from M" when a list was cut short.
pub fn more_hint(next: &serde_json::Value, total: &serde_json::Value) {
    let next = match next {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return,
    };
    eprintln!(
        "(showing part of {}; continue with --from {next})",
        crate::output::cell(total)
    );
}
