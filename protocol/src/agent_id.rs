/// An agent id names MQTT topics (`lockerx/agents/{agent_id}/...`), so it is
/// limited to characters that are safe in a topic level: 1 to 64 ASCII
/// letters, digits, `-`, `_` or `.`.
pub fn valid_agent_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_are_topic_safe() {
        assert!(valid_agent_id("site-01.mall_a"));
        for bad in ["", "a/b", "a+b", "a#", "a b", &"x".repeat(65)] {
            assert!(!valid_agent_id(bad), "{bad:?} accepted");
        }
    }
}
