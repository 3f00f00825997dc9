//! The connection under a federate, whatever the transport.

use std::fmt;
use std::time::{Duration, Instant};

use fedtwin_core::message::{ClientMessage, ServerMessage};
use fedtwin_rti::{EmbeddedRti, EmbeddedSender};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;

use crate::error::{Error, Result};

/// Where a federate finds its RTI.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Connector {
    /// An RTI in this process.
    Embedded(EmbeddedRti),
}

impl From<EmbeddedRti> for Connector {
    fn from(rti: EmbeddedRti) -> Self {
        Self::Embedded(rti)
    }
}

impl From<&EmbeddedRti> for Connector {
    fn from(rti: &EmbeddedRti) -> Self {
        Self::Embedded(rti.clone())
    }
}

/// Sends requests; each transport provides one.
trait Outgoing: Send {
    fn send(&self, message: ClientMessage) -> Result<()>;
}

impl Outgoing for EmbeddedSender {
    fn send(&self, message: ClientMessage) -> Result<()> {
        EmbeddedSender::send(self, message).map_err(|_| Error::Disconnected)
    }
}

/// An open connection: requests out, responses and callbacks in.
pub(crate) struct Link {
    outgoing: Box<dyn Outgoing>,
    incoming: UnboundedReceiver<ServerMessage>,
    spin: Duration,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn open(connector: &Connector, spin: Duration) -> Result<Self> {
        match connector {
            Connector::Embedded(rti) => {
                let connection = rti.connect().map_err(|_| Error::Disconnected)?;
                Ok(Self {
                    outgoing: Box::new(connection.sender),
                    incoming: connection.receiver,
                    spin,
                })
            }
        }
    }

    pub(crate) fn send(&self, message: ClientMessage) -> Result<()> {
        self.outgoing.send(message)
    }

    /// The next message. Spins for a few microseconds before parking: waking a parked thread
    /// costs far more than a grant usually takes to arrive.
    pub(crate) async fn recv(&mut self) -> Result<ServerMessage> {
        if !self.spin.is_zero() {
            let start = Instant::now();
            loop {
                match self.incoming.try_recv() {
                    Ok(message) => return Ok(message),
                    Err(TryRecvError::Disconnected) => return Err(Error::Disconnected),
                    Err(TryRecvError::Empty) => {}
                }
                if start.elapsed() >= self.spin {
                    break;
                }
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            }
        }
        self.incoming.recv().await.ok_or(Error::Disconnected)
    }

    /// A message that has already arrived, if any.
    pub(crate) fn try_recv(&mut self) -> Result<Option<ServerMessage>> {
        match self.incoming.try_recv() {
            Ok(message) => Ok(Some(message)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Error::Disconnected),
        }
    }
}
