use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a locker is in its life. `OCCUPIED` runs from the sender's
/// reservation to the receiver's collection; only an admin sets or lifts
/// `OUT_OF_SERVICE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockerStatus {
    Available,
    Occupied,
    OutOfService,
}

impl LockerStatus {
    pub const ALL: [Self; 3] = [Self::Available, Self::Occupied, Self::OutOfService];

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
        LockerMove::BY_ADMIN.iter().any(|m| m.to() == self)
    }

    /// An admin may change the status of a locker in this one (to the same,
    /// or by one of [`LockerMove::BY_ADMIN`]); an `OCCUPIED` locker waits for
    /// its item to leave.
    pub fn left_by_admin(self) -> bool {
        LockerMove::BY_ADMIN.iter().any(|m| m.from() == self)
    }
}

/// The moves of a locker's life, each from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockerMove {
    /// A sender's drop takes it.
    Reserve,
    /// Its item left for good (collected, cancelled, cleared).
    Vacate,
    TakeOutOfService,
    ReturnToService,
}

impl LockerMove {
    pub const ALL: [Self; 4] = [
        Self::Reserve,
        Self::Vacate,
        Self::TakeOutOfService,
        Self::ReturnToService,
    ];
    /// The moves an admin makes by hand.
    pub const BY_ADMIN: [Self; 2] = [Self::TakeOutOfService, Self::ReturnToService];

    pub fn from(self) -> LockerStatus {
        match self {
            Self::Reserve | Self::TakeOutOfService => LockerStatus::Available,
            Self::Vacate => LockerStatus::Occupied,
            Self::ReturnToService => LockerStatus::OutOfService,
        }
    }

    pub fn to(self) -> LockerStatus {
        match self {
            Self::Reserve => LockerStatus::Occupied,
            Self::Vacate | Self::ReturnToService => LockerStatus::Available,
            Self::TakeOutOfService => LockerStatus::OutOfService,
        }
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
    /// Smallest first.
    pub const ALL: [Self; 3] = [Self::Small, Self::Medium, Self::Large];

    /// Whether an item that needs `needed` fits in a locker this size.
    pub fn fits(self, needed: Self) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Small => 0,
            Self::Medium => 1,
            Self::Large => 2,
        }
    }

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

    #[test]
    fn only_items_occupy_and_free_a_locker() {
        use LockerStatus::*;
        assert!(Available.settable_by_admin() && OutOfService.settable_by_admin());
        assert!(Available.left_by_admin() && OutOfService.left_by_admin());
        assert!(
            !Occupied.left_by_admin(),
            "an admin cannot free a locker by hand"
        );
        let into_occupied: Vec<_> = LockerMove::ALL
            .into_iter()
            .filter(|m| m.to() == Occupied)
            .collect();
        assert_eq!(into_occupied, [LockerMove::Reserve]);
        assert_eq!(
            LockerMove::Reserve.from(),
            Available,
            "out of service takes no drop"
        );
        for m in LockerMove::ALL {
            assert_ne!(m.from(), m.to(), "{m:?}");
        }
    }

    #[test]
    fn bigger_lockers_fit_smaller_items() {
        use LockerSize::*;
        let fitting = |needed| {
            LockerSize::ALL
                .into_iter()
                .filter(|s| s.fits(needed))
                .collect::<Vec<_>>()
        };
        assert_eq!(fitting(Small), [Small, Medium, Large]);
        assert_eq!(fitting(Medium), [Medium, Large]);
        assert_eq!(fitting(Large), [Large]);
    }
}
