//! `telegate import`, moving in from the Django system (outside the core: the dump's format is
//! read here, at the edge, and only here): the fixture `python manage.py dumpdata` writes becomes
//! telegate's payments, tokens, memberships, notifications and kept accounts. `plan` reads
//! and checks everything without writing; `apply` writes the plan, each record once; `verify`
//! compares the store with the plan (`write.rs`).

use std::path::PathBuf;

mod command;
mod fields;
mod plan;
mod write;

pub use command::{Request, make_plan, open_store, read_keep, run};
pub use plan::{Context, Mapping, Plan, Refusal, plan};
pub use write::{Outcome, apply, describe, verify};

/// A store the import writes to: what the use cases store, and the import's own writes.
pub trait Importable: telegate_core::ports::Store + telegate_core::ports::ImportStore {}
impl<T: telegate_core::ports::Store + telegate_core::ports::ImportStore + ?Sized> Importable for T {}

/// Why the import could not start: what to fix, before any row is read or written. (A row that
/// cannot be imported is not an error of the import: it is refused, with its reason, in the plan.)
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create {}: {source}", path.display())]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("cannot open the store: {0}")]
    Store(#[from] telegate_core::ports::StoreError),
    #[error("the mapping file is not valid: {0}")]
    Mapping(#[source] serde_json::Error),
    #[error("the dump is not a `manage.py dumpdata` JSON fixture: {0}")]
    Dump(#[source] serde_json::Error),
    #[error("--keep line {line}: {value:?} is not a Telegram user id")]
    Keep { line: usize, value: String },
}
