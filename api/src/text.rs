//! Text people type: a length once trimmed, and no control characters. NUL
//! cannot be stored by PostgreSQL, and CR/LF would become lines of their own
//! in the messages an item's name is sent in, so both backends refuse them.

use validator::ValidationError;

/// `field`, `min` to `max` characters once trimmed, with no control character.
pub fn line(field: &str, text: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    if text.chars().any(char::is_control) {
        return Err(ValidationError::new("control_character")
            .with_message(format!("{field} must not contain control characters").into()));
    }
    if !(min..=max).contains(&text.trim().chars().count()) {
        let message = if min == 0 {
            format!("{field} must be at most {max} characters long")
        } else {
            format!("{field} must be {min} to {max} characters long")
        };
        return Err(ValidationError::new("length").with_message(message.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn lines_refuse_control_characters_and_keep_their_length() {
        assert!(line("name", " Blue umbrella ", 1, 100).is_ok());
        assert!(line("name", "Ünïcödé ☂", 1, 100).is_ok());
        for bad in [
            "a\0b",
            "two\nlines",
            "cr\r",
            "tab\t",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            let error = line("name", bad, 1, 100).unwrap_err();
            assert_eq!(error.code, "control_character", "{bad:?}");
        }
        assert_eq!(line("name", "   ", 1, 100).unwrap_err().code, "length");
        assert_eq!(
            line("name", &"x".repeat(101), 1, 100).unwrap_err().code,
            "length"
        );
        assert!(line("description", "", 0, 500).is_ok());
    }
}
