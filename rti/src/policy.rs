//! Least privilege: which identity may do what, in which federation.
//!
//! A policy is a list of rules, each granting permissions to identities (certificate names;
//! `*` matches any, and a trailing `*` matches a prefix such as `pv-*`) in federations (same
//! patterns). Anything not granted is denied. Names of attributes are full paths
//! (`Grid.Bus.voltage`), interactions their class (`Grid.Trip`); patterns apply to them the
//! same way (`Grid.Bus.*`).
//!
//! ```toml
//! [[policy.rules]]
//! identities = ["grid"]
//! federations = ["city"]
//! create = true
//! join = true
//! publish = ["Grid.Bus.*"]
//! subscribe = ["Home.Battery.soc"]
//! send = ["Grid.Price"]
//! sync_points = true
//! regulate = true
//!
//! [[policy.rules]]
//! identities = ["ops"]
//! administer = true
//! ```
//!
//! A certificate issued with the admin role may administer (destroy federations, read status)
//! without a rule.

use std::fmt;

use serde::Deserialize;

use crate::tls::{Identity, Role};

/// The rules of an RTI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Grants; anything not granted is denied.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Identity patterns the rule applies to.
    pub identities: Vec<String>,
    /// Federation patterns the rule applies to (default: all).
    #[serde(default = "everything")]
    pub federations: Vec<String>,
    /// May create federations.
    #[serde(default)]
    pub create: bool,
    /// May join.
    #[serde(default)]
    pub join: bool,
    /// Attribute patterns it may publish.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Attribute and interaction patterns it may subscribe to.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Interaction patterns it may publish and send.
    #[serde(default)]
    pub send: Vec<String>,
    /// May register synchronization points.
    #[serde(default)]
    pub sync_points: bool,
    /// May become time-regulating and declare its dynamics. Both bind the others: a
    /// regulating federate that does not advance holds every constrained federate back, and
    /// declared dynamics bound the steps of the federates coupled with it.
    #[serde(default)]
    pub regulate: bool,
    /// May destroy federations and read status.
    #[serde(default)]
    pub administer: bool,
}

fn everything() -> Vec<String> {
    vec!["*".to_owned()]
}

/// Something an identity asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission<'a> {
    /// Create this federation.
    Create,
    /// Join.
    Join,
    /// Publish this attribute path.
    Publish(&'a str),
    /// Subscribe to this attribute path or interaction class.
    Subscribe(&'a str),
    /// Publish or send this interaction class.
    Send(&'a str),
    /// Register synchronization points.
    SyncPoints,
    /// Become time-regulating; declare dynamics.
    Regulate,
    /// Destroy, read status.
    Administer,
}

impl fmt::Display for Permission<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create => f.write_str("create"),
            Self::Join => f.write_str("join"),
            Self::Publish(name) => write!(f, "publish `{name}`"),
            Self::Subscribe(name) => write!(f, "subscribe to `{name}`"),
            Self::Send(name) => write!(f, "send `{name}`"),
            Self::SyncPoints => f.write_str("register synchronization points"),
            Self::Regulate => f.write_str("regulate time (or declare dynamics)"),
            Self::Administer => f.write_str("administer"),
        }
    }
}

impl Policy {
    /// Parses the `[policy]` table of an `rti.toml`.
    ///
    /// # Errors
    ///
    /// The TOML error, with line and column.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Whether `identity` may do `permission` in `federation`.
    pub fn allows(
        &self,
        identity: &Identity,
        federation: &str,
        permission: Permission<'_>,
    ) -> bool {
        if permission == Permission::Administer && identity.role == Role::Admin {
            return true;
        }
        self.rules.iter().any(|rule| {
            matches_any(&rule.identities, &identity.name)
                && matches_any(&rule.federations, federation)
                && rule.grants(permission)
        })
    }
}

impl Rule {
    fn grants(&self, permission: Permission<'_>) -> bool {
        match permission {
            Permission::Create => self.create,
            Permission::Join => self.join,
            Permission::Publish(name) => matches_any(&self.publish, name),
            Permission::Subscribe(name) => matches_any(&self.subscribe, name),
            Permission::Send(name) => matches_any(&self.send, name),
            Permission::SyncPoints => self.sync_points,
            Permission::Regulate => self.regulate,
            Permission::Administer => self.administer,
        }
    }
}

fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| matches(pattern, name))
}

/// `*` matches anything; `prefix*` matches names starting with `prefix`; otherwise equality.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> Identity {
        Identity {
            name: name.to_owned(),
            role: Role::Federate,
        }
    }

    const POLICY: &str = r#"
        [[rules]]
        identities = ["grid"]
        federations = ["city"]
        join = true
        publish = ["Grid.Bus.*"]
        subscribe = ["Home.Battery.soc"]
        send = ["Grid.Price"]
        regulate = true

        [[rules]]
        identities = ["pv-*"]
        join = true
        subscribe = ["Grid.*"]
    "#;

    #[test]
    fn grants_only_what_rules_say() {
        let policy = Policy::from_toml(POLICY).unwrap();
        let grid = identity("grid");
        assert!(policy.allows(&grid, "city", Permission::Join));
        assert!(!policy.allows(&grid, "town", Permission::Join));
        assert!(policy.allows(&grid, "city", Permission::Publish("Grid.Bus.voltage")));
        assert!(!policy.allows(&grid, "city", Permission::Publish("Home.Battery.soc")));
        assert!(policy.allows(&grid, "city", Permission::Send("Grid.Price")));
        assert!(policy.allows(&grid, "city", Permission::Regulate));
        assert!(!policy.allows(&identity("pv-1"), "city", Permission::Regulate));
        assert!(!policy.allows(&grid, "city", Permission::Send("Grid.Trip")));
        assert!(!policy.allows(&grid, "city", Permission::Create));
        assert!(!policy.allows(&grid, "city", Permission::Administer));

        let pv = identity("pv-17");
        assert!(policy.allows(&pv, "anywhere", Permission::Join));
        assert!(policy.allows(&pv, "anywhere", Permission::Subscribe("Grid.Price")));
        assert!(!policy.allows(&identity("pv"), "anywhere", Permission::Join));
    }

    #[test]
    fn admin_role_administers_without_a_rule() {
        let policy = Policy::default();
        let ops = Identity {
            name: "ops".into(),
            role: Role::Admin,
        };
        assert!(policy.allows(&ops, "city", Permission::Administer));
        assert!(!policy.allows(&ops, "city", Permission::Join));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let error =
            Policy::from_toml("[[rules]]\nidentities = [\"a\"]\npublsh = [\"x\"]\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("publsh"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }
}
