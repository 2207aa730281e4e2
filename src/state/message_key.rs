//! A message id as the indexes that keep one entry per waiting or unreceipted message
//! hold it: the work timers (`WorkIndex`) and the dispatcher's queues. A backlog of a
//! million messages is a million entries in each; as `String`s every entry also owned a
//! heap copy of its 26-character id (docs/benchmarks.md, "What a waiting message costs").

use std::fmt;

/// A message id without a heap allocation when it is a canonical ULID (every id the API
/// gives out), else the id's text as given. Keys of ULIDs order as their text does.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKey {
    /// A ULID in upper-case Crockford base32, its 128 bits big-endian.
    Ulid([u8; 16]),
    /// Any other id (tests, ids from older versions): kept as given.
    Text(Box<str>),
}

impl MessageKey {
    /// The key of an id. Only an id that prints back exactly as given becomes `Ulid`,
    /// so `to_string` always returns the id it was made from.
    pub fn of(id: &str) -> MessageKey {
        if id.len() == ulid::ULID_LEN
            && let Ok(u) = ulid::Ulid::from_string(id)
        {
            let mut buf = [0u8; ulid::ULID_LEN];
            if u.array_to_str(&mut buf).as_bytes() == id.as_bytes() {
                return MessageKey::Ulid(u.to_bytes());
            }
        }
        MessageKey::Text(id.into())
    }
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageKey::Ulid(b) => {
                let mut buf = [0u8; ulid::ULID_LEN];
                f.write_str(ulid::Ulid::from_bytes(*b).array_to_str(&mut buf))
            }
            MessageKey::Text(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_prints_back_as_given() {
        let generated = ulid::Ulid::new().to_string();
        for id in [
            generated.as_str(),
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            // Lower case decodes but prints back upper case; I, L, O and U are not in
            // the alphabet.
            "01arz3ndektsv4rrffq69g5fav",
            "01ARZ3NDEKTSV4RRFFQ69G5FAI",
            "01ARZ3NDEKTSV4RRFFQ69G5FAO",
            // Too large for 128 bits, too short, too long, empty, not ASCII.
            "81ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
            "",
            "m1",
            "ÄÖÜ-0123456789-0123456789-",
        ] {
            assert_eq!(MessageKey::of(id).to_string(), id, "{id}");
        }
        assert!(matches!(MessageKey::of(&generated), MessageKey::Ulid(_)));
        assert!(matches!(
            MessageKey::of("01arz3ndektsv4rrffq69g5fav"),
            MessageKey::Text(_)
        ));
    }

    #[test]
    fn ulid_keys_order_as_their_text() {
        let mut ids: Vec<String> = (0..200u128)
            .map(|i| {
                ulid::Ulid::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
                    .to_string()
            })
            .collect();
        let mut keys: Vec<MessageKey> = ids.iter().map(|id| MessageKey::of(id)).collect();
        ids.sort();
        keys.sort();
        let back: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(back, ids);
    }

    #[test]
    fn a_key_is_no_larger_than_a_string() {
        assert_eq!(
            std::mem::size_of::<MessageKey>(),
            std::mem::size_of::<String>()
        );
    }
}
