//! Queue admission: whether one more message may wait, given how many wait already and
//! the limit. Pure, so the state machine (tenant `queue_limit`, decided on every member
//! alike) and the API (the node's `node_queue_limit`) apply the same rule.
//!
//! The rule: messages due now (`accepted`) and scheduled ones (`scheduled`, `send_at`
//! ahead or held by quiet hours) are counted apart, each against the same limit value,
//! so a campaign booked for next week never takes the room of today's traffic and the
//! memory a tenant can fill stays bounded (twice the limit at most). Within a count,
//! each category may fill only its share of the limit, so OTPs keep headroom that a
//! marketing backlog cannot take: marketing is admitted while fewer than 90 % of the
//! limit wait, transactional below 95 %, otp up to the whole limit. A share is rounded
//! up (`ceil(limit × percent / 100)`), so small limits keep every category usable.

use super::model::Category;

/// Which count a message is held against: the ones due now, or the scheduled ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// `accepted`: waiting for a channel now.
    DueNow,
    /// `scheduled`: waiting for its `send_at` (or the end of quiet hours).
    Scheduled,
}

impl Queue {
    /// The queue of a message about to be stored with this status: scheduled ones wait
    /// for their time, everything else is due now.
    pub fn of_status(status: super::model::Status) -> Queue {
        if status == super::model::Status::Scheduled {
            Queue::Scheduled
        } else {
            Queue::DueNow
        }
    }

    /// Seconds a refused client is told to wait (`Retry-After`). Room in the due-now
    /// count frees as channels send, within seconds; room in the scheduled count frees
    /// only when a scheduled message falls due or is canceled, possibly days away, so a
    /// quick retry would only be refused again: a minute, and the client may back off.
    pub fn retry_after_s(self) -> u64 {
        match self {
            Queue::DueNow => 5,
            Queue::Scheduled => 60,
        }
    }
}

/// The percentage of a limit that messages of `category` may fill: the rest is kept
/// for the categories that must not wait behind them.
pub fn share_percent(category: Category) -> u64 {
    match category {
        Category::Marketing => 90,
        Category::Transactional => 95,
        Category::Otp => 100,
    }
}

/// How many messages may wait before one of `category` is refused: its share of
/// `limit`, rounded up, and never more than `limit`.
pub fn ceiling(limit: u64, category: Category) -> u64 {
    let share = (limit as u128 * share_percent(category) as u128).div_ceil(100);
    u64::try_from(share).unwrap_or(u64::MAX).min(limit)
}

/// Whether a message of `category` may join a count that holds `waiting` messages
/// under `limit`.
pub fn admits(waiting: u64, limit: u64, category: Category) -> bool {
    waiting < ceiling(limit, category)
}

/// Which limit refused: for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The tenant's `queue_limit`.
    Tenant,
    /// The node's `node_queue_limit`.
    Node,
}

/// The `queue_full` message: which limit and which share was hit, and what still has
/// room, e.g. "the tenant's queue holds 270000 messages due now: marketing is refused
/// from 90 % of queue_limit 300000; otp and transactional still have room".
pub fn refusal_message(
    scope: Scope,
    queue: Queue,
    waiting: u64,
    limit: u64,
    category: Category,
) -> String {
    let (holder, name) = match scope {
        Scope::Tenant => ("the tenant's queue", "queue_limit"),
        Scope::Node => ("this node's queue", "node_queue_limit"),
    };
    let what = match queue {
        Queue::DueNow => "messages due now",
        Queue::Scheduled => "scheduled messages (counted apart from those due now)",
    };
    let room: Vec<&str> = [Category::Otp, Category::Transactional, Category::Marketing]
        .into_iter()
        .filter(|c| admits(waiting, limit, *c))
        .map(Category::as_str)
        .collect();
    let pct = share_percent(category);
    let refused = if pct < 100 {
        format!(
            "{} is refused from {pct} % of {name} {limit}",
            category.as_str()
        )
    } else {
        format!("{name} {limit} is reached")
    };
    let rest = match room.as_slice() {
        [] => String::new(),
        [one] => format!("; {one} still has room"),
        many => format!("; {} still have room", many.join(" and ")),
    };
    format!("{holder} holds {waiting} {what}: {refused}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_a_limit() {
        // (limit, category, most that may wait before one more is refused)
        let cases = [
            (300_000, Category::Marketing, 270_000),
            (300_000, Category::Transactional, 285_000),
            (300_000, Category::Otp, 300_000),
            (100, Category::Marketing, 90),
            (100, Category::Transactional, 95),
            (100, Category::Otp, 100),
            // Rounded up: small limits leave every category some room.
            (2, Category::Marketing, 2),
            (2, Category::Transactional, 2),
            (1, Category::Marketing, 1),
            (15, Category::Marketing, 14),
            (u64::MAX, Category::Otp, u64::MAX),
        ];
        for (limit, cat, max) in cases {
            assert_eq!(ceiling(limit, cat), max, "{limit} {cat:?}");
            assert!(admits(max - 1, limit, cat), "{limit} {cat:?} below");
            assert!(!admits(max, limit, cat), "{limit} {cat:?} at");
        }
    }

    #[test]
    fn otp_always_has_the_most_room() {
        for limit in [1, 2, 3, 10, 99, 100, 101, 1000, 300_000] {
            let m = ceiling(limit, Category::Marketing);
            let t = ceiling(limit, Category::Transactional);
            let o = ceiling(limit, Category::Otp);
            assert!(m <= t && t <= o && o == limit, "{limit}: {m} {t} {o}");
        }
    }

    #[test]
    fn the_message_names_limit_share_and_room() {
        let m = refusal_message(
            Scope::Tenant,
            Queue::DueNow,
            270_000,
            300_000,
            Category::Marketing,
        );
        assert_eq!(
            m,
            "the tenant's queue holds 270000 messages due now: marketing is refused from \
             90 % of queue_limit 300000; otp and transactional still have room"
        );
        let m = refusal_message(Scope::Node, Queue::DueNow, 500_000, 500_000, Category::Otp);
        assert_eq!(
            m,
            "this node's queue holds 500000 messages due now: node_queue_limit 500000 is reached"
        );
        let m = refusal_message(
            Scope::Tenant,
            Queue::Scheduled,
            96,
            100,
            Category::Transactional,
        );
        assert!(m.contains("scheduled messages"), "{m}");
        assert!(m.ends_with("; otp still has room"), "{m}");
    }
}
