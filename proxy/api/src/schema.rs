//! The JSON Schema of [`ProxyConfig`], published under `schemas/` so that
//! consumers can validate configs without this crate.

use crate::config::ProxyConfig;

/// The JSON Schema of [`ProxyConfig`] as schemars derives it.
pub fn proxy_config_schema() -> schemars::Schema {
    schemars::schema_for!(ProxyConfig)
}
