//! The `telegate` local host: runs the whole system on one machine (`serve`), shows it working
//! against a built-in fake Telegram (`demo`), mints local API tokens (`jwt`), and registers and
//! checks the bot (`set-webhook`, `doctor`), and moves in from the Django system (`import`).

#[cfg(feature = "demo")]
pub mod demo;
pub mod host;
pub mod import;
pub mod jwt;
pub mod local_env;
pub mod ops;
mod polling;
mod tasks;
