use validator::ValidateEmail;

/// An email address, trimmed and lower-cased so one mailbox is one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// RFC 5321 limits a forward path to 254 characters.
const MAX_LEN: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() {
            return Err("email is required");
        }
        if normalised.len() > MAX_LEN
            || normalised.chars().any(char::is_control)
            || !normalised.validate_email()
        {
            return Err("not a valid email address");
        }
        // Mail reaches a named domain: `a@localhost` or `a@intranet` does not.
        let domain = normalised.rsplit_once('@').map_or("", |(_, d)| d);
        if !domain.contains('.') || domain.ends_with('.') || domain.starts_with('.') {
            return Err(
                "not a valid email address: the domain must be a full name, like example.com",
            );
        }
        Ok(Self(normalised))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn normalises_and_refuses() {
        assert_eq!(
            Email::parse("  John@Example.COM ").unwrap().as_ref(),
            "john@example.com"
        );
        for bad in [
            "",
            "john",
            "john@",
            "@example.com",
            "jo hn@example.com",
            "a@localhost",
            "a@example.",
            "a\0b@example.com",
            "a@exam\nple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
