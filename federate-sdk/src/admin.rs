//! Administration without joining: status and federation lifecycle.

use std::time::Duration;

use fedtwin_core::ObjectModel;
use fedtwin_core::message::{ClientMessage, Request, Response, ServerMessage};
use fedtwin_core::status::{FederationStatus, StallReport};

use crate::error::{Error, Result};
use crate::link::{Connector, Drive, Link};

/// A connection for administering an RTI (needs an identity the policy lets administer, or
/// an admin certificate).
#[derive(Debug)]
pub struct Admin {
    link: Link,
    next_request: u64,
}

impl Admin {
    /// Connects.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] or [`Error::Closed`] if the RTI cannot be reached or refuses;
    /// [`Error::CertificateRevoked`] if a certificate is revoked.
    pub async fn connect(rti: impl Into<Connector>) -> Result<Self> {
        let link = Link::open(&rti.into(), Duration::ZERO, Drive::Thread).await?;
        Ok(Self {
            link,
            next_request: 0,
        })
    }

    /// Every federation this identity may administer, and who waits for whom in each.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`], [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; a late answer is skipped by the next call.
    pub async fn status(&mut self) -> Result<(Vec<FederationStatus>, Vec<StallReport>)> {
        match self.call(Request::Status).await? {
            Response::Status {
                federations,
                stalls,
            } => Ok((federations, stalls)),
            other => Err(Error::Protocol(format!(
                "unexpected answer to status: {other:?}"
            ))),
        }
    }

    /// Creates a federation.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if it exists or the policy denies it.
    pub async fn create_federation(&mut self, name: &str, model: ObjectModel) -> Result<()> {
        self.call(Request::CreateFederation {
            federation: name.to_owned(),
            model,
            if_missing: false,
        })
        .await
        .map(|_| ())
    }

    /// Destroys a federation nobody has joined.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if federates are joined or the policy denies it.
    pub async fn destroy_federation(&mut self, name: &str) -> Result<()> {
        self.call(Request::DestroyFederation {
            federation: name.to_owned(),
        })
        .await
        .map(|_| ())
    }

    async fn call(&mut self, request: Request) -> Result<Response> {
        self.next_request += 1;
        let id = self.next_request;
        let what = request.name();
        self.link.send(ClientMessage { id, request })?;
        loop {
            if let ServerMessage::Response {
                id: answered,
                result,
            } = self.link.recv().await?
                && answered == id
            {
                return result.map_err(|source| Error::Refused {
                    request: what,
                    source,
                });
            }
        }
    }
}
