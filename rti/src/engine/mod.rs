//! The federation engine: a sans-IO state machine.
//!
//! The engine owns no socket, thread or clock. A driver tells it that a connection opened
//! ([`Engine::connect`]), hands it each decoded message with the current instant
//! ([`Engine::handle`]) and reports closed connections ([`Engine::disconnect`]); after each
//! call it drains [`Engine::poll_transmit`] and sends what comes out. The same engine therefore
//! runs behind in-process channels, behind QUIC and inside deterministic tests.
//!
//! Every request is answered exactly once, in the order received; callbacks caused by a request
//! are queued in a deterministic order that depends only on the inputs.

mod federation;
mod time;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use fedtwin_core::message::{Callback, ClientMessage, Request, Response, ServerMessage};
use fedtwin_core::{ObjectModel, RtiError};
use tracing::{debug, info, warn};

use crate::status::{FederationStatus, StallReport};
use federation::{Federation, valid_name};
use time::FederateId;

/// A driver's name for one federate connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// A message for the driver to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    /// To whom.
    pub connection: ConnectionId,
    /// What.
    pub message: ServerMessage,
}

/// Messages waiting for the driver.
#[derive(Debug, Default)]
pub(crate) struct Outbox(VecDeque<Transmit>);

impl Outbox {
    pub(crate) fn push(&mut self, connection: ConnectionId, callback: Callback) {
        self.0.push_back(Transmit {
            connection,
            message: ServerMessage::Callback(callback),
        });
    }

    fn respond(&mut self, connection: ConnectionId, id: u64, result: Result<Response, RtiError>) {
        self.0.push_back(Transmit {
            connection,
            message: ServerMessage::Response { id, result },
        });
    }
}

#[derive(Debug, Default)]
struct Session {
    joined: Option<(u64, FederateId)>,
}

/// Refusal of a driver call (not of a federate's request: those are answered on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The driver used a connection id twice.
    #[error("connection {0:?} is already open")]
    ConnectionExists(ConnectionId),
}

/// The federation engine. See the module documentation.
#[derive(Debug, Default)]
pub struct Engine {
    federations: HashMap<u64, Federation>,
    /// Names to keys, ordered so that listings are deterministic.
    names: BTreeMap<String, u64>,
    next_federation: u64,
    sessions: HashMap<ConnectionId, Session>,
    outbox: Outbox,
    /// Callbacks produced while handling a request, queued after its response.
    scratch: Outbox,
}

impl Engine {
    /// An engine with no federations.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection opened. The driver chooses unique ids.
    ///
    /// # Errors
    ///
    /// [`EngineError::ConnectionExists`] if `connection` is already open.
    pub fn connect(&mut self, connection: ConnectionId) -> Result<(), EngineError> {
        if self.sessions.contains_key(&connection) {
            return Err(EngineError::ConnectionExists(connection));
        }
        self.sessions.insert(connection, Session::default());
        Ok(())
    }

    /// A connection closed or was lost: its federate, if any, resigns and its objects are
    /// deleted. Time goes on without it.
    pub fn disconnect(&mut self, now: Instant, connection: ConnectionId) {
        let Some(session) = self.sessions.remove(&connection) else {
            return;
        };
        if let Some((key, id)) = session.joined
            && let Some(federation) = self.federations.get_mut(&key)
        {
            warn!(
                ?connection,
                "connection closed without resigning; resigning its federate"
            );
            federation.resign(id, now, &mut self.outbox);
        }
    }

    /// Handles one request from `connection`. The response and any callbacks are queued for
    /// [`Engine::poll_transmit`].
    pub fn handle(&mut self, now: Instant, connection: ConnectionId, message: ClientMessage) {
        let Some(session) = self.sessions.get_mut(&connection) else {
            debug!(
                ?connection,
                "message from a connection that is not open; dropped"
            );
            return;
        };
        let ClientMessage { id, request } = message;
        let name = request.name();
        let result = match (request, session.joined) {
            (
                Request::CreateFederation {
                    federation,
                    model,
                    if_missing,
                },
                _,
            ) => self.create_federation(federation, model, if_missing, now),
            (Request::DestroyFederation { federation }, _) => self.destroy_federation(&federation),
            (
                Request::Join {
                    federation,
                    federate,
                },
                None,
            ) => self.join(connection, &federation, &federate),
            (Request::Resign, Some((key, federate))) => {
                if let Some(s) = self.sessions.get_mut(&connection) {
                    s.joined = None;
                }
                if let Some(federation) = self.federations.get_mut(&key) {
                    federation.resign(federate, now, &mut self.outbox);
                }
                Ok(Response::Done)
            }
            (_, None) => Err(RtiError::NotJoined(name.to_owned())),
            (request, Some((key, federate))) => match self.federations.get_mut(&key) {
                Some(federation) => {
                    let result = federation.handle(federate, request, &mut self.scratch);
                    if let Err(error) = &result {
                        debug!(%error, request = name, "request refused");
                    }
                    // The answer first, then what the request caused, then the grants that it
                    // made possible.
                    self.outbox.respond(connection, id, result);
                    self.outbox.0.append(&mut self.scratch.0);
                    federation.settle(now, &mut self.outbox);
                    return;
                }
                None => Err(RtiError::NotJoined(name.to_owned())),
            },
        };
        if let Err(error) = &result {
            debug!(%error, request = name, "request refused");
        }
        self.outbox.respond(connection, id, result);
        self.outbox.0.append(&mut self.scratch.0);
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.0.pop_front()
    }

    /// Names of the federations, in order.
    pub fn federations(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// A federation's status.
    pub fn status(&self, federation: &str, now: Instant) -> Option<FederationStatus> {
        self.federation(federation).map(|f| f.status(now))
    }

    /// Who waits for whom in a federation.
    pub fn stall_report(&self, federation: &str) -> Option<StallReport> {
        self.federation(federation).map(Federation::stall_report)
    }

    fn federation(&self, name: &str) -> Option<&Federation> {
        self.names
            .get(name)
            .and_then(|key| self.federations.get(key))
    }

    fn create_federation(
        &mut self,
        name: String,
        model: ObjectModel,
        if_missing: bool,
        now: Instant,
    ) -> Result<Response, RtiError> {
        if !valid_name(&name) {
            return Err(RtiError::InvalidName(name));
        }
        model
            .validate()
            .map_err(|e| RtiError::InvalidObjectModel(e.to_string()))?;
        if let Some(existing) = self.federation(&name) {
            return match (if_missing, existing.model() == &model) {
                (true, true) => Ok(Response::Done),
                (true, false) => Err(RtiError::ObjectModelMismatch(name)),
                (false, _) => Err(RtiError::FederationExists(name)),
            };
        }
        let key = self.next_federation;
        self.next_federation += 1;
        info!(federation = %name, "federation created");
        self.federations
            .insert(key, Federation::new(name.clone(), model, now));
        self.names.insert(name, key);
        Ok(Response::Done)
    }

    fn destroy_federation(&mut self, name: &str) -> Result<Response, RtiError> {
        let Some(&key) = self.names.get(name) else {
            return Err(RtiError::FederationNotFound(name.to_owned()));
        };
        let Some(federation) = self.federations.get(&key) else {
            return Err(RtiError::FederationNotFound(name.to_owned()));
        };
        if !federation.is_empty() {
            return Err(RtiError::FederatesStillJoined {
                federation: name.to_owned(),
                federates: federation.federate_names(),
            });
        }
        self.federations.remove(&key);
        self.names.remove(name);
        info!(federation = %name, "federation destroyed");
        Ok(Response::Done)
    }

    fn join(
        &mut self,
        connection: ConnectionId,
        federation: &str,
        federate: &str,
    ) -> Result<Response, RtiError> {
        let Some(&key) = self.names.get(federation) else {
            return Err(RtiError::FederationNotFound(federation.to_owned()));
        };
        let Some(target) = self.federations.get_mut(&key) else {
            return Err(RtiError::FederationNotFound(federation.to_owned()));
        };
        let (id, response) = target.join(federate, connection, &mut self.scratch)?;
        if let Some(session) = self.sessions.get_mut(&connection) {
            session.joined = Some((key, id));
        }
        Ok(response)
    }
}
