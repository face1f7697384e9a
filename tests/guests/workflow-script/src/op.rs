//! [`Op`]: one entry of a script, parsed from its JSON.
//!
//! Each op is an object that names its kind with exactly one key (`call`,
//! `sleep`, `signal`, `now`, `random`, `fail`, `log`); only `call` takes
//! other keys. Parsing checks shapes only and calls nothing: the whole script
//! is parsed before its first op runs, so a malformed script fails without
//! running a step.

use serde::Deserialize;
use serde_json::Value as Json;

/// The keys that name an op's kind.
const KINDS: &[&str] = &["call", "sleep", "signal", "now", "random", "fail", "log"];

/// One op of a script.
#[derive(Debug, PartialEq)]
pub(crate) enum Op {
    /// `{"call": "fn", ...}`: a step.
    Call(Call),
    /// `{"sleep": ms}`: a durable timer.
    Sleep(u64),
    /// `{"signal": "name"}`: waits for the next signal of that name.
    Signal(String),
    /// `{"now": null}`: the journaled clock (the value is ignored).
    Now,
    /// `{"random": null}`: a journaled random number (the value is ignored).
    Random,
    /// `{"fail": "message"}`: the workflow fails with this message.
    Fail(String),
    /// `{"log": "text"}`: a log line at `info` level.
    Log(String),
}

/// `{"call": "fn", "module"?: "m", "compensate"?: "fn2", "payload"?: any, "tolerate"?: bool}`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Call {
    /// The function called.
    #[serde(rename = "call")]
    pub function: String,
    /// Its module, if not the script's default module.
    pub module: Option<String>,
    /// The function of the same module that undoes it, if any.
    pub compensate: Option<String>,
    /// Sent encoded as JSON; `null` if absent.
    #[serde(default)]
    pub payload: Json,
    /// A refusal (`failure` or `retry`) becomes the op's result instead of
    /// failing the workflow.
    #[serde(default)]
    pub tolerate: bool,
}

impl Op {
    /// Parses the op at 1-based position `n` of the script; errors start
    /// with `script op {n}: `.
    pub(crate) fn parse(n: usize, op: &Json) -> Result<Op, String> {
        parse(op).map_err(|e| format!("script op {n}: {e}"))
    }
}

fn parse(op: &Json) -> Result<Op, String> {
    let Json::Object(fields) = op else {
        return Err(format!("expected an object such as {{\"call\": \"function\"}}, got {op}"));
    };
    let kinds: Vec<&str> = fields.keys().map(String::as_str).filter(|key| KINDS.contains(key)).collect();
    let kind = match kinds[..] {
        [kind] => kind,
        [] => {
            let keys: Vec<&String> = fields.keys().collect();
            return Err(format!("unknown op with keys {keys:?}; an op is one of {}", KINDS.join(", ")));
        }
        _ => return Err(format!("names {} ops ({}); an op names one", kinds.len(), kinds.join(", "))),
    };
    if kind == "call" {
        return Call::deserialize(op).map(Op::Call).map_err(|e| format!("call: {e}"));
    }
    if fields.len() > 1 {
        let others: Vec<&String> = fields.keys().filter(|key| *key != kind).collect();
        return Err(format!("{kind} takes no other keys, got {others:?}"));
    }
    let value = &fields[kind];
    let text = || value.as_str().map(str::to_owned).ok_or_else(|| format!("{kind} takes a string, got {value}"));
    Ok(match kind {
        "sleep" => {
            Op::Sleep(value.as_u64().ok_or_else(|| format!("sleep takes milliseconds (an integer >= 0), got {value}"))?)
        }
        "signal" => Op::Signal(text()?),
        "now" => Op::Now,
        "random" => Op::Random,
        "fail" => Op::Fail(text()?),
        "log" => Op::Log(text()?),
        // Every other entry of KINDS has a case here; kept as an error, not a
        // panic, because a guest must not trap on its input.
        other => return Err(format!("op {other} is not implemented")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(function: &str) -> Call {
        Call { function: function.to_owned(), module: None, compensate: None, payload: Json::Null, tolerate: false }
    }

    #[test]
    fn every_kind_parses() {
        let cases = [
            (json!({"call": "echo"}), Op::Call(call("echo"))),
            (
                json!({"call": "debit", "module": "bank", "compensate": "credit", "payload": {"n": 1}, "tolerate": true}),
                Op::Call(Call {
                    function: "debit".into(),
                    module: Some("bank".into()),
                    compensate: Some("credit".into()),
                    payload: json!({"n": 1}),
                    tolerate: true,
                }),
            ),
            (json!({"sleep": 250}), Op::Sleep(250)),
            (json!({"signal": "approval"}), Op::Signal("approval".into())),
            (json!({"now": null}), Op::Now),
            (json!({"random": 7}), Op::Random),
            (json!({"fail": "no"}), Op::Fail("no".into())),
            (json!({"log": "hello"}), Op::Log("hello".into())),
        ];
        for (json, op) in cases {
            assert_eq!(Op::parse(1, &json), Ok(op), "{json}");
        }
    }

    #[test]
    fn malformed_ops_are_errors_naming_the_op_and_the_problem() {
        let cases = [
            (json!("call"), "script op 3: expected an object such as {\"call\": \"function\"}, got \"call\""),
            (
                json!({"jump": "x"}),
                "script op 3: unknown op with keys [\"jump\"]; an op is one of call, sleep, signal, now, random, fail, log",
            ),
            (
                json!({}),
                "script op 3: unknown op with keys []; an op is one of call, sleep, signal, now, random, fail, log",
            ),
            (json!({"call": "a", "sleep": 1}), "script op 3: names 2 ops (call, sleep); an op names one"),
            (json!({"sleep": -1}), "script op 3: sleep takes milliseconds (an integer >= 0), got -1"),
            (json!({"sleep": "1s"}), "script op 3: sleep takes milliseconds (an integer >= 0), got \"1s\""),
            (json!({"signal": 1}), "script op 3: signal takes a string, got 1"),
            (json!({"fail": null}), "script op 3: fail takes a string, got null"),
            (json!({"log": "x", "level": "warn"}), "script op 3: log takes no other keys, got [\"level\"]"),
            (json!({"call": 1}), "script op 3: call: invalid type: integer `1`, expected a string"),
        ];
        for (json, message) in cases {
            assert_eq!(Op::parse(3, &json), Err(message.to_owned()), "{json}");
        }
        let e = Op::parse(3, &json!({"call": "a", "paylod": 1})).unwrap_err();
        assert!(e.starts_with("script op 3: call: unknown field `paylod`, expected one of"), "{e}");
    }
}
