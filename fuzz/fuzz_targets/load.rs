//! The loader: any bytes (as meshc reads a file: UTF-8 or refused) through
//! YAML parsing, document splitting, salvage and object collection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshc::load::{discover, objects};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = discover::text_from_bytes(data.to_vec()) else { return };
    let (found, findings) = objects::objects_of(0, "fuzz.yaml", &text);
    for o in &found {
        let _ = o.node.to_json();
    }
    assert!(findings.iter().all(|f| !f.message.is_empty()));
});
