use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a locker is in its life. `OCCUPIED` runs from the sender's
/// reservation to the receiver's collection; only an admin sets or lifts
/// `OUT_OF_SERVICE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockerStatus {
    Available,
    Occupied,
    OutOfService,
}

impl LockerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Occupied => "OCCUPIED",
            Self::OutOfService => "OUT_OF_SERVICE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AVAILABLE" => Some(Self::Available),
            "OCCUPIED" => Some(Self::Occupied),
            "OUT_OF_SERVICE" => Some(Self::OutOfService),
            _ => None,
        }
    }

    /// The statuses an admin may put a locker in by hand; `OCCUPIED` comes
    /// only from an item.
    pub fn settable_by_admin(self) -> bool {
        matches!(self, Self::Available | Self::OutOfService)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockerSize {
    Small,
    #[default]
    Medium,
    Large,
}

impl LockerSize {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "SMALL",
            Self::Medium => "MEDIUM",
            Self::Large => "LARGE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SMALL" => Some(Self::Small),
            "MEDIUM" => Some(Self::Medium),
            "LARGE" => Some(Self::Large),
            _ => None,
        }
    }
}

/// What the door sensor last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DoorState {
    Open,
    Closed,
    Unknown,
}

impl DoorState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "unknown" => Some(Self::Unknown),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Locker {
    pub id: i64,
    /// The human-readable place, e.g. "Mall Entrance".
    pub location: String,
    pub name: Option<String>,
    pub size: LockerSize,
    /// The site agent that drives this locker's door.
    pub agent_id: Option<String>,
    pub status: LockerStatus,
    pub door: DoorState,
    /// Whether its agent is connected; `null` without an agent or before it
    /// was first heard from.
    pub agent_online: Option<bool>,
    /// RFC 3339
    pub created_at: String,
    /// RFC 3339
    pub updated_at: String,
}

/// The key places are matched on: trimmed, inner whitespace collapsed,
/// lower-cased, so "  Mall   Entrance" finds "mall entrance".
pub fn place_key(location: &str) -> String {
    location
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_keys_ignore_case_and_spacing() {
        assert_eq!(place_key("  Mall   ENTRANCE "), "mall entrance");
        assert_eq!(place_key("Métro Station A"), place_key("MÉTRO station a"));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            LockerStatus::Available,
            LockerStatus::Occupied,
            LockerStatus::OutOfService,
        ] {
            assert_eq!(LockerStatus::parse(s.as_str()), Some(s));
        }
        assert!(!LockerStatus::Occupied.settable_by_admin());
    }
}
