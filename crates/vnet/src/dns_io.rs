//! DNS transport around the sans-IO server: guests' TCP connections (RFC 7766 §8: each
//! message framed by a two-octet length; §6.2.3: idle connections are closed by the server),
//! and queries forwarded upstream over TCP, each on a connection of its own.
//!
//! UDP queries go upstream through the service task's long-lived sockets
//! ([`crate::upstream`]). A query that came over TCP goes upstream over TCP, as dnsmasq
//! forwards it, so an answer too large for a datagram (RFC 1035 §4.2.1) comes back whole.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

/// What the helper tasks of a network hand back to its service task.
#[derive(Debug)]
pub(crate) enum Internal {
    /// One framed message from a guest's TCP connection (length octets removed).
    TcpQuery {
        peer: SocketAddr,
        conn: u64,
        bytes: Vec<u8>,
    },
    /// A guest's TCP connection ended.
    TcpClosed { peer: SocketAddr, conn: u64 },
    /// A message from an upstream server (UDP datagram, or a TCP message without its length).
    Upstream { from: SocketAddr, bytes: Vec<u8> },
}

/// Largest DNS message: the TCP length field's maximum.
pub(crate) const MAX_MESSAGE: usize = 65535;

/// How long a guest's TCP connection may stay without a query in flight and without traffic.
// RFC 7766 §6.2.3 leaves the value open (it advises seconds, not minutes); 10 s lets a stub send a
// few queries on one connection, and frees the slot soon after. dnsmasq keeps a connection
// for its TCP_TIMEOUT of 150 s, in a forked child per connection.
pub(crate) const TCP_IDLE: Duration = Duration::from_secs(10);

/// A guest's connection that waits this long for answers without any traffic is closed, even
/// with queries outstanding (an upstream that never answers, a query the server dropped).
pub(crate) const TCP_STUCK: Duration = Duration::from_secs(30);

/// Serves one guest TCP connection: framed queries go to the service task, answers the service
/// task sends on `replies` go back framed.
pub(crate) async fn tcp_client(
    stream: TcpStream,
    peer: SocketAddr,
    conn: u64,
    service: mpsc::Sender<Internal>,
    mut replies: mpsc::Receiver<Vec<u8>>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut acc: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 4096];
    let mut in_flight: usize = 0;
    let mut last_activity = Instant::now();
    loop {
        let limit = if in_flight == 0 { TCP_IDLE } else { TCP_STUCK };
        tokio::select! {
            // `read` is cancel-safe: bytes are only taken when it completes.
            r = rd.read(&mut chunk) => {
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                last_activity = Instant::now();
                acc.extend_from_slice(chunk.get(..n).unwrap_or_default());
                let mut closed = false;
                while let Some(msg) = take_frame(&mut acc) {
                    in_flight += 1;
                    let q = Internal::TcpQuery { peer, conn, bytes: msg };
                    if service.send(q).await.is_err() {
                        closed = true;
                        break;
                    }
                }
                if closed {
                    break;
                }
            }
            reply = replies.recv() => {
                let Some(bytes) = reply else { break };
                in_flight = in_flight.saturating_sub(1);
                last_activity = Instant::now();
                if write_frame(&mut wr, &bytes).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(last_activity + limit) => break,
        }
    }
    let _ = wr.shutdown().await;
    let _ = service.send(Internal::TcpClosed { peer, conn }).await;
}

/// Takes one complete length-framed message off the front of `acc`.
pub(crate) fn take_frame(acc: &mut Vec<u8>) -> Option<Vec<u8>> {
    let len = match acc.get(..2) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return None,
    };
    let msg = acc.get(2..2 + len)?.to_vec();
    acc.drain(..2 + len);
    Some(msg)
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    w.write_all(&out).await
}

/// Sends `query` to `upstream` over TCP (framed) and hands the one answer back.
pub(crate) async fn forward_tcp(
    upstream: SocketAddr,
    query: Vec<u8>,
    service: mpsc::Sender<Internal>,
    wait: Duration,
) {
    let deadline = Instant::now() + wait;
    let result = timeout_at(deadline, async {
        let mut s = TcpStream::connect(upstream).await?;
        write_frame(&mut s, &query).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).await?;
        Ok::<_, std::io::Error>(msg)
    })
    .await;
    match result {
        Ok(Ok(bytes)) => {
            let _ = service
                .send(Internal::Upstream {
                    from: upstream,
                    bytes,
                })
                .await;
        }
        Ok(Err(e)) => tracing::debug!(%upstream, "DNS forward over TCP: {e}"),
        Err(_) => tracing::debug!(%upstream, "DNS forward over TCP: timed out"),
    }
}

/// How long a forward task waits for its answer, given the DNS core's per-upstream timeout: the
/// core may accept a late answer from an upstream it has moved on from, so the socket stays
/// open a while longer than the core's own timer.
pub(crate) fn forward_wait(upstream_timeout: Duration) -> Duration {
    upstream_timeout
        .saturating_mul(2)
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_whole_and_in_order() {
        let mut acc = vec![0, 3, b'a', b'b', b'c', 0, 0, 0, 2, b'x'];
        assert_eq!(take_frame(&mut acc), Some(b"abc".to_vec()));
        // A zero-length frame is a (malformed) message of its own, for the core to count.
        assert_eq!(take_frame(&mut acc), Some(Vec::new()));
        // Incomplete: stays until the rest arrives.
        assert_eq!(take_frame(&mut acc), None);
        assert_eq!(acc, vec![0, 2, b'x']);
        acc.push(b'y');
        assert_eq!(take_frame(&mut acc), Some(b"xy".to_vec()));
        assert!(acc.is_empty());
        let mut one = vec![7];
        assert_eq!(take_frame(&mut one), None);
        assert_eq!(one, vec![7]);
    }

    #[tokio::test]
    async fn frames_are_written_with_their_length() {
        let mut out: Vec<u8> = Vec::new();
        write_frame(&mut out, b"hello").await.unwrap();
        assert_eq!(out, b"\x00\x05hello");
        let big = vec![0u8; 70_000];
        assert!(write_frame(&mut out, &big).await.is_err());
    }

    #[test]
    fn wait() {
        assert_eq!(forward_wait(Duration::from_secs(3)), Duration::from_secs(6));
        assert_eq!(forward_wait(Duration::ZERO), Duration::from_secs(1));
    }
}
