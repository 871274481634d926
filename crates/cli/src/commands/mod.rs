pub mod analyze;
pub mod attack;
pub mod models;
