//! What the local services the tests use (MariaDB, Redis) have in common:
//! answering on a TCP port, and waiting for that after starting them.

use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Whether something accepts connections at `address` (`host:port`).
pub fn answers(address: &str) -> bool {
    let address: SocketAddr = address.parse().expect("a socket address");
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// Waits up to `wait` for `name` to answer at `address` after an attempt to
/// start it (`started`, whose error explains a failure).
pub fn wait_until_it_answers(name: &str, address: &str, started: Result<()>, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if answers(address) {
            eprintln!("{name} is ready at {address}");
            return Ok(());
        }
        sleep(Duration::from_millis(200));
    }
    let why = match started {
        Ok(()) => "the server started".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    bail!("{name} is still not ready at {address} after {} s ({why})", wait.as_secs())
}
