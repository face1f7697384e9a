//! The client commands, `wasmtx module …` and `wasmtx tx …`: a thin shell
//! over a server's HTTP API (`/v1`), for people (aligned tables) and scripts
//! (`--json`: the server's JSON, one document a line). They hold no protocol
//! logic: every decision is the server's; this side only reads input, sends
//! it and shows the answer.
//!
//! Exit status: 0 when the command did what it was asked; 1 when it followed
//! a transaction to its end and that end is `failed` (`tx submit --wait`,
//! `tx start-workflow --wait`, `tx watch`, and `tx submit` whose request has
//! `"wait": true`); 2 for a usage error (clap's), bad input, or an error from
//! the server or the network (`error: MESSAGE (CODE, HTTP STATUS)` on stderr).
//! `tx show` of a failed transaction exits 0: showing it succeeded.

mod client;
mod render;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use client::{Body, Client, ClientError};

/// Where the server is and how to show its answers; global, so they may come
/// before or after the subcommand.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's base URL (module and tx commands).
    #[arg(
        long,
        global = true,
        env = "WASMTX_SERVER",
        default_value = "http://127.0.0.1:36789",
        help_heading = "Client options"
    )]
    pub server: String,
    /// API token: sent as `Authorization: Bearer` by the module and tx commands; for `serve`, a token with every right.
    #[arg(long, global = true, env = "WASMTX_TOKEN", hide_env_values = true, help_heading = "Client options")]
    pub token: Option<String>,
    /// Print the server's JSON (one document a line) instead of tables.
    #[arg(long, global = true, help_heading = "Client options")]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Upload, list, inspect and call modules on a server.
    Module {
        #[command(subcommand)]
        command: ModuleCommand,
    },
    /// Submit, inspect, control and watch transactions on a server.
    Tx {
        #[command(subcommand)]
        command: TxCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Upload a component as module NAME (its new current version).
    Push {
        name: String,
        /// The component (.wasm), or `-` for stdin.
        file: PathBuf,
        /// The business database it runs against [server default: default].
        #[arg(long)]
        database: Option<String>,
        /// Reuse each instance for up to N invocations (1–100000).
        #[arg(long, value_name = "N")]
        reuse: Option<u32>,
        /// Hosts its outbound HTTP may reach, comma-separated.
        #[arg(long, value_name = "HOSTS")]
        http: Option<String>,
    },
    /// List the current version of every module.
    List,
    /// Show the current version of one module.
    Show { name: String },
    /// Run one function once, outside any transaction; prints its output.
    Call {
        name: String,
        function: String,
        /// Its JSON payload, or `-` for stdin [default: null].
        payload: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Submit a transaction: the JSON body of POST /v1/transactions, from FILE or `-` (stdin).
    Submit {
        file: PathBuf,
        /// Follow it to its end; exit 1 if it failed.
        #[arg(long)]
        wait: bool,
    },
    /// Show a transaction and its ops (branch, op, target, status, attempts, last error).
    Show { gid: String },
    /// List transactions, newest first.
    List {
        /// Only these: prepared, submitted, aborting, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        /// Only these: saga, tcc, xa, msg or workflow.
        #[arg(long)]
        mode: Option<String>,
        /// Only those calling this module.
        #[arg(long)]
        module: Option<String>,
        /// At most N (1–1000) [server default: 100].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// The page after this gid (the `next_cursor` of the page before).
        #[arg(long, value_name = "GID")]
        cursor: Option<String>,
    },
    /// Roll back a transaction that is not finished (runs its compensations).
    Abort(Control),
    /// Mark a transaction failed at once, without compensation.
    ForceStop(Control),
    /// Run a sleeping transaction's next attempt now.
    RetryNow(Control),
    /// Follow a transaction until it ends, printing each change; exit 1 if it failed.
    Watch {
        gid: String,
        /// Milliseconds between polls.
        #[arg(long, default_value_t = 250, value_name = "MS")]
        interval: u64,
    },
    /// Send a signal to a running workflow.
    Signal {
        gid: String,
        name: String,
        /// Its JSON payload, or `-` for stdin [default: null].
        payload: Option<String>,
    },
    /// Start a workflow: the `run` of MODULE with an input.
    StartWorkflow {
        module: String,
        /// Its gid [default: the server makes one].
        #[arg(long)]
        gid: Option<String>,
        /// Its JSON input, or `-` for stdin [default: null].
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// Follow it to its end; exit 1 if it failed.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Args)]
pub struct Control {
    gid: String,
    /// Why, recorded in its history.
    #[arg(long)]
    reason: Option<String>,
}

/// How a command that succeeded ends.
enum Outcome {
    Done,
    /// The transaction it followed ended `failed`.
    Failed,
}

/// Runs one client command; its exit status.
pub fn run(args: ClientArgs, command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(&args, command)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes a shell completion script for `command` to stdout.
pub fn completions(shell: clap_complete::Shell, command: &mut clap::Command) {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, command, name, &mut std::io::stdout());
}

async fn execute(args: &ClientArgs, command: ClientCommand) -> Result<Outcome, ClientError> {
    let client = Client::new(&args.server, args.token.clone())?;
    let out = Output { json: args.json };
    match command {
        ClientCommand::Module { command } => module(&client, out, command).await,
        ClientCommand::Tx { command } => tx(&client, out, command).await,
    }
}

async fn module(client: &Client, out: Output, command: ModuleCommand) -> Result<Outcome, ClientError> {
    match command {
        ModuleCommand::Push { name, file, database, reuse, http } => {
            let bytes = read_input(&file)?;
            let mut query = Vec::new();
            query.extend(database.map(|d| ("database", d)));
            query.extend(reuse.map(|n| ("reuse", n.to_string())));
            query.extend(http.map(|h| ("http", h)));
            let answer =
                client.send(Method::PUT, &["modules", &name], &query, Some(bytes), "application/octet-stream").await?;
            let Body::Json(answer) = answer else {
                return Err(ClientError::Input("the server's answer to an upload is not JSON".into()));
            };
            out.show(&answer, render::module);
        }
        ModuleCommand::List => out.show(&client.get(&["modules"], &[]).await?, render::modules),
        ModuleCommand::Show { name } => out.show(&client.get(&["modules", &name], &[]).await?, render::module),
        ModuleCommand::Call { name, function, payload } => {
            let body = payload.as_deref().map(read_arg).transpose()?;
            match client
                .send(Method::POST, &["modules", &name, "call", &function], &[], body, "application/json")
                .await?
            {
                Body::Json(v) => out.line(&v.to_string()),
                Body::Bytes(b) => out.bytes(&b),
            }
        }
    }
    Ok(Outcome::Done)
}

async fn tx(client: &Client, out: Output, command: TxCommand) -> Result<Outcome, ClientError> {
    match command {
        TxCommand::Submit { file, wait } => {
            let bytes = read_input(&file)?;
            let mut request: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Input(format!("{} is not JSON: {e}", file.display())))?;
            if wait {
                match request.as_object_mut() {
                    Some(object) => object.insert("wait".into(), Value::Bool(true)),
                    None => return Err(ClientError::Input(format!("{} is not a JSON object", file.display()))),
                };
            }
            let follow = request["wait"] == Value::Bool(true);
            submit(client, out, &request, follow).await
        }
        TxCommand::StartWorkflow { module, gid, input, wait } => {
            let input = match input.as_deref() {
                Some(arg) => {
                    let bytes = read_arg(arg)?;
                    serde_json::from_slice::<Value>(&bytes)
                        .map_err(|e| ClientError::Input(format!("--input is not JSON: {e}")))?
                }
                None => Value::Null,
            };
            let mut request =
                json!({ "mode": "workflow", "workflow": { "module": module }, "input": input, "wait": wait });
            if let Some(gid) = gid {
                request["gid"] = Value::String(gid);
            }
            submit(client, out, &request, wait).await
        }
        TxCommand::Show { gid } => {
            out.show(&client.get(&["transactions", &gid], &[]).await?, render::transaction);
            Ok(Outcome::Done)
        }
        TxCommand::List { status, mode, module, limit, cursor } => {
            let mut query = Vec::new();
            query.extend(status.map(|s| ("status", s)));
            query.extend(mode.map(|m| ("mode", m)));
            query.extend(module.map(|m| ("module", m)));
            query.extend(limit.map(|n| ("limit", n.to_string())));
            query.extend(cursor.map(|c| ("cursor", c)));
            let page = client.get(&["transactions"], &query).await?;
            out.show(&page, render::transactions);
            if let (false, Some(next)) = (out.json, page["next_cursor"].as_str()) {
                eprintln!("more: wasmtx tx list --cursor {next}");
            }
            Ok(Outcome::Done)
        }
        TxCommand::Abort(c) => control(client, out, c, "abort").await,
        TxCommand::ForceStop(c) => control(client, out, c, "force-stop").await,
        TxCommand::RetryNow(c) => control(client, out, c, "retry-now").await,
        TxCommand::Watch { gid, interval } => {
            let tx = follow(client, out, &gid, Duration::from_millis(interval.max(10)), true).await?;
            Ok(ending(&tx))
        }
        TxCommand::Signal { gid, name, payload } => {
            let body = payload.as_deref().map(read_arg).transpose()?;
            let answer = client.json(Method::POST, &["transactions", &gid, "signals", &name], &[], body).await?;
            out.show(&answer, |a| format!("sent signal {} to {}\n", render::text(a, "signal"), render::text(a, "gid")));
            Ok(Outcome::Done)
        }
    }
}

/// Submits `request`; with `follow`, polls a transaction still running after
/// the server's wait until it ends, and shows it as a submit answer.
async fn submit(client: &Client, out: Output, request: &Value, follow: bool) -> Result<Outcome, ClientError> {
    let body = serde_json::to_vec(request).map_err(|e| ClientError::Input(e.to_string()))?;
    let mut answer = client.json(Method::POST, &["transactions"], &[], Some(body)).await?;
    if follow && !is_final(&answer) {
        let gid = render::text(&answer, "gid");
        let tx = self::follow(client, Output { json: false }, &gid, Duration::from_millis(250), false).await?;
        answer = json!({ "gid": tx["gid"], "status": tx["status"] });
        for key in ["rollback_reason", "output"] {
            if !tx[key].is_null() {
                answer[key] = tx[key].clone();
            }
        }
    }
    out.show(&answer, render::submitted);
    Ok(if follow { ending(&answer) } else { Outcome::Done })
}

async fn control(client: &Client, out: Output, c: Control, action: &str) -> Result<Outcome, ClientError> {
    let body = serde_json::to_vec(&json!({ "reason": c.reason })).map_err(|e| ClientError::Input(e.to_string()))?;
    let tx = client.json(Method::POST, &["transactions", &c.gid, action], &[], Some(body)).await?;
    out.show(&tx, render::transaction);
    Ok(Outcome::Done)
}

/// Polls transaction `gid` until it is final; returns its last view. With
/// `print`, shows each change as it is seen (`--json`: each changed view).
async fn follow(client: &Client, out: Output, gid: &str, every: Duration, print: bool) -> Result<Value, ClientError> {
    let mut watch = render::Watch::default();
    loop {
        let tx = client.get(&["transactions", gid], &[]).await?;
        let changes = watch.changes(&tx);
        if print && !changes.is_empty() {
            if out.json {
                out.line(&tx.to_string());
            } else {
                out.line(&changes.join("\n"));
            }
        }
        if is_final(&tx) {
            return Ok(tx);
        }
        tokio::time::sleep(every).await;
    }
}

fn is_final(tx: &Value) -> bool {
    matches!(tx["status"].as_str(), Some("succeeded" | "failed"))
}

/// The outcome of a command that followed a transaction to `tx`.
fn ending(tx: &Value) -> Outcome {
    if tx["status"] == "failed" { Outcome::Failed } else { Outcome::Done }
}

/// Reads FILE, or stdin for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>, ClientError> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(|e| ClientError::Input(format!("cannot read stdin: {e}")))?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(|e| ClientError::Input(format!("cannot read {}: {e}", path.display())))
    }
}

/// An argument that is JSON text, or `-` for stdin.
fn read_arg(arg: &str) -> Result<Vec<u8>, ClientError> {
    if arg == "-" { read_input(Path::new("-")) } else { Ok(arg.as_bytes().to_vec()) }
}

/// Stdout, as a table for people or JSON for scripts. A closed pipe (`| head`) is not an error.
#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn show(self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            self.line(&value.to_string());
        } else {
            self.bytes(human(value).as_bytes());
        }
    }

    fn line(self, text: &str) {
        self.bytes(format!("{text}\n").as_bytes());
    }

    fn bytes(self, bytes: &[u8]) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
    }
}
