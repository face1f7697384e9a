//! The `wasmtx` command: `wasmtx serve [--listen ADDR] [--data-dir DIR]
//! [--store URL] [--database NAME=URL]... [--config FILE]`, and
//! `wasmtx guest new|build` for writing branch modules ([`guest`]),
//! `wasmtx module …` and `wasmtx tx …`, clients of a server's HTTP API
//! ([`cli`], whose exit statuses are its own), and `wasmtx completions SHELL`.
//!
//! A start-up failure exits with status 1 and one line on stderr saying what
//! to fix; the error's chain of causes and a backtrace follow only when
//! `RUST_BACKTRACE` asks for them. A `guest` failure is one line too, its
//! causes joined into it.

mod cli;
mod guest;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wasmtx::config::{Config, Overrides};

/// Requests allocate and free many small buffers on two threads; mimalloc's
/// per-thread free lists cost less than glibc's arenas here (see the README's
/// Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "wasmtx", version, about = "Distributed transactions whose branches run as WebAssembly components")]
struct Cli {
    #[command(flatten)]
    client: cli::ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the coordinator and its HTTP API.
    Serve(ServeArgs),
    /// Write and build branch modules: `new` scaffolds one, `build` makes its component.
    Guest {
        #[command(subcommand)]
        command: guest::GuestCommand,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:36789].
    #[arg(long, env = "WASMTX_LISTEN")]
    listen: Option<String>,
    /// Directory for the embedded SQLite files, the node id and the compile cache [default: ./wasmtx-data].
    #[arg(long, env = "WASMTX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Coordinator store: sqlite://PATH or postgres://… [default: SQLite in the data dir].
    #[arg(long, env = "WASMTX_STORE")]
    store: Option<String>,
    /// Bind a business database: NAME=URL (repeatable; `default=URL` replaces the default one).
    #[arg(long = "database", value_name = "NAME=URL")]
    databases: Vec<String>,
    /// TOML config file; flags and WASMTX_* variables override it. Relative paths in it are relative to its folder.
    #[arg(long, env = "WASMTX_CONFIG")]
    config: Option<PathBuf>,
    /// A bearer token with rights: NAME:RIGHTS:TOKEN, rights comma-separated from read, submit, admin, metrics (repeatable).
    #[arg(long = "auth-token", value_name = "NAME:RIGHTS:TOKEN")]
    auth_tokens: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets logging up once its configuration is read (it may export traces).
    let _logging = match &cli.command {
        Command::Serve(_) => None,
        _ => wasmtx::telemetry::init(log_filter(), None).ok(),
    };
    let token = cli.client.token.clone();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Guest { command } => {
            return match guest::run(command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Client(command) => return cli::run(cli.client, command),
        Command::Completions { shell } => {
            cli::completions(shell, &mut <Cli as clap::CommandFactory>::command());
            return ExitCode::SUCCESS;
        }
    };
    match serve(args, token) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if backtrace_requested() {
                let mut source = std::error::Error::source(&*e);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
                eprintln!("{}", std::backtrace::Backtrace::force_capture());
            }
            ExitCode::FAILURE
        }
    }
}

/// `token`: `--token` or `WASMTX_TOKEN`, a token with every right.
fn serve(args: ServeArgs, token: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let ServeArgs { listen, data_dir, store, databases, config, auth_tokens } = args;
    let overrides = Overrides { listen, data_dir, store, databases, token, auth_tokens };
    let config = Config::load(config.as_deref(), overrides)?;
    // Made before the runtime, so dropped after it: the drop exports the last spans.
    let _telemetry = wasmtx::telemetry::init(log_filter(), config.otlp_endpoint.as_deref())?;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        // Bound first, so a taken port fails before anything is opened.
        let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
            format!(
                "cannot listen on {}: {e} (is another server using it? choose another address with --listen or \
                 WASMTX_LISTEN)",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let started = wasmtx::server::start(config).await?;
        // Machine-readable start line on stdout (logs go to stderr), printed
        // only now that the server can serve.
        println!("wasmtx listening on http://{addr}");
        started.serve(listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// The log's filter: `WASMTX_LOG`, else `info,sqlx=warn`.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_env("WASMTX_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"))
}

/// Whether `RUST_BACKTRACE` is set to anything but `0`.
fn backtrace_requested() -> bool {
    std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0")
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
