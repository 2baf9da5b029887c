//! LISTEN/NOTIFY: a third session, only for handles that drive runs (servers), relays the
//! notifications of [`ENTRIES_CHANNEL`] (`run_id:last_seq`, sent by every commit) and
//! [`CANCELS_CHANNEL`] (`run_id`, sent when a cancel request is filed) to a broadcast.
//! A notification only says "look again": followers read the entries by seq from the
//! table, so one that is lost (a lagging receiver, a dropped session) costs latency, not
//! entries.

use super::{ENTRIES_CHANNEL, pg_err};
use crate::error::LedgerError;
use futures_util::StreamExt;
use std::path::Path;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

/// The channel on which a filed cancel request announces its run id.
pub const CANCELS_CHANNEL: &str = "praxis_cancels";

/// One notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub channel: String,
    pub payload: String,
}

impl Notice {
    /// The run a notification is about (`run_id:seq` or `run_id`).
    pub fn run_id(&self) -> &str {
        if self.channel == ENTRIES_CHANNEL {
            self.payload
                .rsplit_once(':')
                .map_or(self.payload.as_str(), |(run, _)| run)
        } else {
            &self.payload
        }
    }
}

/// Connects the listening session and starts relaying; the client must be kept (dropping
/// it ends the session).
pub(super) async fn start(
    config: &Config,
    url: &Path,
    tx: broadcast::Sender<Notice>,
) -> Result<Client, LedgerError> {
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(pg_err(url, "connecting the listening session"))?;
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                // No receiver is not an error.
                let _ = tx.send(Notice {
                    channel: n.channel().to_string(),
                    payload: n.payload().to_string(),
                });
            }
        }
    });
    client
        .batch_execute(&format!(
            "LISTEN {ENTRIES_CHANNEL}; LISTEN {CANCELS_CHANNEL}"
        ))
        .await
        .map_err(pg_err(url, "subscribing to notifications (LISTEN)"))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_name_their_run() {
        let entries = Notice {
            channel: ENTRIES_CHANNEL.into(),
            payload: "01abc:17".into(),
        };
        assert_eq!(entries.run_id(), "01abc");
        let cancel = Notice {
            channel: CANCELS_CHANNEL.into(),
            payload: "01abc".into(),
        };
        assert_eq!(cancel.run_id(), "01abc");
    }
}
