//! What the alarms read besides Lambda's own metrics: counts written as CloudWatch Embedded Metric
//! Format lines on stdout, which CloudWatch Logs turns into metrics (no client, no call). Written
//! only where the Lambda wiring turned them on (`enable`), under the stack's namespace; locally
//! and in the tests nothing is written. The alarms and the runbook are in template.yaml and the
//! README.

use std::sync::OnceLock;

use serde_json::{Value, json};

static NAMESPACE: OnceLock<String> = OnceLock::new();

/// From now on, metrics are written, under `namespace` (the stack's: `telegate/<stack>`).
pub fn enable(namespace: &str) {
    let _ = NAMESPACE.set(namespace.to_owned());
}

/// A metric the code emits, with its one dimension when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric<'a> {
    /// The webhook's answer to Telegram, by status class (`2xx`, `4xx`, `5xx`).
    WebhookAnswer { class: &'a str },
    /// A Bot API call that failed (Telegram's fault or a refusal, not a user who blocked the bot).
    TelegramError { method: &'a str },
    /// Telegram's flood control (429) on a Bot API call.
    TelegramFloodWait { method: &'a str },
    /// An effect that failed and will be tried again.
    EffectRetried,
    /// An effect given up on: it goes to the dead-letter queue.
    EffectDeadLettered,
    /// A job run that failed.
    JobRunFailed { job: &'a str },
    /// A job run that finished its work (the overdue alarm waits for it).
    JobRunCompleted { job: &'a str },
    /// A refund Telegram refused.
    RefundFailed,
}

impl Metric<'_> {
    fn name(self) -> &'static str {
        match self {
            Self::WebhookAnswer { .. } => "WebhookAnswers",
            Self::TelegramError { .. } => "TelegramErrors",
            Self::TelegramFloodWait { .. } => "TelegramFloodWaits",
            Self::EffectRetried => "EffectsRetried",
            Self::EffectDeadLettered => "EffectsDeadLettered",
            Self::JobRunFailed { .. } => "JobRunsFailed",
            Self::JobRunCompleted { .. } => "JobRunsCompleted",
            Self::RefundFailed => "RefundsFailed",
        }
    }

    fn dimension(self) -> Option<(&'static str, String)> {
        match self {
            Self::WebhookAnswer { class } => Some(("Class", class.to_owned())),
            Self::TelegramError { method } | Self::TelegramFloodWait { method } => Some(("Method", method.to_owned())),
            Self::JobRunFailed { job } | Self::JobRunCompleted { job } => Some(("Job", job.to_owned())),
            Self::EffectRetried | Self::EffectDeadLettered | Self::RefundFailed => None,
        }
    }
}

/// One more of `metric`.
pub fn count(metric: Metric<'_>) {
    let Some(namespace) = NAMESPACE.get() else { return };
    let name = metric.name();
    // Failures per dimension value and in all (their alarms read the total: an alarm cannot sum a
    // dimension); the steady ones, each a metric billed every month, per value only.
    let sets: Vec<Vec<&str>> = match (metric, metric.dimension()) {
        (Metric::WebhookAnswer { .. } | Metric::JobRunCompleted { .. }, Some((key, _))) => vec![vec![key]],
        (_, Some((key, _))) => vec![vec![key], vec![]],
        (_, None) => vec![vec![]],
    };
    let mut line = emf(namespace, name, "Count", &sets, 1.0);
    if let Some((key, value)) = metric.dimension() {
        line[key] = Value::from(value);
    }
    println!("{line}");
}

/// How long the effect just carried out waited since it was first queued (a retry keeps its
/// first time), in seconds: the alarm reads the maximum.
pub fn effect_age(seconds: f64) {
    let Some(namespace) = NAMESPACE.get() else { return };
    println!("{}", emf(namespace, "EffectAgeSeconds", "Seconds", &[vec![]], seconds));
}

/// One Embedded Metric Format line: the metric's definition under `_aws`, its value beside it.
fn emf(namespace: &str, name: &str, unit: &str, dimension_sets: &[Vec<&str>], value: f64) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut line = json!({
        "_aws": {
            "Timestamp": now.as_millis() as u64,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": dimension_sets,
                "Metrics": [{ "Name": name, "Unit": unit }],
            }],
        },
    });
    line[name] = Value::from(value);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_its_metric_its_dimension_and_its_value_as_cloudwatch_reads_them() {
        let mut line = emf("telegate/prod", "TelegramErrors", "Count", &[vec!["Method"], vec![]], 1.0);
        line["Method"] = "banChatMember".into();
        let metrics = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], "telegate/prod");
        assert_eq!(metrics["Dimensions"], json!([["Method"], []]), "per method, and in all");
        assert_eq!(metrics["Metrics"], json!([{"Name": "TelegramErrors", "Unit": "Count"}]));
        assert_eq!((line["TelegramErrors"].as_f64(), line["Method"].as_str()), (Some(1.0), Some("banChatMember")));
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000, "milliseconds since the epoch");
        let bare = emf("telegate/prod", "EffectsRetried", "Count", &[vec![]], 1.0);
        assert_eq!(bare["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }

    #[test]
    fn each_metric_has_its_name_and_dimension() {
        assert_eq!(Metric::WebhookAnswer { class: "5xx" }.dimension(), Some(("Class", "5xx".into())));
        assert_eq!(Metric::TelegramFloodWait { method: "x" }.name(), "TelegramFloodWaits");
        assert_eq!(Metric::JobRunFailed { job: "expire-tokens" }.dimension(), Some(("Job", "expire-tokens".into())));
        assert_eq!(Metric::RefundFailed.dimension(), None);
    }
}
