//! telegate's core: domain, ports, use cases and HTTP routers, shared by the local host and the
//! Lambda functions. Adapters live in `adapters/`.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod adapters;
pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod ports;
