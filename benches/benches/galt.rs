//! Cost of one time update in a federation of N federates, N from 10 to 10 000.
//!
//! Every federate is time-regulating with a lookahead of one tick and time-constrained, and the
//! federates advance in lockstep by time advance requests (TAR) of one tick, in round-robin
//! order: at the start of a round all of them are granted at some time `T`, and iteration `i`
//! of the round has federate `k = i mod N` ask for `T + 1`. The federate asking is always one
//! with the lowest logical time.
//!
//! # What one iteration measures
//!
//! One `Engine::handle` of that `Advance { kind: TimeAdvance, time: T + 1 }` and the draining
//! of `Engine::poll_transmit` until it is empty, with everything the engine does in between:
//!
//! * the request itself: the federate's own bound moves from `T + 1` to `T + 2` and it becomes
//!   a grant candidate at `T + 1` (a few `O(log N)` index updates); accepted quietly, as
//!   advance requests are answered only when refused;
//! * the search for grants that follows every request (`O(log N)`).
//!
//! For the first `N - 1` requests of a round that search finds nothing: a federate still
//! granted at `T` keeps its bound at `T + 1`, so every GALT is at most `T + 1` and a TAR to
//! `T + 1` needs GALT > `T + 1`. The round's last request lifts the least bound to `T + 2`,
//! and that one call grants all `N` federates at `T + 1`, each grant `O(log N)`. A round is
//! therefore `N` requests and `N` grants, and the time reported per iteration is
//! the cost of one time update **plus one grant**, amortized over the round.
//!
//! Individual iterations are bimodal (`N - 1` cheap ones, then one about `N` times dearer).
//! Criterion's smallest samples hold a few thousand iterations, fewer than a round of 10 000:
//! left to chance, such a sample would hold no round end or one, and the estimate would swing
//! by tens of percent. So each sample runs its iteration count rounded up to whole rounds,
//! starting at a round boundary, and its time is scaled back to the iteration count asked for:
//! every sample holds exactly its share of round ends. The rounding adds at most `N - 1`
//! iterations to a sample, negligible beside the millions criterion runs.
//!
//! Setup (outside the measurement) creates the federation, joins, enables regulation and
//! constraint, then runs one full round and checks that it produced exactly `N` grants, at the
//! expected time, and no refusal. After the measurement, the counts of grants and refusals seen
//! while measuring are checked again, so the benchmark cannot silently time refusals.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fedtwin_core::message::{
    AdvanceKind, Callback, ClientMessage, Request, Response, ServerMessage,
};
use fedtwin_core::{ObjectModel, SimDuration, SimTime};
use fedtwin_rti::{ConnectionId, Engine, Transmit};

/// Pattern shorthand for a response of any id.
macro_rules! response {
    ($result:pat) => {
        ServerMessage::Response {
            result: $result,
            ..
        }
    };
}

const FEDERATION: &str = "galt";
const SIZES: [u64; 4] = [10, 100, 1_000, 10_000];
const LOOKAHEAD: SimDuration = SimDuration::from_ticks(1);

/// N federates advancing in lockstep; see the module documentation.
#[derive(Debug)]
struct Lockstep {
    engine: Engine,
    federates: u64,
    /// Handed to the engine on every call: it only stamps grants with it.
    now: Instant,
    next_request: u64,
    /// Where every federate was granted at the start of the current round.
    round_time: SimTime,
    /// The federate that asks next; the round ends when it wraps to 0.
    next_federate: u64,
    /// Advance requests handled.
    advances: u64,
    /// Grants and refusals seen among the messages that advance requests produced.
    grants: u64,
    refusals: u64,
}

impl Lockstep {
    /// A federation of `federates` regulating and constrained federates, all granted at 0, after
    /// one checked round of advances (so they are at 1).
    fn new(federates: u64) -> Self {
        assert!(federates >= 2, "lockstep needs at least two federates");
        let mut this = Self {
            engine: Engine::new(),
            federates,
            now: Instant::now(),
            // Id 0 is the best-effort id, which is never answered.
            next_request: ClientMessage::BEST_EFFORT + 1,
            round_time: SimTime::ZERO,
            next_federate: 0,
            advances: 0,
            grants: 0,
            refusals: 0,
        };
        for k in 0..federates {
            this.engine
                .connect(ConnectionId(k))
                .expect("connection ids are fresh");
        }
        let created = this.call(
            0,
            Request::CreateFederation {
                federation: FEDERATION.into(),
                model: ObjectModel::new(),
                if_missing: false,
            },
        );
        assert!(
            matches!(created.as_slice(), [response!(Ok(Response::Done))]),
            "create federation: {created:?}"
        );
        for k in 0..federates {
            let joined = this.call(
                k,
                Request::Join {
                    federation: FEDERATION.into(),
                    federate: format!("f{k}"),
                },
            );
            assert!(
                matches!(joined.as_slice(), [response!(Ok(Response::Joined { .. }))]),
                "join f{k}: {joined:?}"
            );
        }
        for k in 0..federates {
            let regulating = this.call(
                k,
                Request::EnableTimeRegulation {
                    lookahead: LOOKAHEAD,
                },
            );
            assert!(
                matches!(
                    regulating.as_slice(),
                    [response!(Ok(Response::Regulation { .. }))]
                ),
                "enable regulation of f{k}: {regulating:?}"
            );
        }
        // The answer is `Pending`; the confirmation callback may come with it (every federate
        // is at 0, within its GALT). That the federates really are constrained is what
        // `check_round` proves: an unconstrained federate's TAR would be granted at once.
        let confirmation = ServerMessage::Callback(Callback::TimeConstrainedEnabled {
            time: SimTime::ZERO,
        });
        for k in 0..federates {
            let constrained = this.call(k, Request::EnableTimeConstrained);
            let answers = constrained
                .iter()
                .filter(|m| matches!(m, response!(_)))
                .collect::<Vec<_>>();
            assert!(
                matches!(answers.as_slice(), [response!(Ok(Response::Pending))])
                    && constrained.len() - answers.len() <= 1
                    && constrained
                        .iter()
                        .all(|m| matches!(m, response!(_)) || *m == confirmation),
                "enable constrained of f{k}: {constrained:?}"
            );
        }
        this.check_round();
        this
    }

    /// Handles one request of federate `k` outside the measurement and returns what came out.
    fn call(&mut self, k: u64, request: Request) -> Vec<ServerMessage> {
        let id = self.next_request;
        self.next_request += 1;
        self.engine
            .handle(self.now, ConnectionId(k), ClientMessage { id, request });
        std::iter::from_fn(|| self.engine.poll_transmit())
            .map(|t| t.message)
            .collect()
    }

    /// One measured iteration: the next federate asks for the round's time plus one tick.
    fn step(&mut self) {
        self.step_with(|transmit| {
            black_box(transmit);
        });
    }

    /// Times at least `iters` steps, rounded up to whole rounds, and scales the time back to
    /// `iters` steps: each sample then holds its exact share of round ends.
    fn time_whole_rounds(&mut self, iters: u64) -> Duration {
        assert_eq!(self.next_federate, 0, "samples start at a round boundary");
        let steps = iters.div_ceil(self.federates) * self.federates;
        let start = Instant::now();
        for _ in 0..steps {
            self.step();
        }
        let elapsed = start.elapsed();
        if steps == 0 {
            return elapsed;
        }
        elapsed.mul_f64(iters as f64 / steps as f64)
    }

    /// [`Lockstep::step`], handing each message that comes out to `sink`.
    #[inline(always)]
    fn step_with(&mut self, mut sink: impl FnMut(Transmit)) {
        let federate = self.next_federate;
        let id = self.next_request;
        self.next_request += 1;
        let request = Request::Advance {
            kind: AdvanceKind::TimeAdvance,
            time: self.round_time.saturating_add(LOOKAHEAD),
        };
        self.engine.handle(
            self.now,
            ConnectionId(federate),
            black_box(ClientMessage { id, request }),
        );
        while let Some(transmit) = self.engine.poll_transmit() {
            match &transmit.message {
                ServerMessage::Callback(Callback::TimeAdvanceGrant { .. }) => self.grants += 1,
                ServerMessage::Response { result: Err(_), .. } => self.refusals += 1,
                _ => {}
            }
            sink(transmit);
        }
        self.advances += 1;
        self.next_federate += 1;
        if self.next_federate == self.federates {
            self.next_federate = 0;
            self.round_time = self.round_time.saturating_add(LOOKAHEAD);
        }
    }

    /// Runs one full round, checking that only its last request grants, and grants everyone
    /// at the next tick with the bound one tick later.
    fn check_round(&mut self) {
        assert_eq!(self.next_federate, 0, "a round starts with federate 0");
        let target = self.round_time.saturating_add(LOOKAHEAD);
        let bound = target.saturating_add(LOOKAHEAD);
        let mut out = Vec::new();
        for k in 0..self.federates {
            out.clear();
            self.step_with(|t| out.push(t));
            // An accepted TAR is not answered: anything but grants is a defect.
            let mut granted: Vec<u64> = out
                .iter()
                .map(|t| {
                    assert_eq!(
                        t.message,
                        ServerMessage::Callback(Callback::TimeAdvanceGrant {
                            time: target,
                            bound: Some(bound),
                        }),
                        "unexpected message after the TAR of f{k}"
                    );
                    t.connection.0
                })
                .collect();
            if k + 1 < self.federates {
                assert!(
                    granted.is_empty(),
                    "f{k}'s TAR granted before the round ended"
                );
            } else {
                granted.sort_unstable();
                assert!(
                    granted.iter().copied().eq(0..self.federates),
                    "the round's last TAR must grant each of the {} federates once; it made {} \
                     grants",
                    self.federates,
                    granted.len()
                );
            }
        }
        self.verify();
    }

    /// Every request accepted, and one grant per request over the completed rounds.
    fn verify(&self) {
        assert_eq!(self.refusals, 0, "advance requests were refused");
        let completed_rounds = self.advances / self.federates;
        assert_eq!(
            self.grants,
            completed_rounds * self.federates,
            "{} advances in {completed_rounds} complete rounds of {} federates",
            self.advances,
            self.federates
        );
    }
}

fn galt(c: &mut Criterion) {
    let mut group = c.benchmark_group("galt");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let mut federation = Lockstep::new(n);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| federation.time_whole_rounds(iters));
        });
        federation.verify();
    }
    group.finish();
}

criterion_group!(benches, galt);
criterion_main!(benches);
