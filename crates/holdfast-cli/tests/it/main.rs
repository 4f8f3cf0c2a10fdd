//! The real `holdfast` binary, driven as an operator would: stores in temporary
//! directories, bundles between them, a real relay for sync, JSON output parsed and
//! checked field by field, and failures checked for plain words and a non-zero exit.

mod bad_input;
mod bundles;
mod damage;
mod edit;
mod maintenance;
mod offline;
mod schema;
mod sync;
mod util;
