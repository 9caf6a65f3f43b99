//! The event bus of the deployment check: EventBridge's `PutEvents` kept and delivered to the
//! functions as the template's rules say (the stand-in delivers nothing to targets).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

use super::{Platform, resolve};

/// EventBridge as the functions reach it (`AWS_ENDPOINT_URL_EVENTBRIDGE`): each call goes on to
/// the stand-in, and the entries of each `PutEvents` are kept for the platform to deliver as the
/// template's rules say (the stand-in delivers nothing to targets).
pub struct Bus {
    pub upstream: String,
    pub entries: Mutex<Vec<Value>>,
}

pub async fn bus_call(
    State(bus): State<Arc<Bus>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    if target.ends_with(".PutEvents") {
        let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        bus.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(call["Entries"].as_array().cloned().unwrap_or_default());
    }
    telegate_testkit::local_aws::pass_on(&bus.upstream, method, &uri, &headers, body).await
}

/// Whether an `EventBridgeRule` event's `Pattern` matches a `PutEvents` entry: each field it
/// names (`source`, `detail-type`) lists the values it takes. A field this check does not know
/// is an error, not a match.
fn matches(pattern: &Value, entry: &Value) -> Result<bool, String> {
    let fields = pattern.as_object().ok_or("a rule without a Pattern")?;
    for (field, allowed) in fields {
        let value = match field.as_str() {
            "source" => &entry["Source"],
            "detail-type" => &entry["DetailType"],
            other => return Err(format!("the check cannot match a pattern on {other}")),
        };
        if !allowed.as_array().is_some_and(|a| a.contains(value)) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Platform {
    /// Delivers what was put on the bus since the last call, as EventBridge would: each entry
    /// that an `EventBridgeRule` event of a function matches (its bus, its pattern) invokes that
    /// function with the event. The functions invoked and their answers; an entry no rule matches
    /// (a business event, for a creator's own rule) goes nowhere.
    pub(super) async fn deliver_bus(&self) -> Result<Vec<(String, String)>, String> {
        let entries = std::mem::take(&mut *self.bus.entries.lock().unwrap_or_else(|e| e.into_inner()));
        let mut answers = Vec::new();
        for entry in &entries {
            for (name, (_, properties)) in &self.functions {
                let events = properties["Events"].as_object().cloned().unwrap_or_default();
                for rule in events.values().filter(|e| e["Type"] == "EventBridgeRule") {
                    let bus = resolve(&rule["Properties"]["EventBusName"], &self.resources)?;
                    if entry["EventBusName"] != json!(bus) || !matches(&rule["Properties"]["Pattern"], entry)? {
                        continue;
                    }
                    let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap_or("null"))
                        .map_err(|e| format!("an entry whose detail is not JSON: {e}"))?;
                    let event = json!({
                        "version": "0", "id": format!("deploy-check-{}", answers.len()),
                        "detail-type": entry["DetailType"], "source": entry["Source"], "account": "123456789012",
                        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "region": "eu-west-1", "resources": [], "detail": detail,
                    });
                    answers.push((name.clone(), self.invoke(name, event.to_string()).await?));
                }
            }
        }
        Ok(answers)
    }
}
