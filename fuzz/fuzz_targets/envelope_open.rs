//! `mesh_proxy_api::envelope`: any JSON as a DSSE envelope, verified
//! against the seeds' key, its payload decoded and checked canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proxy_api::envelope::{self, Envelope};

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(data) else { return };
    let trusted = meshc_fuzz::trusted();
    let _ = envelope::payload_digest(&envelope);
    if let Ok(config) = envelope::verify(&envelope, &trusted) {
        // What verifies must re-sign to the same payload: one config, one signed form.
        let again = envelope::sign(&config, &meshc_fuzz::seed_key());
        assert_eq!(again.payload, envelope.payload);
    }
});
