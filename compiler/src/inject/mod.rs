//! Injection for `meshc inject` and `meshc check`: the pure function is the
//! `mesh-inject` crate (shared with mesh-runtime's webhook), re-exported
//! here; `documents` applies it to manifests, `yaml_out` writes them.

pub mod documents;
mod yaml_out;

pub use mesh_inject::*;
