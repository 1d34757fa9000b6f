use serde::Serialize;
use utoipa::ToSchema;

/// An item's life: reserved → stored → released → collected, with the side
/// exits cancelled (never dropped), expired (never collected; then perhaps
/// returning → returned to its sender) and cleared (by an admin).
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
    /// Expired, and its door open for the sender to take it back.
    Returning,
    /// Taken back by its sender.
    Returned,
}

impl ItemStatus {
    pub const ALL: [Self; 9] = [
        Self::AwaitingDrop,
        Self::Stored,
        Self::Releasing,
        Self::Collected,
        Self::Cancelled,
        Self::Expired,
        Self::Cleared,
        Self::Returning,
        Self::Returned,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingDrop => "AWAITING_DROP",
            Self::Stored => "STORED",
            Self::Releasing => "RELEASING",
            Self::Collected => "COLLECTED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
            Self::Cleared => "CLEARED",
            Self::Returning => "RETURNING",
            Self::Returned => "RETURNED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// True when `self` may become `to` by some [`ItemMove`].
    pub fn can_become(self, to: Self) -> bool {
        ItemMove::ALL
            .iter()
            .any(|m| m.steps().contains(&(self, to)))
    }

    /// No move leaves it: the item's story is over.
    pub fn is_final(self) -> bool {
        Self::ALL.into_iter().all(|to| !self.can_become(to))
    }

    /// The item still has its locker to itself (the locker is `OCCUPIED`).
    pub fn holds_locker(self) -> bool {
        !self.is_final()
    }
}

/// The moves of an item's life, each with the statuses it leaves and the one
/// it reaches from each: the one table every transition reads its SQL from
/// (a conditional `UPDATE ... WHERE status IN (the statuses it leaves)`).
/// An item is created `AWAITING_DROP` (its door is ours to open) or `STORED`
/// (a locker without an agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemMove {
    /// The door, opened for the sender or the receiver, closed again.
    DoorClosed,
    /// A right code (the receiver's, or the sender's for an expired item),
    /// at a locker whose door we drive: it opens.
    CodeSpentAtDoor,
    /// A right code at a locker without an agent.
    CodeSpentWithoutDoor,
    /// The receiver's pickup PIN or QR code, checked by the server, at the
    /// locker: its door opens.
    PassAtDoor,
    /// The agent let the receiver's PIN or QR code through while the site
    /// was offline, and reports it once back: the item is gone, whatever the
    /// server had made of it meanwhile (a collect whose unlock could not
    /// reach the site, the deadline passing before the report arrived).
    CollectedOffline,
    /// The drop window ran out and the door never opened.
    CancelUnopened,
    /// Not collected by the deadline.
    Expire,
    /// An admin emptied the locker.
    Clear,
}

impl ItemMove {
    pub const ALL: [Self; 8] = [
        Self::DoorClosed,
        Self::CodeSpentAtDoor,
        Self::CodeSpentWithoutDoor,
        Self::PassAtDoor,
        Self::CollectedOffline,
        Self::CancelUnopened,
        Self::Expire,
        Self::Clear,
    ];

    /// `(from, to)` for every status this move leaves.
    pub fn steps(self) -> &'static [(ItemStatus, ItemStatus)] {
        use ItemStatus::*;
        match self {
            Self::DoorClosed => &[
                (AwaitingDrop, Stored),
                (Releasing, Collected),
                (Returning, Returned),
            ],
            Self::CodeSpentAtDoor => &[(Stored, Releasing), (Expired, Returning)],
            Self::CodeSpentWithoutDoor => &[(Stored, Collected), (Expired, Returned)],
            Self::PassAtDoor => &[(Stored, Releasing)],
            Self::CollectedOffline => &[
                (Stored, Collected),
                (Releasing, Collected),
                (Expired, Collected),
            ],
            Self::CancelUnopened => &[(AwaitingDrop, Cancelled)],
            Self::Expire => &[(Stored, Expired)],
            Self::Clear => &[
                (AwaitingDrop, Cleared),
                (Stored, Cleared),
                (Releasing, Cleared),
                (Expired, Cleared),
                (Returning, Cleared),
            ],
        }
    }

    /// Where this move takes an item in `from`, if it applies to it.
    pub fn from(self, from: ItemStatus) -> Option<ItemStatus> {
        self.steps()
            .iter()
            .find(|(f, _)| *f == from)
            .map(|&(_, to)| to)
    }

    /// SQL: `status IN ('A', 'B')`, the statuses this move leaves.
    pub fn sql_leaves(self) -> String {
        let list: Vec<String> = self
            .steps()
            .iter()
            .map(|(from, _)| format!("'{}'", from.as_str()))
            .collect();
        format!("status IN ({})", list.join(", "))
    }

    /// SQL: the new status, `CASE status WHEN 'A' THEN 'B' ... END`.
    pub fn sql_next(self) -> String {
        let arms: String = self
            .steps()
            .iter()
            .map(|(from, to)| format!(" WHEN '{}' THEN '{}'", from.as_str(), to.as_str()))
            .collect();
        format!("CASE status{arms} END")
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
    /// How many times the sender has extended `collect_by`.
    pub extensions: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    use ItemStatus::*;

    #[test]
    fn statuses_round_trip() {
        for status in ItemStatus::ALL {
            assert_eq!(ItemStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ItemStatus::parse("LOST"), None);
    }

    #[test]
    fn the_happy_path_is_legal_and_nothing_goes_backwards() {
        for (from, to) in [
            (AwaitingDrop, Stored),
            (Stored, Releasing),
            (Releasing, Collected),
            (Stored, Collected),
        ] {
            assert!(from.can_become(to), "{from:?} -> {to:?}");
        }
        for (from, to) in [
            (Stored, AwaitingDrop),
            (Releasing, Stored),
            (Collected, Stored),
            (AwaitingDrop, Collected),
            (AwaitingDrop, Releasing),
            (Cancelled, Stored),
        ] {
            assert!(!from.can_become(to), "{from:?} -> {to:?}");
        }
        // An expired item is collected only by a report of an offline
        // pickup made before its deadline.
        let to_collected: Vec<_> = ItemMove::ALL
            .into_iter()
            .filter(|m| m.from(Expired) == Some(Collected))
            .collect();
        assert_eq!(to_collected, [ItemMove::CollectedOffline]);
    }

    #[test]
    fn collected_cancelled_cleared_and_returned_are_final() {
        let finals: Vec<_> = ItemStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, [Collected, Cancelled, Cleared, Returned]);
        assert!(
            Expired.holds_locker(),
            "an expired item waits for its sender or an admin"
        );
    }

    #[test]
    fn only_an_expired_item_goes_back_to_its_sender() {
        assert_eq!(ItemMove::CodeSpentAtDoor.from(Expired), Some(Returning));
        assert_eq!(ItemMove::CodeSpentWithoutDoor.from(Expired), Some(Returned));
        assert_eq!(ItemMove::DoorClosed.from(Returning), Some(Returned));
        for from in [AwaitingDrop, Stored, Releasing] {
            assert!(!from.can_become(Returning) && !from.can_become(Returned));
        }
    }

    #[test]
    fn each_move_leaves_a_status_for_one_place_only() {
        for m in ItemMove::ALL {
            let steps = m.steps();
            assert!(!steps.is_empty());
            for (i, (from, to)) in steps.iter().enumerate() {
                assert!(!from.is_final(), "{m:?} leaves final {from:?}");
                assert_ne!(from, to, "{m:?} stays in {from:?}");
                assert!(
                    steps[i + 1..].iter().all(|(f, _)| f != from),
                    "{m:?} twice from {from:?}"
                );
            }
        }
    }

    #[test]
    fn only_a_door_closing_or_an_offline_pickup_completes_a_door_step() {
        assert_eq!(ItemMove::DoorClosed.from(AwaitingDrop), Some(Stored));
        assert_eq!(ItemMove::DoorClosed.from(Releasing), Some(Collected));
        assert_eq!(ItemMove::DoorClosed.from(Stored), None);
        let by_other_moves = ItemMove::ALL
            .into_iter()
            .filter(|&m| {
                !matches!(
                    m,
                    ItemMove::DoorClosed | ItemMove::Clear | ItemMove::CollectedOffline
                )
            })
            .flat_map(|m| m.steps().iter().map(|(from, _)| *from));
        assert!(
            by_other_moves
                .into_iter()
                .all(|from| from != Releasing && from != Returning)
        );
    }

    #[test]
    fn an_admin_can_clear_every_item_that_holds_a_locker() {
        for status in ItemStatus::ALL {
            assert_eq!(
                ItemMove::Clear.from(status).is_some(),
                status.holds_locker(),
                "{status:?}"
            );
        }
    }

    #[test]
    fn moves_read_as_sql() {
        assert_eq!(
            ItemMove::DoorClosed.sql_leaves(),
            "status IN ('AWAITING_DROP', 'RELEASING', 'RETURNING')"
        );
        assert_eq!(
            ItemMove::DoorClosed.sql_next(),
            "CASE status WHEN 'AWAITING_DROP' THEN 'STORED' WHEN 'RELEASING' THEN 'COLLECTED' \
             WHEN 'RETURNING' THEN 'RETURNED' END"
        );
    }
}
