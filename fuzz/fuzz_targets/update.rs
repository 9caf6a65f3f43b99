//! The Telegram update parser: `cargo +nightly fuzz run update fuzz/corpus/update`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| telegate_testkit::fuzzing::update(data));
