//! mesh-runtime's request parsing (`runtime/src/api.rs`): the first line
//! of the input is a request path, the rest its query string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_runtime::api::{MAX_WAIT, Query, service_key};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, query) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(key) = service_key(path) {
        assert!(!key.namespace.is_empty() && !key.name.is_empty());
    }
    if let Ok(q) = Query::parse(query) {
        let _ = q.get("workload");
        if let Ok(wait) = q.wait() {
            assert!(wait <= MAX_WAIT);
        }
    }
});
