//! Text people type: a length once trimmed, and no control characters. NUL
//! cannot be stored by PostgreSQL, and CR/LF would become lines of their own
//! in the messages an item's name is sent in, so both backends refuse them.

use utoipa::openapi::KnownFormat;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaFormat, SchemaType, Type};
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

/// Any character but a control one (`char::is_control`: U+0000–U+001F,
/// U+007F–U+009F), as a JSON Schema (ECMA-262) character class.
const NOT_CONTROL: &str = r"[^\u0000-\u001f\u007f-\u009f]";
/// Neither a control character nor one `str::trim` removes (Unicode White_Space).
const NOT_CONTROL_OR_SPACE: &str =
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// What `line(field, _, min, max)` accepts, for the OpenAPI document: at most
/// `max` characters without a control character, and when `min` > 0 at
/// least one that is not a space (the length is counted once trimmed).
pub fn line_schema(min: usize, max: usize) -> ObjectBuilder {
    let pattern = if min == 0 {
        format!("^{NOT_CONTROL}*$")
    } else {
        format!("^{NOT_CONTROL}*{NOT_CONTROL_OR_SPACE}{NOT_CONTROL}*$")
    };
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
}

/// Optional text that `null` clears.
pub fn nullable(schema: ObjectBuilder) -> Object {
    schema
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .build()
}

/// An email address as `Email::parse` takes it.
pub fn email_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(254))
        .examples(["receiver@example.com"])
}

/// A phone number in international form. The document can say its shape
/// (E.164); whether the number exists in its country's plan is checked by
/// the server (`format: phone`).
pub fn phone_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("phone".into())))
        .pattern(Some(r"^\+[1-9][0-9]{6,14}$"))
        .examples(["+14155552671"])
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
