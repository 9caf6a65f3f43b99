//! Settings for the local host: the environment first, then local defaults so that `telegate
//! serve` runs with nothing configured. Secrets it has to invent are kept in the data folder
//! (`dev-secrets.json`, mode 0600), never printed.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};
use telegate_core::config::{ConfigError, Settings};

#[derive(Serialize, Deserialize)]
pub struct DevSecrets {
    pub jwt_hs256_secret: String,
    pub webhook_secret: String,
}

pub const DEV_SECRETS: &str = "dev-secrets.json";

/// Reads (or creates once) the data folder's development secrets.
pub fn dev_secrets(data: &Path) -> Result<DevSecrets, String> {
    let path = data.join(DEV_SECRETS);
    if let Ok(raw) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&raw)
            .map_err(|e| format!("{} is damaged ({e}); delete it to start afresh", path.display()));
    }
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let secrets = DevSecrets { jwt_hs256_secret: random_secret()?, webhook_secret: random_secret()? };
    let body = serde_json::to_string_pretty(&secrets).map_err(|e| e.to_string())?;
    write_private(&path, &body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(secrets)
}

fn random_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("the OS random source failed: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(unix)]
fn write_private(path: &Path, body: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(body.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, body: &str) -> std::io::Result<()> {
    std::fs::write(path, body)
}

/// The embedded store's file in the data folder (`serve`, `doctor`, `import`).
pub const STORE_FILE: &str = "telegate.sqlite3";

/// What the local host filled in, to tell the person running it.
pub struct LocalDefaults {
    pub settings: Settings,
    pub used_dev_jwt_secret: bool,
    pub used_dev_webhook_secret: bool,
}

/// `env` is the process environment in `main`, a map in tests.
pub fn local_settings(data: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<LocalDefaults, ConfigError> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let mut fallback: HashMap<&str, String> = HashMap::new();
    if set("TELEGRAM_BOT_TOKEN").is_none() {
        fallback.insert("TELEGRAM_BOT_USERNAME", "telegate_local_bot".into());
        fallback.insert("TELEGRAM_CHANNEL_ID", "-1000000000001".into());
        fallback.insert("TELEGRAM_CHANNEL_NAME", "telegate (local)".into());
    }
    let no_jwt = ["JWT_HS256_SECRET", "JWT_PUBLIC_KEY_PEM", "JWT_JWKS_URL"].iter().all(|k| set(k).is_none());
    let no_webhook_secret = set("TELEGRAM_WEBHOOK_SECRET").is_none();
    if no_jwt || no_webhook_secret {
        let secrets = dev_secrets(data).map_err(ConfigError)?;
        if no_jwt {
            fallback.insert("JWT_HS256_SECRET", secrets.jwt_hs256_secret);
        }
        if no_webhook_secret {
            fallback.insert("TELEGRAM_WEBHOOK_SECRET", secrets.webhook_secret);
        }
    }
    let settings = Settings::from_env(&|k| set(k).or_else(|| fallback.get(k).cloned()))?;
    Ok(LocalDefaults { settings, used_dev_jwt_secret: no_jwt, used_dev_webhook_secret: no_webhook_secret })
}
