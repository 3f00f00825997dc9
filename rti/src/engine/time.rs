//! Conservative time management for one federation: bounds, GALT and grants.
//!
//! Every regulating federate `i` has an *own* bound: `T_i + L_i` when granted, `t + L_i` while
//! advancing by TAR/TARA(t), and `L_i + min(t, Q_i)` while a constrained federate advances by
//! NER/NERA(t), `Q_i` being its earliest queued message. Its real bound also accounts for
//! messages that others may still send it:
//!
//! ```text
//! B_i = min(own_i, L_i + min_{k != i} B_k)      (the second term only for constrained NER)
//! ```
//!
//! a shortest-path fixed point with non-negative weights. Dijkstra run on this complete graph
//! settles `u = argmin own` first (`B_u = own_u`) and then every other node through `u`:
//! `B_i = min(own_i, own_u + L_i)`. Hence
//!
//! ```text
//! GALT_i = own_u                                         for i != u
//! GALT_u = min(second smallest own, own_u + min_{k != u, k NER} L_k)
//! ```
//!
//! so two ordered sets (own bounds; lookaheads of NER federates) give any GALT in O(log N), and
//! a third (grant candidates by requested time) finds the next grant by looking at most at two
//! entries. One federate's change costs O(log N) whatever the federation's size.
//!
//! A lowered lookahead never lets a bound move backwards: the bound already promised becomes a
//! floor, `own_i = max(base_i + L_i, F_i)`, which the federate outgrows as it advances. In the
//! NER term the lookahead is taken as `max(L_i, F_i - T_i)`, so that a bound computed through
//! the others never dips below the floor either.

use std::collections::BTreeSet;

use fedtwin_core::message::AdvanceKind;
use fedtwin_core::{RtiError, SimDuration, SimTime};

/// Index of a federate within its federation.
pub(crate) type FederateId = u32;

/// Whether a federate receives timestamped messages in timestamp order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Constrained {
    No,
    /// Enabled as soon as the federate's time is at most its GALT.
    Pending,
    Yes,
}

#[derive(Debug, Clone, Copy)]
struct Regulation {
    lookahead: SimDuration,
    /// A bound already promised (before a lookahead was lowered, or to cover constrained
    /// federates when regulation was enabled): no later bound goes below it.
    floor: SimTime,
}

#[derive(Debug)]
struct TimeState {
    time: SimTime,
    regulation: Option<Regulation>,
    constrained: Constrained,
    advance: Option<(AdvanceKind, SimTime)>,
    /// `time` was granted by a time advance or next event request (not an "available" one),
    /// which promised every message stamped up to it delivered.
    granted_strict: bool,
    earliest_queued: Option<SimTime>,
    // The keys under which this federate currently sits in the indexes.
    own_key: Option<SimTime>,
    ner_key: Option<SimDuration>,
    candidate_key: Option<(SimTime, u8)>,
    ready: bool,
}

/// Candidate key flag: an "available" request may be granted at its GALT, a plain one only
/// below it. With flags 0 and 1, `(g, flag) < (galt, 1)` tests both in one comparison.
const AVAILABLE: u8 = 0;
const STRICT: u8 = 1;

/// What holds a federate's GALT where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GaltSource {
    pub(crate) galt: SimTime,
    pub(crate) federate: FederateId,
}

/// Time state of every federate of a federation and the indexes over it.
#[derive(Debug, Default)]
pub(crate) struct TimeManager {
    states: Vec<Option<TimeState>>,
    own: BTreeSet<(SimTime, FederateId)>,
    ner: BTreeSet<(SimDuration, FederateId)>,
    candidates: BTreeSet<(SimTime, u8, FederateId)>,
    /// Advancing federates that are not constrained: granted without waiting.
    ready: BTreeSet<FederateId>,
    pending_constrained: BTreeSet<FederateId>,
}

impl TimeManager {
    pub(crate) fn add(&mut self, id: FederateId, time: SimTime) {
        let index = id as usize;
        if self.states.len() <= index {
            self.states.resize_with(index + 1, || None);
        }
        self.states[index] = Some(TimeState {
            time,
            regulation: None,
            constrained: Constrained::No,
            advance: None,
            granted_strict: false,
            earliest_queued: None,
            own_key: None,
            ner_key: None,
            candidate_key: None,
            ready: false,
        });
    }

    pub(crate) fn remove(&mut self, id: FederateId) {
        self.unindex(id);
        self.pending_constrained.remove(&id);
        if let Some(slot) = self.states.get_mut(id as usize) {
            *slot = None;
        }
    }

    pub(crate) fn time(&self, id: FederateId) -> SimTime {
        self.state(id).map_or(SimTime::ZERO, |s| s.time)
    }

    pub(crate) fn lookahead(&self, id: FederateId) -> Option<SimDuration> {
        self.state(id)
            .and_then(|s| s.regulation.map(|r| r.lookahead))
    }

    pub(crate) fn constrained(&self, id: FederateId) -> Constrained {
        self.state(id).map_or(Constrained::No, |s| s.constrained)
    }

    pub(crate) fn advance(&self, id: FederateId) -> Option<(AdvanceKind, SimTime)> {
        self.state(id).and_then(|s| s.advance)
    }

    /// Becomes regulating. The first bound is above every constrained federate's time, so no
    /// one can receive a message from the newcomer in its past, nor, after a grant by a time
    /// advance request, at the very time it was granted (which promised every message up to
    /// it delivered).
    pub(crate) fn enable_regulation(
        &mut self,
        id: FederateId,
        lookahead: SimDuration,
    ) -> Result<(SimTime, SimTime), RtiError> {
        let latest_constrained = self
            .states
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != id as usize)
            .filter_map(|(_, s)| s.as_ref())
            .filter(|s| s.constrained == Constrained::Yes)
            .map(|s| {
                let past = if s.granted_strict { 1 } else { 0 };
                s.time.saturating_add(SimDuration::from_ticks(past))
            })
            .max()
            .unwrap_or(SimTime::MIN);
        let state = self.state_mut(id)?;
        if state.regulation.is_some() {
            return Err(RtiError::AlreadyEnabled("regulation".into()));
        }
        if let Some((kind, _)) = state.advance {
            return Err(RtiError::AdvancePending(kind));
        }
        state.regulation = Some(Regulation {
            lookahead,
            floor: latest_constrained,
        });
        let time = state.time;
        self.refresh(id);
        let bound = self.bound(id).unwrap_or(SimTime::END);
        Ok((time, bound))
    }

    pub(crate) fn disable_regulation(&mut self, id: FederateId) -> Result<(), RtiError> {
        let state = self.state_mut(id)?;
        if state.regulation.take().is_none() {
            return Err(RtiError::NotEnabled("regulation".into()));
        }
        self.refresh(id);
        Ok(())
    }

    /// Changes the lookahead; a lower one takes effect only as the federate advances.
    pub(crate) fn modify_lookahead(
        &mut self,
        id: FederateId,
        lookahead: SimDuration,
    ) -> Result<(), RtiError> {
        let bound = self.bound(id);
        let state = self.state_mut(id)?;
        let Some(regulation) = state.regulation.as_mut() else {
            return Err(RtiError::NotEnabled("regulation".into()));
        };
        if lookahead < regulation.lookahead
            && let Some(bound) = bound
        {
            regulation.floor = regulation.floor.max(bound);
        }
        regulation.lookahead = lookahead;
        self.refresh(id);
        Ok(())
    }

    /// Asks to become constrained. Returns whether that took effect at once; otherwise the
    /// federate waits in `pending_constrained` until its time is at most its GALT.
    pub(crate) fn enable_constrained(&mut self, id: FederateId) -> Result<bool, RtiError> {
        let galt = self.galt(id);
        let state = self.state_mut(id)?;
        match state.constrained {
            Constrained::Yes => return Err(RtiError::AlreadyEnabled("constrained".into())),
            Constrained::Pending => return Err(RtiError::ConstrainedPending),
            Constrained::No => {}
        }
        if let Some((kind, _)) = state.advance {
            return Err(RtiError::AdvancePending(kind));
        }
        let now = galt.is_none_or(|g| state.time <= g);
        state.constrained = if now {
            Constrained::Yes
        } else {
            Constrained::Pending
        };
        if !now {
            self.pending_constrained.insert(id);
        }
        self.refresh(id);
        Ok(now)
    }

    pub(crate) fn disable_constrained(&mut self, id: FederateId) -> Result<(), RtiError> {
        let state = self.state_mut(id)?;
        if state.constrained == Constrained::No {
            return Err(RtiError::NotEnabled("constrained".into()));
        }
        state.constrained = Constrained::No;
        self.pending_constrained.remove(&id);
        self.refresh(id);
        Ok(())
    }

    /// Federates whose pending constrained request can now take effect, with their times.
    pub(crate) fn poll_constrained(&mut self) -> Vec<(FederateId, SimTime)> {
        let mut enabled = Vec::new();
        for id in self.pending_constrained.clone() {
            let galt = self.galt(id);
            let Some(state) = self.state_mut(id).ok() else {
                continue;
            };
            if galt.is_none_or(|g| state.time <= g) {
                state.constrained = Constrained::Yes;
                enabled.push((id, state.time));
            }
        }
        for (id, _) in &enabled {
            self.pending_constrained.remove(id);
            self.refresh(*id);
        }
        enabled
    }

    /// Records an advance request after checking it.
    pub(crate) fn request_advance(
        &mut self,
        id: FederateId,
        kind: AdvanceKind,
        time: SimTime,
    ) -> Result<(), RtiError> {
        self.check_advance(id, time)?;
        let state = self.state_mut(id)?;
        state.advance = Some((kind, time));
        self.refresh(id);
        Ok(())
    }

    /// The checks every advance request must pass.
    pub(crate) fn check_advance(&self, id: FederateId, time: SimTime) -> Result<(), RtiError> {
        let state = self.state(id).ok_or_else(not_joined)?;
        if let Some((kind, _)) = state.advance {
            return Err(RtiError::AdvancePending(kind));
        }
        if state.constrained == Constrained::Pending {
            return Err(RtiError::ConstrainedPending);
        }
        if time < state.time {
            return Err(RtiError::TimeInPast {
                requested: time,
                current: state.time,
            });
        }
        Ok(())
    }

    /// Tells the manager the earliest timestamp queued for `id` (it moves NER grants).
    pub(crate) fn set_earliest_queued(&mut self, id: FederateId, earliest: Option<SimTime>) {
        let Some(state) = self.states.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        if state.earliest_queued == earliest {
            return;
        }
        state.earliest_queued = earliest;
        let matters = state.constrained == Constrained::Yes
            && state.advance.is_some_and(|(kind, _)| kind.is_next_event());
        if matters {
            self.refresh(id);
        }
    }

    /// The next federate that may be granted, and at what time. Pure: call
    /// [`TimeManager::complete_grant`] after delivering its messages.
    pub(crate) fn next_grant(&self) -> Option<(FederateId, SimTime)> {
        if let Some(&id) = self.ready.first() {
            let (_, time) = self.advance(id)?;
            return Some((id, time));
        }
        let grantable =
            |key: (SimTime, u8), galt: Option<SimTime>| galt.is_none_or(|g| key < (g, STRICT));
        // The federate with the smallest own bound sees a different GALT from everyone else.
        let least = self.own.first().map(|&(_, id)| id);
        if let Some(u) = least
            && let Some(key) = self.state(u).and_then(|s| s.candidate_key)
            && grantable(key, self.galt(u))
        {
            return Some((u, key.0));
        }
        let &(time, flag, id) = self
            .candidates
            .iter()
            .find(|&&(_, _, id)| Some(id) != least)?;
        grantable((time, flag), self.galt(id)).then_some((id, time))
    }

    /// Moves `id` to `time` after its grant.
    pub(crate) fn complete_grant(&mut self, id: FederateId, time: SimTime) {
        let Ok(state) = self.state_mut(id) else {
            return;
        };
        state.time = time;
        state.granted_strict = state.advance.is_some_and(|(kind, _)| !kind.is_available());
        state.advance = None;
        self.refresh(id);
    }

    /// The greatest available logical time of `id`: no timestamped message below it can still
    /// reach `id`. `None` when no other federate is regulating.
    pub(crate) fn galt(&self, id: FederateId) -> Option<SimTime> {
        self.galt_source(id).map(|s| s.galt)
    }

    /// The GALT of `id` and the federate whose bound sets it.
    pub(crate) fn galt_source(&self, id: FederateId) -> Option<GaltSource> {
        let mut by_bound = self.own.iter();
        let &(least, u) = by_bound.next()?;
        if u != id {
            return Some(GaltSource {
                galt: least,
                federate: u,
            });
        }
        let second = by_bound.next().map(|&(b, k)| GaltSource {
            galt: b,
            federate: k,
        });
        let through_ner = self
            .ner
            .iter()
            .find(|&&(_, k)| k != id)
            .map(|&(l, k)| GaltSource {
                galt: least.saturating_add(l),
                federate: k,
            });
        match (second, through_ner) {
            (Some(a), Some(b)) => Some(if b.galt < a.galt { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The bound of a regulating federate: no timestamped send from it below this.
    pub(crate) fn bound(&self, id: FederateId) -> Option<SimTime> {
        let state = self.state(id)?;
        let own = state.own_key?;
        let Some(lookahead) = state.ner_key else {
            return Some(own);
        };
        match self.own.first() {
            Some(&(least, u)) if u != id => Some(own.min(least.saturating_add(lookahead))),
            _ => Some(own),
        }
    }

    fn state(&self, id: FederateId) -> Option<&TimeState> {
        self.states.get(id as usize).and_then(Option::as_ref)
    }

    fn state_mut(&mut self, id: FederateId) -> Result<&mut TimeState, RtiError> {
        self.states
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or_else(not_joined)
    }

    fn unindex(&mut self, id: FederateId) {
        let Some(state) = self.states.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some(key) = state.own_key.take() {
            self.own.remove(&(key, id));
        }
        if let Some(key) = state.ner_key.take() {
            self.ner.remove(&(key, id));
        }
        if let Some((time, flag)) = state.candidate_key.take() {
            self.candidates.remove(&(time, flag, id));
        }
        if std::mem::take(&mut state.ready) {
            self.ready.remove(&id);
        }
    }

    /// Re-derives the index keys of `id` from its state.
    fn refresh(&mut self, id: FederateId) {
        self.unindex(id);
        let Some(state) = self.states.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let constrained = state.constrained == Constrained::Yes;
        let next_event_time = |t: SimTime| state.earliest_queued.map_or(t, |q| q.min(t));

        if let Some(Regulation { lookahead, floor }) = state.regulation {
            let base = match state.advance {
                None => state.time,
                Some((kind, t)) if constrained && kind.is_next_event() => {
                    let covering = floor
                        .duration_since(state.time)
                        .unwrap_or(SimDuration::ZERO);
                    state.ner_key = Some(lookahead.max(covering));
                    next_event_time(t)
                }
                Some((_, t)) => t,
            };
            state.own_key = Some(base.saturating_add(lookahead).max(floor));
        }

        if let Some((kind, t)) = state.advance {
            if !constrained {
                state.ready = true;
            } else {
                let flag = if kind.is_available() {
                    AVAILABLE
                } else {
                    STRICT
                };
                let time = if kind.is_next_event() {
                    next_event_time(t)
                } else {
                    t
                };
                state.candidate_key = Some((time, flag));
            }
        }

        if let Some(key) = state.own_key {
            self.own.insert((key, id));
        }
        if let Some(key) = state.ner_key {
            self.ner.insert((key, id));
        }
        if let Some((time, flag)) = state.candidate_key {
            self.candidates.insert((time, flag, id));
        }
        if state.ready {
            self.ready.insert(id);
        }
    }
}

fn not_joined() -> RtiError {
    RtiError::NotJoined("time management".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use AdvanceKind::*;

    fn t(ticks: i64) -> SimTime {
        SimTime::from_ticks(ticks)
    }

    fn d(ticks: u64) -> SimDuration {
        SimDuration::from_ticks(ticks)
    }

    /// `n` federates, all regulating with `lookahead` and constrained, at time zero.
    fn federation(n: u32, lookahead: u64) -> TimeManager {
        let mut tm = TimeManager::default();
        for id in 0..n {
            tm.add(id, SimTime::ZERO);
            tm.enable_regulation(id, d(lookahead)).unwrap();
            assert!(tm.enable_constrained(id).unwrap());
        }
        tm
    }

    fn grant_all(tm: &mut TimeManager) -> Vec<(FederateId, SimTime)> {
        let mut grants = Vec::new();
        while let Some((id, time)) = tm.next_grant() {
            tm.complete_grant(id, time);
            grants.push((id, time));
        }
        grants
    }

    #[test]
    fn galt_is_the_least_other_bound() {
        let mut tm = federation(3, 10);
        tm.request_advance(0, TimeAdvance, t(5)).unwrap();
        // Bounds: 15, 10, 10. For 0 the least other bound is 10.
        assert_eq!(tm.galt(0), Some(t(10)));
        assert_eq!(tm.galt(1), Some(t(10)));
        assert_eq!(grant_all(&mut tm), vec![(0, t(5))]);
    }

    #[test]
    fn tar_waits_for_strictly_greater_galt_and_tara_accepts_equal() {
        let mut tm = federation(2, 0);
        tm.request_advance(0, TimeAdvance, t(0)).unwrap();
        // GALT_0 = B_1 = 0: TAR(0) needs 0 < 0.
        assert!(tm.next_grant().is_none());
        tm.request_advance(1, TimeAdvanceAvailable, t(0)).unwrap();
        assert_eq!(grant_all(&mut tm), vec![(1, t(0))]);
        assert!(tm.next_grant().is_none(), "0 still waits: 1 may send at 0");
    }

    #[test]
    fn zero_lookahead_ner_deadlocks_but_nera_completes() {
        let mut tm = federation(2, 0);
        tm.request_advance(0, NextEvent, t(10)).unwrap();
        tm.request_advance(1, NextEvent, t(10)).unwrap();
        // Fixed point: both bounds 10, each GALT 10, NER needs < 10.
        assert_eq!(tm.galt(0), Some(t(10)));
        assert!(tm.next_grant().is_none());

        let mut tm = federation(2, 0);
        tm.request_advance(0, NextEventAvailable, t(10)).unwrap();
        tm.request_advance(1, NextEventAvailable, t(10)).unwrap();
        assert_eq!(grant_all(&mut tm), vec![(0, t(10)), (1, t(10))]);
    }

    #[test]
    fn ner_grants_at_the_earliest_queued_message() {
        let mut tm = federation(2, 5);
        tm.set_earliest_queued(0, Some(t(7)));
        tm.request_advance(0, NextEvent, t(100)).unwrap();
        // 1 is granted at 0 with bound 5: 0 may be granted at 7 only once GALT > 7.
        assert!(tm.next_grant().is_none());
        tm.request_advance(1, TimeAdvance, t(3)).unwrap();
        // 1's bound is now 8 and 0's own is 12, so GALT_0 = 8 > 7.
        assert_eq!(grant_all(&mut tm), vec![(1, t(3)), (0, t(7))]);
    }

    #[test]
    fn ner_bound_is_a_fixed_point_through_the_others() {
        // Three NER federates with lookaheads 1, 2, 3, requests far ahead, and one TAR
        // federate at 10 with lookahead 1 (bound 11).
        let mut tm = TimeManager::default();
        for (id, l) in [(0, 1), (1, 2), (2, 3), (3, 1)] {
            tm.add(id, SimTime::ZERO);
            tm.enable_regulation(id, d(l)).unwrap();
            tm.enable_constrained(id).unwrap();
        }
        for id in 0..3 {
            tm.request_advance(id, NextEvent, t(1_000)).unwrap();
        }
        // Federate 3 at 0 with bound 1: 0, 1 and 2 can each be granted while their NER grant
        // stays below GALT. Nothing is queued, so they wait for 3's bound to move.
        assert!(tm.next_grant().is_none());
        tm.request_advance(3, TimeAdvance, t(10)).unwrap();
        // Bounds: B_3 = 11, B_0 = 12, B_1 = 13, B_2 = 14; GALT_3 = 12.
        assert_eq!(tm.bound(0), Some(t(12)));
        assert_eq!(tm.bound(1), Some(t(13)));
        assert_eq!(tm.bound(2), Some(t(14)));
        assert_eq!(tm.galt(3), Some(t(12)));
        assert_eq!(tm.galt(0), Some(t(11)));
        assert_eq!(grant_all(&mut tm), vec![(3, t(10))]);
    }

    #[test]
    fn lowered_lookahead_never_moves_the_bound_back() {
        let mut tm = federation(2, 10);
        tm.request_advance(0, TimeAdvance, t(20)).unwrap();
        assert_eq!(tm.bound(0), Some(t(30)));
        tm.modify_lookahead(0, d(2)).unwrap();
        assert_eq!(tm.bound(0), Some(t(30)));
        tm.request_advance(1, TimeAdvance, t(25)).unwrap();
        grant_all(&mut tm);
        assert_eq!(tm.time(0), t(20));
        // Granted at 20 with a promise of 30: the floor holds.
        assert_eq!(tm.bound(0), Some(t(30)));
        tm.request_advance(0, TimeAdvance, t(25)).unwrap();
        assert_eq!(tm.bound(0), Some(t(30)));
        grant_all(&mut tm);
        tm.request_advance(0, TimeAdvance, t(40)).unwrap();
        // From 25 the requested lookahead covers the old promise: 40 + 2.
        assert_eq!(tm.bound(0), Some(t(42)));
        assert_eq!(tm.lookahead(0), Some(d(2)));
    }

    #[test]
    fn new_regulator_bound_covers_constrained_times() {
        let mut tm = TimeManager::default();
        tm.add(0, SimTime::ZERO);
        tm.enable_constrained(0).unwrap();
        tm.request_advance(0, TimeAdvance, t(50)).unwrap();
        assert_eq!(grant_all(&mut tm), vec![(0, t(50))]);
        tm.add(1, SimTime::ZERO);
        let (time, bound) = tm.enable_regulation(1, d(1)).unwrap();
        // Federate 0 was granted 50 by a TAR: nothing stamped 50 may reach it any more.
        let above = t(50).saturating_add(SimDuration::from_ticks(1));
        assert_eq!((time, bound), (t(0), above));
        assert_eq!(tm.galt(0), Some(above));
    }

    #[test]
    fn new_regulator_may_send_at_a_time_granted_as_available() {
        let mut tm = TimeManager::default();
        tm.add(0, SimTime::ZERO);
        tm.enable_constrained(0).unwrap();
        tm.request_advance(0, TimeAdvanceAvailable, t(50)).unwrap();
        assert_eq!(grant_all(&mut tm), vec![(0, t(50))]);
        tm.add(1, SimTime::ZERO);
        // An available grant leaves messages stamped 50 possible.
        assert_eq!(tm.enable_regulation(1, d(1)).unwrap(), (t(0), t(50)));
    }

    #[test]
    fn constrained_waits_until_time_is_within_galt() {
        let mut tm = TimeManager::default();
        tm.add(0, SimTime::ZERO);
        tm.enable_regulation(0, d(1)).unwrap();
        tm.add(1, t(10));
        assert!(!tm.enable_constrained(1).unwrap());
        assert!(tm.poll_constrained().is_empty());
        assert_eq!(
            tm.request_advance(1, TimeAdvance, t(20)),
            Err(RtiError::ConstrainedPending)
        );
        tm.request_advance(0, TimeAdvance, t(9)).unwrap();
        assert_eq!(tm.poll_constrained(), vec![(1, t(10))]);
    }

    #[test]
    fn refusals() {
        let mut tm = federation(2, 1);
        tm.request_advance(0, TimeAdvance, t(5)).unwrap();
        assert_eq!(
            tm.request_advance(0, NextEvent, t(6)),
            Err(RtiError::AdvancePending(TimeAdvance))
        );
        assert_eq!(
            tm.request_advance(1, TimeAdvance, t(-1)),
            Err(RtiError::TimeInPast {
                requested: t(-1),
                current: t(0)
            })
        );
        assert!(matches!(
            tm.enable_regulation(1, d(1)),
            Err(RtiError::AlreadyEnabled(_))
        ));
        assert!(matches!(
            tm.enable_constrained(1),
            Err(RtiError::AlreadyEnabled(_))
        ));
        assert!(tm.request_advance(9, TimeAdvance, t(1)).is_err());
    }

    #[test]
    fn removal_releases_galt() {
        let mut tm = federation(2, 1);
        tm.request_advance(0, TimeAdvance, t(100)).unwrap();
        assert!(tm.next_grant().is_none());
        tm.remove(1);
        assert_eq!(tm.galt(0), None);
        assert_eq!(grant_all(&mut tm), vec![(0, t(100))]);
    }

    #[test]
    fn unconstrained_federates_are_granted_at_once() {
        let mut tm = TimeManager::default();
        tm.add(0, SimTime::ZERO);
        tm.enable_regulation(0, d(1)).unwrap();
        tm.add(1, SimTime::ZERO);
        tm.request_advance(1, NextEvent, t(1_000)).unwrap();
        assert_eq!(grant_all(&mut tm), vec![(1, t(1_000))]);
    }
}
