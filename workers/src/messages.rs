//! What people read: the text of each notification.

use locker_core::jobs::Message;

use crate::jobs::Pass;

/// A rendered notification: email uses both parts, SMS the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub subject: String,
    pub body: String,
}

/// The one-time code for a receiver at the locker.
pub fn code(code: &str, location: &str, locker: &str, valid_minutes: u64) -> Text {
    Text {
        subject: "Your Locker Exchange code".into(),
        body: format!(
            "Your Locker Exchange code is {code}. Type it at locker {locker} at {location}. \
             It expires in {valid_minutes} minutes. Never share it."
        ),
    }
}

pub fn render(message: &Message) -> Text {
    render_with(message, None)
}

/// As [`render`]; the deposit notice with the receiver's pickup pass.
pub fn render_with(message: &Message, pass: Option<&Pass>) -> Text {
    match message {
        Message::ItemStored {
            item,
            location,
            locker,
            until,
            ..
        } => Text {
            subject: format!("\"{item}\" is waiting for you at {location}"),
            body: format!(
                "\"{item}\" is waiting for you in locker {locker} at {location}{until}. \
                 {pickup}At the locker, you can also ask for a code with this phone number \
                 or email address.",
                until = until
                    .as_ref()
                    .map(|u| format!(" until {u}"))
                    .unwrap_or_default(),
                pickup = match pass {
                    Some(Pass {
                        pin,
                        link: Some(link),
                    }) => format!(
                        "Your pickup PIN is {pin}: type it on the locker's keypad, or show \
                         the QR code at {link} to its scanner. Never share them. "
                    ),
                    Some(Pass { pin, link: None }) => format!(
                        "Your pickup PIN is {pin}: type it on the locker's keypad. \
                         Never share it. "
                    ),
                    None => String::new(),
                },
            ),
        },
        Message::ItemCollected { item, location } => Text {
            subject: format!("\"{item}\" was collected"),
            body: format!(
                "\"{item}\" was collected from the locker at {location}. The exchange is complete."
            ),
        },
        Message::DropCancelled { item, location } => Text {
            subject: format!("The drop of \"{item}\" was cancelled"),
            body: format!(
                "The locker at {location} reserved for \"{item}\" was not opened in time, \
                 so the reservation was cancelled. Drop it again whenever you are ready."
            ),
        },
        Message::ItemExpired { item, location } => Text {
            subject: format!("\"{item}\" was not collected"),
            body: format!(
                "\"{item}\" was not collected from the locker at {location} in time. \
                 To take it back, ask for a code at the locker with this email address, \
                 then type it there."
            ),
        },
        Message::ItemReturned { item, location } => Text {
            subject: format!("\"{item}\" is back with you"),
            body: format!(
                "You took \"{item}\" back from the locker at {location}. The locker is free again."
            ),
        },
        Message::PickupReminder {
            item,
            location,
            locker,
            until,
        } => Text {
            subject: format!("Reminder: \"{item}\" is waiting for you at {location}"),
            body: format!(
                "\"{item}\" is still waiting for you in locker {locker} at {location}, \
                 until {until}. At the locker, ask for a code with this phone number or \
                 email address."
            ),
        },
        Message::PickupExtended {
            item,
            location,
            locker,
            until,
        } => Text {
            subject: format!("More time to collect \"{item}\""),
            body: format!(
                "The sender gave you more time: \"{item}\" waits in locker {locker} at \
                 {location} until {until}."
            ),
        },
        Message::PickupMissed { item, location } => Text {
            subject: format!("\"{item}\" can no longer be collected"),
            body: format!(
                "The time to collect \"{item}\" from the locker at {location} has passed. \
                 It goes back to its sender."
            ),
        },
        Message::ItemCleared { item, location } => Text {
            subject: format!("\"{item}\" was removed from its locker"),
            body: format!(
                "An administrator emptied the locker at {location} that held \"{item}\". \
                 Contact support to arrange its return."
            ),
        },
    }
}
