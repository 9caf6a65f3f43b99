//! Test support, kept out of the product binaries: what the end-to-end tests (`tests/all`), the
//! fuzz targets (`fuzz/`), the deployment check and the benchmarks (`infra/`) share.

pub use telegate_fake_telegram as fake_telegram;

pub mod fuzzing;
pub mod lambda_emulator;
pub mod local_aws;
pub mod samples;
