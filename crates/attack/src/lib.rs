//! MITRE ATT&CK Enterprise catalog and the OpenSOC threat taxonomy, compiled into the binary.
mod catalog;
mod id;
pub use catalog::{Catalog, Tactic, Technique};
pub use id::{parse_technique_field, TechniqueId, TechniqueIdError};
