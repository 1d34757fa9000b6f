use serde::Serialize;
use utoipa::ToSchema;

/// An item's life: reserved → stored → released → collected, with the side
/// exits cancelled (never dropped), expired (never collected) and cleared (by
/// an admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemStatus {
    AwaitingDrop,
    Stored,
    Releasing,
    Collected,
    Cancelled,
    Expired,
    Cleared,
}

impl ItemStatus {
    pub const ALL: [Self; 7] = [
        Self::AwaitingDrop,
        Self::Stored,
        Self::Releasing,
        Self::Collected,
        Self::Cancelled,
        Self::Expired,
        Self::Cleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingDrop => "AWAITING_DROP",
            Self::Stored => "STORED",
            Self::Releasing => "RELEASING",
            Self::Collected => "COLLECTED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
            Self::Cleared => "CLEARED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// An item as its sender and admins see it: never a code or its hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Item {
    pub id: i64,
    /// `null` once the locker has been deleted.
    pub locker_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    /// E.164
    pub receiver_phone: Option<String>,
    pub receiver_email: Option<String>,
    pub status: ItemStatus,
    /// RFC 3339
    pub created_at: String,
    pub updated_at: String,
    pub stored_at: Option<String>,
    pub collected_at: Option<String>,
    pub cleared_at: Option<String>,
    /// While `AWAITING_DROP`: the sender must open the door before this.
    pub drop_deadline: Option<String>,
    /// Once `STORED`: the receiver must collect before this.
    pub collect_by: Option<String>,
    /// The door could not be unlocked (agent unreachable or refusing); the
    /// item stays as it is for an admin to resolve.
    pub unlock_failed_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in ItemStatus::ALL {
            assert_eq!(ItemStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ItemStatus::parse("LOST"), None);
    }
}
