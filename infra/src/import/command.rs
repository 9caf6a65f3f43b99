//! The command: moves the Django system's dump into the configured store (SQLite in the
//! data folder, or the DynamoDB table when the AWS settings are set).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Context, ImportError, Importable, Mapping, Plan};
use telegate_core::adapters::aws::sdk_config;
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::adapters::sqlite::SqliteStore;
use telegate_core::config::Settings;
use telegate_core::domain::TelegramUserId;

pub struct Request {
    pub dump: PathBuf,
    pub mapping: Option<PathBuf>,
    pub keep: Option<PathBuf>,
    pub dry_run: bool,
    pub verify: bool,
}

/// The ids of `--keep`: one Telegram id per line (first column of a CSV; a header, blank lines
/// and `#` comments are skipped).
pub fn read_keep(raw: &str) -> Result<Vec<TelegramUserId>, ImportError> {
    let mut ids = Vec::new();
    for (n, line) in raw.lines().enumerate() {
        let first = line.split([',', ';', '\t']).next().unwrap_or("").trim().trim_matches('"');
        if first.is_empty() || first.starts_with('#') || (n == 0 && first.parse::<i64>().is_err()) {
            continue;
        }
        let id = first.parse::<i64>().ok().and_then(|i| TelegramUserId::parse(i).ok());
        ids.push(id.ok_or(ImportError::Keep { line: n + 1, value: first.to_owned() })?);
    }
    Ok(ids)
}

/// The store the settings name (the DynamoDB table with the AWS settings, else the SQLite file
/// in `data`), opened for the import.
pub async fn open_store(settings: &Settings, data: &Path) -> Result<Arc<dyn Importable>, ImportError> {
    Ok(match &settings.aws {
        Some(aws) => {
            let config = sdk_config().await;
            Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &aws.table))
        }
        None => {
            std::fs::create_dir_all(data).map_err(|source| ImportError::Folder { path: data.to_owned(), source })?;
            Arc::new(SqliteStore::open(&data.join(crate::local_env::STORE_FILE))?)
        }
    })
}

pub fn make_plan(
    request: &Request,
    settings: &Settings,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Plan, ImportError> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| ImportError::Read { path: p.to_owned(), source });
    let mapping = match &request.mapping {
        Some(p) => Mapping::from_json(&read(p)?)?,
        None => Mapping::default(),
    };
    let keep = match &request.keep {
        Some(p) => read_keep(&read(p)?)?,
        None => Vec::new(),
    };
    let cx = Context { offers: settings.offers.clone(), channel_id: settings.channel_id, now, keep };
    super::plan(&read(&request.dump)?, &mapping, &cx)
}

fn tally(plan: &Plan) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in &plan.records {
        let (kind, status) = super::describe(record);
        *counts.entry(format!("{kind} {status}")).or_insert(0) += 1;
    }
    counts
}

fn report_plan(plan: &Plan, lines: &mut Vec<String>) {
    for (model, n) in &plan.other_models {
        lines.push(format!("not imported: {n} row(s) of {model} (not one of the five models)"));
    }
    for (model, fields) in &plan.unused_fields {
        lines.push(format!("fields not used in {model}: {}", fields.iter().cloned().collect::<Vec<_>>().join(", ")));
    }
    for r in &plan.refused {
        lines.push(format!("✗ refused {} {}: {}", r.model, r.pk, r.reason));
    }
}

/// Runs the command; the lines to print and whether it succeeded. Refused rows make it fail
/// (after writing everything else): fix them or the mapping and run it again, which adds only
/// what is missing.
pub async fn run(request: Request, settings: &Settings, data: &Path) -> (Vec<String>, bool) {
    let now = chrono::Utc::now();
    let mut lines = Vec::new();
    let plan = match make_plan(&request, settings, now) {
        Ok(p) => p,
        Err(e) => return (vec![format!("telegate import: {e}")], false),
    };
    report_plan(&plan, &mut lines);
    if request.dry_run {
        for (label, n) in tally(&plan) {
            lines.push(format!("would import {n:>6} {label}"));
        }
        lines.push(format!("dry run: nothing written; {} row(s) would be refused", plan.refused.len()));
        return (lines, plan.refused.is_empty());
    }
    let store = match open_store(settings, data).await {
        Ok(s) => s,
        Err(e) => return (vec![format!("telegate import: {e}")], false),
    };
    if request.verify {
        return match super::verify(store.as_ref(), &plan, now).await {
            Ok(problems) if problems.is_empty() => {
                lines.push(format!("✓ all {} imported record(s) are in the store", plan.records.len()));
                (lines, plan.refused.is_empty())
            }
            Ok(problems) => {
                lines.extend(problems.iter().map(|p| format!("✗ {p}")));
                lines.push(format!("{} of {} record(s) are not as imported", problems.len(), plan.records.len()));
                (lines, false)
            }
            Err(e) => (vec![format!("telegate import --verify: the store failed: {e}")], false),
        };
    }
    let progress = |done: usize, total: usize| tracing::info!(done, total, "importing");
    match super::apply(store.as_ref(), &plan, now, &progress).await {
        Ok(outcome) => {
            for (label, n) in &outcome.new {
                lines.push(format!("imported {n:>6} {label}"));
            }
            for (label, n) in &outcome.already {
                lines.push(format!("already there {n:>6} {label}"));
            }
            for r in &outcome.refused {
                lines.push(format!("✗ refused {} {}: {}", r.model, r.pk, r.reason));
            }
            let refused = plan.refused.len() + outcome.refused.len();
            if refused > 0 {
                lines.push(format!(
                    "{refused} row(s) refused and not written (listed above): fix them or the mapping and run the import again; it adds only what is missing"
                ));
            }
            (lines, refused == 0)
        }
        Err(e) => {
            lines.push(format!(
                "telegate import: the store failed: {e}; what was written stays, and running the import again completes it"
            ));
            (lines, false)
        }
    }
}
