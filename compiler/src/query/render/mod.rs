//! Output of the reachability queries.

pub mod html;
pub mod matrix_egress_out;
pub mod matrix_graph;
pub mod matrix_out;
pub mod matrix_rows;
pub mod text;
