//! A TCP proxy that can delay, stall, reset or cut what it carries: the way to take a real
//! service away from one client for a while, or slow it down, without touching the service that
//! others share. Tests use it, and so do loadgen's faults (`db-outage` between the consumer and
//! MySQL, `api-kafka-*` between the api and the broker).

use std::{collections::VecDeque, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
    time::Instant,
};

/// What the proxy does to the traffic it carries. Every connection follows a change at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every byte goes through as it comes.
    Forward,
    /// Every byte goes through this much later, in order, each way: added latency, with the
    /// throughput unchanged.
    Delay(Duration),
    /// Nothing goes through, and nothing is lost: bytes wait in the kernel's buffers (then the
    /// senders block) and new connections are accepted but carry nothing, until the mode
    /// changes, as across a network partition that drops packets until it heals.
    Blackhole,
    /// Every open connection is reset (RST) and every new one as it arrives.
    Reset,
    /// Every open connection is dropped and new ones are refused (closed as they arrive).
    Cut,
}

impl Mode {
    /// Whether a connection ends under it.
    fn ends(self) -> bool {
        matches!(self, Self::Reset | Self::Cut)
    }
}

#[derive(Debug)]
pub struct TcpProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    acceptor: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Forward);
        let acceptor = tokio::spawn({
            let mode = mode.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    // A connection accepted as the mode changes sees the change at its start
                    // (`wait_for` looks at the current value first), so none slips through.
                    match *mode.borrow() {
                        Mode::Cut => continue,
                        Mode::Reset => {
                            let _ = inbound.set_zero_linger();
                            continue;
                        }
                        _ => {}
                    }
                    tokio::spawn(carry(inbound, target, mode.subscribe()));
                }
            }
        });
        Ok(Self {
            addr,
            mode,
            acceptor,
        })
    }

    /// From now on, does `mode` to every connection, open or new.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.set(Mode::Cut);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.set(Mode::Forward);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.acceptor.abort();
    }
}

/// One connection, both ways, until either side closes it or the mode ends it.
async fn carry(mut inbound: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let reset = {
        let (from_client, to_client) = inbound.split();
        let (from_target, to_target) = outbound.split();
        tokio::select! {
            _ = pump(from_client, to_target, mode.clone()) => false,
            _ = pump(from_target, to_client, mode.clone()) => false,
            ended = mode.wait_for(|m| m.ends()) => ended.is_ok_and(|m| *m == Mode::Reset),
        }
    };
    if reset {
        // Closing with a zero linger sends RST rather than FIN.
        let _ = inbound.set_zero_linger();
        let _ = outbound.set_zero_linger();
    }
}

/// One way of a connection: reads what comes and writes it on when due (at once, or after the
/// delay), or holds it while the mode is [`Mode::Blackhole`]. Ends at the end of the stream,
/// once what was read has been written, or on an error.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut mode: watch::Receiver<Mode>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut line: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut open = true;
    loop {
        let carrying = *mode.borrow() != Mode::Blackhole;
        let due = line.front().map(|(at, _)| *at);
        if !open && due.is_none() {
            return to.shutdown().await;
        }
        tokio::select! {
            read = from.read(&mut buffer), if open && carrying => {
                let read = read?;
                if read == 0 {
                    open = false;
                    continue;
                }
                let delay = match *mode.borrow() {
                    Mode::Delay(delay) => delay,
                    _ => Duration::ZERO,
                };
                line.push_back((Instant::now() + delay, buffer[..read].to_vec()));
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if carrying && due.is_some() => {
                if let Some((_, bytes)) = line.pop_front() {
                    to.write_all(&bytes).await?;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port; returns its address.
    async fn echo() -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        Ok(addr)
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(message).await?;
        let mut reply = vec![0; message.len()];
        stream.read_exact(&mut reply).await?;
        Ok(reply)
    }

    #[tokio::test]
    async fn each_mode_does_what_it_says() -> std::io::Result<()> {
        let proxy = TcpProxy::start(echo().await?).await?;
        let mut stream = TcpStream::connect(proxy.addr).await?;
        assert_eq!(round_trip(&mut stream, b"plain").await?, b"plain");

        // Delayed each way: the round trip takes at least twice the delay.
        proxy.set(Mode::Delay(Duration::from_millis(150)));
        let sent = Instant::now();
        assert_eq!(round_trip(&mut stream, b"late").await?, b"late");
        assert!(sent.elapsed() >= Duration::from_millis(300));

        // Blackholed: nothing comes back while it lasts, and what waited arrives after it.
        proxy.set(Mode::Blackhole);
        stream.write_all(b"held").await?;
        let mut reply = [0; 4];
        let held = tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut reply));
        assert!(held.await.is_err(), "a blackhole carried bytes");
        proxy.set(Mode::Forward);
        stream.read_exact(&mut reply).await?;
        assert_eq!(&reply, b"held");

        // Reset: the open connection gets a reset, and so does a new one.
        proxy.set(Mode::Reset);
        let mut byte = [0; 1];
        let error = stream.read(&mut byte).await.expect_err("reset");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
        let mut fresh = TcpStream::connect(proxy.addr).await?;
        let fresh_read = fresh.read(&mut byte).await;
        assert!(
            fresh_read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{fresh_read:?}"
        );

        // Cut: a new connection is closed at once; restored, it carries again.
        proxy.cut();
        let mut refused = TcpStream::connect(proxy.addr).await?;
        assert!(matches!(refused.read(&mut byte).await, Ok(0) | Err(_)));
        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr).await?;
        assert_eq!(round_trip(&mut again, b"back").await?, b"back");
        Ok(())
    }
}
