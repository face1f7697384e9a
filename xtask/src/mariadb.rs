//! Makes sure the local MariaDB the DTM client tests use answers
//! (127.0.0.1:3306; dtmcli's barrier helper speaks MySQL), starting the
//! machine's server if it does not. Tests never skip for want of a database,
//! so this fails loudly instead.

use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::process;

const ADDRESS: &str = "127.0.0.1:3306";
const SERVER: &str = "/usr/sbin/mariadbd";
const WAIT: Duration = Duration::from_secs(30);

fn ready() -> bool {
    let address: SocketAddr = ADDRESS.parse().expect("a socket address");
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// Returns once MariaDB accepts connections on 127.0.0.1:3306, starting
/// `mariadbd` in the background and waiting up to 30 s if needed.
pub fn ensure_running() -> Result<()> {
    if ready() {
        eprintln!("mariadb is ready at {ADDRESS}");
        return Ok(());
    }
    eprintln!("mariadb is not answering at {ADDRESS}; starting {SERVER}");
    let mut start = process::command("start-stop-daemon");
    start.args(["--start", "--oknodo", "--background", "--exec", SERVER]);
    let started = process::run(&mut start);
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if ready() {
            eprintln!("mariadb is ready at {ADDRESS}");
            return Ok(());
        }
        sleep(Duration::from_millis(500));
    }
    let why = match started {
        Ok(()) => "the server started".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    bail!("mariadb is still not ready at {ADDRESS} after {} s ({why})", WAIT.as_secs())
}
