//! Secrets read from Secrets Manager when a function starts, instead of from its environment
//! (which `lambda:GetFunctionConfiguration` shows to whoever may call it): a setting `NAME` given
//! as `NAME_ARN` is the string of that secret.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;

/// The settings that may be given this way.
pub const SECRET_SETTINGS: [&str; 4] =
    ["TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "JWT_HS256_SECRET", "CONSOLE_SESSION_KEY"];

#[derive(Debug, thiserror::Error)]
#[error("cannot read the secret {arn} ({setting}_ARN): {cause}")]
pub struct SecretError {
    setting: &'static str,
    arn: String,
    cause: crate::ports::Cause,
}

/// The value of each setting of `SECRET_SETTINGS` that `env` gives as `<NAME>_ARN`, read at
/// once. A secret that cannot be read is an error: the function does not start without it.
pub async fn read(
    config: &aws_config::SdkConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<&'static str, String>, SecretError> {
    let wanted: Vec<(&'static str, String)> = SECRET_SETTINGS
        .iter()
        .filter_map(|name| env(&format!("{name}_ARN")).filter(|a| !a.trim().is_empty()).map(|arn| (*name, arn)))
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    // One after the other: a function reads at most two, at its start.
    let client = Client::new(config);
    let mut values = HashMap::new();
    for (setting, arn) in wanted {
        let out = client.get_secret_value().secret_id(&arn).send().await;
        let value = out
            .map_err(|e| crate::ports::Cause::with("Secrets Manager", e))
            .and_then(|o| o.secret_string.ok_or_else(|| crate::ports::Cause::new(NoString)));
        match value {
            Ok(v) => values.insert(setting, v),
            Err(cause) => return Err(SecretError { setting, arn, cause }),
        };
    }
    Ok(values)
}

#[derive(Debug, thiserror::Error)]
#[error("the secret has no string value")]
struct NoString;
