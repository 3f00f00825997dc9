//! A deterministic driver for the engine: connections are plain ids, `now` is fixed, and every
//! transmit is sorted into a per-connection inbox.

use std::collections::HashMap;
use std::time::Instant;

use fedtwin_core::message::{Callback, ClientMessage, Request, Response, ServerMessage};
use fedtwin_core::{ObjectModel, RtiError, SimDuration};
use fedtwin_rti::{ConnectionId, Engine};

pub(crate) struct Harness {
    pub(crate) engine: Engine,
    pub(crate) now: Instant,
    next_connection: u64,
    next_request: u64,
    inboxes: HashMap<ConnectionId, Vec<ServerMessage>>,
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self {
            engine: Engine::new(),
            now: Instant::now(),
            next_connection: 1,
            next_request: 1,
            inboxes: HashMap::new(),
        }
    }

    pub(crate) fn connect(&mut self) -> ConnectionId {
        let connection = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.engine.connect(connection).unwrap();
        connection
    }

    /// Sends a request and returns its response; callbacks stay in the inbox.
    pub(crate) fn request(
        &mut self,
        connection: ConnectionId,
        request: Request,
    ) -> Result<Response, RtiError> {
        let id = self.next_request;
        self.next_request += 1;
        let answered = request.answered_on_success();
        // What a quiet success would have answered.
        let quiet = if matches!(request, Request::Advance { .. }) {
            Response::Pending
        } else {
            Response::Done
        };
        self.engine
            .handle(self.now, connection, ClientMessage { id, request });
        self.drain();
        let inbox = self.inboxes.entry(connection).or_default();
        let Some(position) = inbox
            .iter()
            .position(|m| matches!(m, ServerMessage::Response { id: r, .. } if *r == id))
        else {
            assert!(!answered, "request {id} was not answered at once");
            return Ok(quiet);
        };
        match inbox.remove(position) {
            ServerMessage::Response { result, .. } => result,
            other => unreachable!("not a response: {other:?}"),
        }
    }

    pub(crate) fn drain(&mut self) {
        while let Some(transmit) = self.engine.poll_transmit() {
            self.inboxes
                .entry(transmit.connection)
                .or_default()
                .push(transmit.message);
        }
        while self.engine.poll_audit().is_some() {}
    }

    /// Takes the callbacks that arrived for `connection`, in order.
    pub(crate) fn callbacks(&mut self, connection: ConnectionId) -> Vec<Callback> {
        let inbox = self.inboxes.entry(connection).or_default();
        let (callbacks, rest): (Vec<_>, Vec<_>) = inbox
            .drain(..)
            .partition(|m| matches!(m, ServerMessage::Callback(_)));
        *inbox = rest;
        callbacks
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::Callback(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn create(&mut self, federation: &str, model: ObjectModel) {
        let c = self.connect();
        let created = self.request(
            c,
            Request::CreateFederation {
                federation: federation.into(),
                model,
                if_missing: false,
            },
        );
        assert_eq!(created, Ok(Response::Done));
    }

    /// Joins a federate and sets up its time management; returns its connection.
    pub(crate) fn join(
        &mut self,
        federation: &str,
        name: &str,
        lookahead: Option<SimDuration>,
        constrained: bool,
    ) -> ConnectionId {
        let c = self.connect();
        let joined = self.request(
            c,
            Request::Join {
                federation: federation.into(),
                federate: name.into(),
            },
        );
        assert!(matches!(joined, Ok(Response::Joined { .. })), "{joined:?}");
        if let Some(lookahead) = lookahead {
            let enabled = self.request(c, Request::EnableTimeRegulation { lookahead });
            assert!(
                matches!(enabled, Ok(Response::Regulation { .. })),
                "{enabled:?}"
            );
        }
        if constrained {
            assert_eq!(
                self.request(c, Request::EnableTimeConstrained),
                Ok(Response::Pending)
            );
            let confirmed = self.callbacks(c);
            assert!(
                confirmed
                    .iter()
                    .any(|cb| matches!(cb, Callback::TimeConstrainedEnabled { .. })),
                "constrained at time zero takes effect at once: {confirmed:?}"
            );
        }
        c
    }
}
