/// Topic names under a configurable root (default `lockerx`).
#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
}

impl Topics {
    pub fn new(root: &str) -> Self {
        Self {
            root: root.trim_end_matches('/').to_owned(),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Server → agent: unlock commands (QoS 1).
    pub fn commands(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/commands", self.root)
    }

    /// Agent → server: answers to commands (QoS 1).
    pub fn acks(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/acks", self.root)
    }

    /// Agent → server: door sensor events (QoS 1).
    pub fn events(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/events", self.root)
    }

    /// Agent → server: retained online/offline status; the last will says offline.
    pub fn status(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/status", self.root)
    }

    /// Agent → server: codes entered at a locker, for the server to check (QoS 1).
    pub fn pickups(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/pickups", self.root)
    }

    /// Agent → server: pickups let through while offline (QoS 1).
    pub fn collections(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/collections", self.root)
    }

    /// Server → agent: the outcome of each entry and report (QoS 1).
    pub fn replies(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/replies", self.root)
    }

    /// Server → agent: the retained offline grant of one locker (QoS 1).
    pub fn grant(&self, agent_id: &str, locker_id: i64) -> String {
        format!("{}/agents/{agent_id}/grants/{locker_id}", self.root)
    }

    /// Every grant of one agent.
    pub fn grants(&self, agent_id: &str) -> String {
        format!("{}/agents/{agent_id}/grants/+", self.root)
    }

    /// `acks`, `events`, `status`, `pickups` or `collections` of every agent.
    pub fn all(&self, leaf: &str) -> String {
        format!("{}/agents/+/{leaf}", self.root)
    }

    /// The agent id and the leaf (`acks`, `events`, `status`) of a topic.
    pub fn parse<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix("/agents/")?;
        let (agent, leaf) = rest.split_once('/')?;
        Some((agent, leaf))
    }
}

#[cfg(test)]
mod tests {
    use super::Topics;

    #[test]
    fn topics_round_trip() {
        let t = Topics::new("lockerx/");
        assert_eq!(t.commands("mall-1"), "lockerx/agents/mall-1/commands");
        assert_eq!(
            t.parse("lockerx/agents/mall-1/events"),
            Some(("mall-1", "events"))
        );
        assert_eq!(t.parse("other/agents/mall-1/events"), None);
        assert_eq!(t.all("acks"), "lockerx/agents/+/acks");
        assert_eq!(t.grant("mall-1", 3), "lockerx/agents/mall-1/grants/3");
        assert_eq!(
            t.parse("lockerx/agents/mall-1/grants/3"),
            Some(("mall-1", "grants/3"))
        );
    }
}
