//! telegate's core: domain, ports, use cases and HTTP routers, shared by the local host and the
//! Lambda functions. Adapters live in `adapters/`.

pub mod adapters;
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod ports;
