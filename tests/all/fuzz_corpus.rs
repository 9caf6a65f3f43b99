//! The fuzz targets of `fuzz/` on the stable toolchain: every file of their corpus, then a bounded
//! run of deterministic mutations of it (bytes flipped, inserted, removed, spliced), through the
//! same checks `cargo fuzz` runs (`telegate_testkit::fuzzing`). A finding panics with the input.

use std::path::Path;

use telegate_testkit::fuzzing::{ApiTarget, update};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
const MUTATIONS: usize = 3_000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(Path::new(CORPUS).join(target))
        .unwrap_or_else(|e| panic!("the {target} corpus: {e}"))
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(inputs.len() >= 5, "the {target} corpus is there");
    inputs
}

/// xorshift: the same mutations on every run, so a finding reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

const INTERESTING: [&[u8]; 10] =
    [b"\"", b"{", b"}", b"[", b"null", b"-1", b"1e999", b"\\u0000", b"\"/start \"", b"9223372036854775808"];

fn mutate(rng: &mut Rng, inputs: &[Vec<u8>]) -> Vec<u8> {
    let mut data = inputs[rng.next() % inputs.len()].clone();
    for _ in 0..1 + rng.next() % 4 {
        let at = if data.is_empty() { 0 } else { rng.next() % data.len() };
        match rng.next() % 5 {
            0 if !data.is_empty() => data[at] ^= 1 << (rng.next() % 8),
            1 => data.insert(at, rng.next() as u8),
            2 if !data.is_empty() => drop(data.remove(at)),
            3 => {
                let token = INTERESTING[rng.next() % INTERESTING.len()];
                data.splice(at..at, token.iter().copied());
            }
            _ => {
                let other = &inputs[rng.next() % inputs.len()];
                let from = rng.next() % other.len().max(1);
                data.truncate(at);
                data.extend_from_slice(other.get(from..).unwrap_or_default());
            }
        }
    }
    data
}

#[test]
fn the_update_parser_survives_its_corpus_and_mutations_of_it() {
    let inputs = corpus("update");
    inputs.iter().for_each(|i| update(i));
    let mut rng = Rng(0x00F0_22ED);
    for _ in 0..MUTATIONS * 10 {
        update(&mutate(&mut rng, &inputs));
    }
}

#[test]
fn every_api_body_survives_its_corpus_and_mutations_of_it() {
    let target = ApiTarget::new();
    let inputs = corpus("api");
    let mut seen = std::collections::BTreeMap::new();
    for input in &inputs {
        *seen.entry(target.run(input)).or_insert(0) += 1;
    }
    let mut rng = Rng(0x0A91_B0D1);
    for _ in 0..MUTATIONS {
        *seen.entry(target.run(&mutate(&mut rng, &inputs))).or_insert(0) += 1;
    }
    // The run reached the use cases, not only the door: accepted, refused and rejected answers.
    for status in [200, 201, 400, 401, 403, 404] {
        assert!(seen.contains_key(&Some(status)), "no {status} among {seen:?}");
    }
}
