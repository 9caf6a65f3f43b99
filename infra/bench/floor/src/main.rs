//! A hello-world `lambda_http` function: the floor every telegate function is compared with in
//! `infra/bench/coldstart.rs`. Same release profile, same lambda_http and tokio as the functions.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async { Ok::<_, Error>(Response::new(Body::from("hello"))) })).await
}
