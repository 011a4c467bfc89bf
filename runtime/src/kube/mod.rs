//! Kubernetes mode: the same store, hubs and API as file mode, fed by
//! watches on the API server instead of files.
//!
//! - ProxyConfig and MeshBundle objects go into the [`crate::store`];
//!   trusted keys come from a ConfigMap or Secret, the issuer from a
//!   Secret and the trust anchors from a ConfigMap, all watched.
//! - [`endpoints`]: Services, EndpointSlices and Pods become each Service
//!   port's endpoints, with the identity a meshed endpoint must present.
//! - [`token_review`]: certificate requests' tokens are checked with
//!   TokenReview.
//! - [`lease`]: one replica, elected through a Lease, writes the objects'
//!   status conditions; every replica serves.

pub mod endpoints;
pub mod lease;
pub mod token_review;
