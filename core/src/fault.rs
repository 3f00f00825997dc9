//! What the RTI does when a federate fails.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happens to a federation when one of its federates is lost: its connection closed or
/// went silent without resigning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossPolicy {
    /// The lost federate is resigned: its objects are deleted, the others are told and time
    /// goes on without it.
    #[default]
    Resign,
    /// The federation stops: every federate is told, and every later request other than
    /// resigning is refused until the federation is destroyed.
    Halt,
}

impl fmt::Display for LossPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Resign => "resign",
            Self::Halt => "halt",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resign_is_the_default_and_policies_survive_the_wire() {
        assert_eq!(LossPolicy::default().to_string(), "resign");
        let bytes = postcard::to_stdvec(&LossPolicy::Halt).unwrap();
        assert_eq!(
            postcard::from_bytes::<LossPolicy>(&bytes).unwrap(),
            LossPolicy::Halt
        );
    }
}
