//! The detection catalogue: every detection the stack alerts on, in one file
//! (`catalogue.json`): its id, a title a person understands, its severity, its MITRE ATT&CK
//! tactic, the EventBridge pattern it matches, why it matters and the noise to expect.
//!
//! The template's rules are made from the same file (`./dev.sh detections`), so what a rule
//! sends to a source is what the source recognises here: a source reads which detection an
//! event is, how severe, and why, and says so in its Message.

mod catalogue;
mod conditions;
pub mod exposure;
pub mod ingress;
pub mod own;
pub mod pattern;
pub mod policy;
pub mod ports;
pub mod principals;
mod refine;
pub mod routine;
mod settings;

pub use catalogue::{
    CATALOGUE_JSON, Catalogue, CatalogueError, Detection, Family, Found, event_of_record,
};
pub use pattern::{Pattern, PatternError};
pub use ports::{DEFAULT_PUBLIC_PORTS, PublicPorts};
pub use principals::{PrincipalEntryError, PrincipalList};
pub use settings::{ExpectedPrincipals, Settings, SettingsError};

pub use activity_aware_message::{Severity, SeverityError};
