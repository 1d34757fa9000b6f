use std::str::FromStr;

use phonenumber::Mode;
use phonenumber::country::Id as Country;

use super::Email;

/// A phone number in E.164 form (`+14155552671`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a number written in international form, or in national form
    /// when `default_region` (an ISO country code such as `US`) is given.
    pub fn parse(raw: &str, default_region: Option<&str>) -> Result<Self, &'static str> {
        let region = default_region.and_then(|r| Country::from_str(&r.to_ascii_uppercase()).ok());
        let number = phonenumber::parse(region, raw.trim()).map_err(
            |_| "not a valid phone number; use the international form, e.g. +14155552671",
        )?;
        if !phonenumber::is_valid(&number) {
            return Err("not a valid phone number; use the international form, e.g. +14155552671");
        }
        Ok(Self(number.format().mode(Mode::E164).to_string()))
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a receiver is reached: a normalised email or phone number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Contact {
    Email(Email),
    Phone(Phone),
}

impl Contact {
    /// An email when it has an `@`, otherwise a phone number.
    pub fn parse(raw: &str, default_region: Option<&str>) -> Result<Self, &'static str> {
        if raw.contains('@') {
            Email::parse(raw).map(Self::Email)
        } else {
            Phone::parse(raw, default_region).map(Self::Phone)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Email(e) => e.as_ref(),
            Self::Phone(p) => p.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            Phone::parse("+1 (415) 555-2671", None).unwrap().as_ref(),
            "+14155552671"
        );
        assert_eq!(
            Phone::parse("+44 20 7946 0958", None).unwrap().as_ref(),
            "+442079460958"
        );
        assert_eq!(
            Phone::parse("(415) 555-2671", Some("us")).unwrap().as_ref(),
            "+14155552671"
        );
        assert!(Phone::parse("(415) 555-2671", None).is_err());
        assert!(Phone::parse("+1 555", None).is_err());
        assert!(Phone::parse("hello", None).is_err());
    }

    #[test]
    fn contacts_are_email_or_phone() {
        assert_eq!(
            Contact::parse(" Bob@Example.com", None).unwrap(),
            Contact::Email(Email::parse("bob@example.com").unwrap())
        );
        assert_eq!(
            Contact::parse("+14155552671", None).unwrap().as_str(),
            "+14155552671"
        );
        assert!(Contact::parse("bob@", None).is_err());
    }
}
