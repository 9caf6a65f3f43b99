//! Every end-to-end and adapter test in one binary — one link of the SDK-heavy build instead of
//! one per file — a module per area. `infra/test.sh` selects the DynamoDB Local pass by module
//! path (`store_contract::`, `races::`…).

mod support;

mod abuse;
mod access_flow;
mod api;
mod aws_backend;
mod console;
mod dynamodb_faults;
mod events;
mod fuzz_corpus;
mod hostile_input;
mod import;
mod integrity;
mod jwt_keys;
mod lambda_events;
mod lifecycle;
mod local_host;
mod model;
mod ops;
mod outages;
mod previous_release;
mod races;
mod secrets;
mod stars;
mod store_contract;
