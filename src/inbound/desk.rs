//! One channel's inbound desk: long MO messages put back together, with each part's
//! acknowledgement held until the whole message is stored.
//!
//! The operator redelivers an MO part it got no positive acknowledgement for. Answering
//! a part only once its whole message is committed means a crash (or a failed commit)
//! before then makes the SMSC send the unanswered parts again, and nothing is lost with
//! the reassembly buffer, which lives in memory. A part the operator sends twice while
//! its group waits is a duplicate the reassembler ignores; its second acknowledgement is
//! held beside the first.

use std::collections::HashMap;

use crate::encoding::inbound::Part;
use crate::encoding::reassembly::{Assembled, GroupKey, Reassembler};

/// Reassembly plus the held acknowledgements of one channel; `A` is the acknowledgement
/// (an SMPP `DeliverAck` in the gateway, anything in tests).
#[derive(Debug)]
pub struct InboundDesk<A> {
    reassembler: Reassembler,
    held: HashMap<GroupKey, Vec<A>>,
}

impl<A> Default for InboundDesk<A> {
    fn default() -> Self {
        InboundDesk {
            reassembler: Reassembler::default(),
            held: HashMap::new(),
        }
    }
}

/// A message ready to be stored, with every acknowledgement to answer once it is.
pub type Ready<A> = (Assembled, Vec<A>);

impl<A> InboundDesk<A> {
    /// Takes one part and its acknowledgement. Returns the messages ready to be stored
    /// now: this one when it is whole, and any group pushed out by the capacity.
    pub fn push(
        &mut self,
        source: &str,
        dest: &str,
        part: Part,
        ack: A,
        now_ms: i64,
    ) -> Vec<Ready<A>> {
        let mut ack = Some(ack);
        if let Some(group) = Reassembler::group_of(source, dest, &part)
            && let Some(a) = ack.take()
        {
            self.held.entry(group).or_default().push(a);
        }
        let done = self.reassembler.push(source, dest, part, now_ms);
        let mut out = Vec::with_capacity(done.len());
        for m in done {
            let acks = match &m.group {
                Some(g) => self.held.remove(g).unwrap_or_default(),
                None => ack.take().into_iter().collect(),
            };
            out.push((m, acks));
        }
        out
    }

    /// Groups whose missing parts did not come within the timeout, with what arrived.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Ready<A>> {
        self.reassembler
            .expire(now_ms)
            .into_iter()
            .map(|m| {
                let acks = m
                    .group
                    .as_ref()
                    .and_then(|g| self.held.remove(g))
                    .unwrap_or_default();
                (m, acks)
            })
            .collect()
    }

    /// Groups waiting for parts.
    pub fn pending(&self) -> usize {
        self.reassembler.pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::inbound::read;

    /// Part `seq` of 2 of a GSM message with an 8-bit reference UDH.
    fn part(seq: u8, text: &[u8]) -> Part {
        let mut data = vec![0x05, 0x00, 0x03, 0x42, 0x02, seq];
        data.extend_from_slice(text);
        read(0x40, 0x00, &data, None, false).unwrap_or_else(|e| panic!("part: {e}"))
    }

    #[test]
    fn a_long_message_is_ready_with_every_acknowledgement_once_whole() {
        let mut desk = InboundDesk::default();
        assert!(
            desk.push("+491", "5555", part(2, b"world"), "ack2", 1)
                .is_empty()
        );
        // The SMSC sent part 2 again meanwhile: a second ack, the same message.
        assert!(
            desk.push("+491", "5555", part(2, b"world"), "ack2b", 2)
                .is_empty()
        );
        let ready = desk.push("+491", "5555", part(1, b"hello "), "ack1", 3);
        assert_eq!(ready.len(), 1);
        let (m, acks) = &ready[0];
        assert_eq!(m.text, "hello world");
        assert_eq!(acks, &vec!["ack2", "ack2b", "ack1"]);
        assert_eq!(desk.pending(), 0);
    }

    #[test]
    fn a_single_message_is_ready_at_once_and_a_stalled_group_at_the_timeout() {
        let mut desk = InboundDesk::default();
        let single = read(0x00, 0x00, b"STOP", None, false).unwrap_or_else(|e| panic!("{e}"));
        let ready = desk.push("+491", "5555", single, "ack", 1);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].1, vec!["ack"]);
        assert!(
            desk.push("+491", "5555", part(1, b"half"), "ack1", 1)
                .is_empty()
        );
        let late = desk.expire(1 + crate::encoding::reassembly::DEFAULT_TIMEOUT_MS);
        assert_eq!(late.len(), 1);
        assert!(!late[0].0.complete);
        assert_eq!(late[0].1, vec!["ack1"]);
    }
}
