//! Topic aliases (MQTT 5 §3.3.2.3.4): the client's aliases for the topics it
//! publishes to, and ours for the topics we send it. Both tables belong to one
//! network connection and are never part of the session ([MQTT-3.3.2-7]).

use std::collections::HashMap;

use dwbroker_codecs::mqtt::{Publish, ReasonCode};

/// Aliases the client sets on its PUBLISHes, up to the Topic Alias Maximum we
/// announced.
#[derive(Debug)]
pub(crate) struct Inbound {
    max: u16,
    topics: HashMap<u16, String>,
}

impl Inbound {
    pub(crate) fn new(max: u16) -> Inbound {
        Inbound {
            max,
            topics: HashMap::new(),
        }
    }

    /// Fills in or records the topic of an incoming PUBLISH; refuses with the
    /// reason code to disconnect with.
    pub(crate) fn resolve(
        &mut self,
        publish: &mut Publish,
    ) -> Result<(), (ReasonCode, &'static str)> {
        let Some(alias) = publish.properties.topic_alias else {
            // [MQTT-3.3.2-1]; MQTT 5 §3.3.4: a zero-length Topic Name without a
            // Topic Alias is a Protocol Error.
            if publish.topic.is_empty() {
                return Err((
                    ReasonCode::PROTOCOL_ERROR,
                    "empty topic name without a topic alias",
                ));
            }
            return Ok(());
        };
        // [MQTT-3.3.2-8], [MQTT-3.3.2-9] A Topic Alias of 0, or above the Topic
        // Alias Maximum the server sent, is refused with 0x94.
        if alias == 0 || alias > self.max {
            return Err((
                ReasonCode::TOPIC_ALIAS_INVALID,
                "topic alias 0 or above the maximum",
            ));
        }
        if publish.topic.is_empty() {
            // MQTT 5 §3.3.2.3.4: an alias the receiver has no mapping for is a
            // Protocol Error.
            let Some(topic) = self.topics.get(&alias) else {
                return Err((
                    ReasonCode::PROTOCOL_ERROR,
                    "topic alias not set on this connection",
                ));
            };
            publish.topic.clone_from(topic);
        } else {
            self.topics.insert(alias, publish.topic.clone());
        }
        Ok(())
    }
}

/// Aliases we use towards the client, up to the Topic Alias Maximum it announced:
/// the first distinct topics sent get one, and later messages to them are sent
/// with the alias alone.
#[derive(Debug)]
pub(crate) struct Outbound {
    max: u16,
    aliases: HashMap<String, u16>,
}

impl Outbound {
    pub(crate) fn new(max: u16) -> Outbound {
        Outbound {
            max,
            aliases: HashMap::new(),
        }
    }

    /// Rewrites an outgoing PUBLISH to use an alias. Returns the topic if this
    /// created a new mapping, so that `forget` can undo it if the packet is not sent.
    pub(crate) fn apply(&mut self, publish: &mut Publish) -> Option<String> {
        if self.max == 0 {
            return None;
        }
        if let Some(&alias) = self.aliases.get(&publish.topic) {
            publish.properties.topic_alias = Some(alias);
            publish.topic.clear();
            return None;
        }
        let next = u16::try_from(self.aliases.len() + 1).ok()?;
        if next > self.max {
            return None;
        }
        self.aliases.insert(publish.topic.clone(), next);
        publish.properties.topic_alias = Some(next);
        Some(publish.topic.clone())
    }

    /// Drops a mapping created for a packet that was not sent after all.
    pub(crate) fn forget(&mut self, topic: &str) {
        self.aliases.remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dwbroker_codecs::mqtt::{Properties, QoS};

    fn publish(topic: &str, alias: Option<u16>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: 0,
            properties: Properties {
                topic_alias: alias,
                ..Properties::default()
            },
            payload: Bytes::new(),
        }
    }

    #[test]
    fn inbound_sets_then_uses_an_alias() {
        let mut t = Inbound::new(2);
        let mut p = publish("a/b", Some(1));
        t.resolve(&mut p).unwrap();
        let mut p = publish("", Some(1));
        t.resolve(&mut p).unwrap();
        assert_eq!(p.topic, "a/b");
        // Re-mapping an alias is allowed.
        t.resolve(&mut publish("c", Some(1))).unwrap();
        let mut p = publish("", Some(1));
        t.resolve(&mut p).unwrap();
        assert_eq!(p.topic, "c");
    }

    #[test]
    fn mqtt_3_3_2_8_and_9_alias_zero_or_above_maximum() {
        let mut t = Inbound::new(2);
        for alias in [0, 3] {
            let err = t.resolve(&mut publish("a", Some(alias))).unwrap_err();
            assert_eq!(err.0, ReasonCode::TOPIC_ALIAS_INVALID);
        }
        let err = t.resolve(&mut publish("", Some(2))).unwrap_err();
        assert_eq!(err.0, ReasonCode::PROTOCOL_ERROR, "unknown alias");
        let err = t.resolve(&mut publish("", None)).unwrap_err();
        assert_eq!(err.0, ReasonCode::PROTOCOL_ERROR, "empty topic, no alias");
        assert_eq!(
            Inbound::new(0)
                .resolve(&mut publish("a", Some(1)))
                .unwrap_err()
                .0,
            ReasonCode::TOPIC_ALIAS_INVALID
        );
    }

    #[test]
    fn outbound_assigns_up_to_the_maximum_and_reuses() {
        let mut t = Outbound::new(1);
        let mut first = publish("a", None);
        assert_eq!(t.apply(&mut first).as_deref(), Some("a"));
        assert_eq!(
            (first.topic.as_str(), first.properties.topic_alias),
            ("a", Some(1))
        );
        let mut again = publish("a", None);
        assert_eq!(t.apply(&mut again), None);
        assert_eq!(
            (again.topic.as_str(), again.properties.topic_alias),
            ("", Some(1))
        );
        let mut other = publish("b", None);
        assert_eq!(t.apply(&mut other), None);
        assert_eq!(
            (other.topic.as_str(), other.properties.topic_alias),
            ("b", None)
        );
        t.forget("a");
        let mut b = publish("b", None);
        assert_eq!(t.apply(&mut b).as_deref(), Some("b"));
        let mut none = publish("a", None);
        assert_eq!(Outbound::new(0).apply(&mut none), None);
        assert_eq!(none.properties.topic_alias, None);
    }
}
