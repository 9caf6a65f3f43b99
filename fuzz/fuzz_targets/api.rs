//! Every API body and the webhook through the real router on an embedded store:
//! `cargo +nightly fuzz run api fuzz/corpus/api`. Byte 0 picks the route, byte 1 the caller.
#![no_main]

use std::sync::LazyLock;

use telegate_testkit::fuzzing::ApiTarget;

static TARGET: LazyLock<ApiTarget> = LazyLock::new(ApiTarget::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});
