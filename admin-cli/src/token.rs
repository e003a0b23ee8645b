//! Where `hearthctl login` keeps its session: `$XDG_CONFIG_HOME/hearthctl/session.json`
//! (else `~/.config/hearthctl/session.json`), readable by the user only.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::client::Failure;

#[derive(Serialize, Deserialize)]
pub struct Session {
    pub server: String,
    pub user_id: String,
    pub access_token: String,
}

pub fn session_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("hearthctl").join("session.json"))
}

pub fn load() -> Result<Option<Session>, Failure> {
    let Some(path) = session_path() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Failure::Local(format!(
                "{} is not a hearthctl session ({e}); run `hearthctl login` again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::Local(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

pub fn save(session: &Session) -> Result<PathBuf, Failure> {
    let path = session_path()
        .ok_or_else(|| Failure::Local("no HOME or XDG_CONFIG_HOME to keep the token in".into()))?;
    let fail = |e: std::io::Error| Failure::Local(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let text = serde_json::to_string_pretty(session).map_err(|e| Failure::Local(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(fail)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(fail)?;
    Ok(path)
}

pub fn remove() -> Result<bool, Failure> {
    let Some(path) = session_path() else {
        return Ok(false);
    };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Failure::Local(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}
