//! The `telegate` local host: runs the whole system on one machine (`serve`), shows it working
//! against a built-in fake Telegram (`demo`), and mints local API tokens (`jwt`).

pub mod demo;
pub mod fake_telegram;
pub mod host;
pub mod jwt;
pub mod local_env;
