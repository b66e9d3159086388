//! Fuzzes the snapshot decoder: `decode` must never panic, whatever the bytes, and whatever it
//! recovers must survive a round trip intact.
//!
//!     cargo install cargo-fuzz
//!     cargo +nightly fuzz run persist_decode -- -max_total_time=30
//!
//! A corpus to start from: `mkdir -p corpus/persist_decode && cp ../tests/fixtures/persist/*.bin
//! corpus/persist_decode/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midge::persist::format::{decode, encode, Decoded};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = decode(data) {
        // `damaged` if and only if something was reported.
        assert_eq!(d.damaged, !d.problems.is_empty());
        // What was recovered encodes and decodes back to itself, undamaged.
        let again = decode(&encode(&d.snapshot)).expect("re-encoded snapshot decodes");
        assert_eq!(
            again,
            Decoded {
                snapshot: d.snapshot,
                problems: Vec::new(),
                damaged: false,
            }
        );
    }
});
