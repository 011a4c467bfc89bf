//! The config decode mesh-proxy and mesh-runtime share (`common/src/verify.rs`): any bytes as the file
//! or long-poll body a proxy reads, through parsing and verification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_common::verify::Verifier;

fuzz_target!(|data: &[u8]| {
    let verifier = Verifier { trusted: meshc_fuzz::trusted(), workload: meshc_fuzz::SEED_WORKLOAD.to_owned() };
    if let Ok(verified) = verifier.open(data) {
        let w = &verified.config.workload;
        assert_eq!(format!("{}/{}/{}", w.kind, w.namespace, w.name), meshc_fuzz::SEED_WORKLOAD);
    }
});
