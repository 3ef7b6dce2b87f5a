//! `mcpspy show FILE N` (or `--id ID [--session S]`): one message in full,
//! then its response or its request.

use super::args::Input;
use super::read::{time_format, Bar, Opened};
use super::{ColorChoice, Done, Failure, ShowArgs};
use crate::query::{self, Flow, IndexUse, Item, Kind, Selection, Sink};
use crate::render::detail::Detail;
use std::io;
use std::path::PathBuf;

/// What the first look at the selected items finds.
#[derive(Default)]
struct Found {
    /// (n, session, is a request, the request it answers).
    items: Vec<(u64, Option<u64>, bool, Option<u64>)>,
}

impl Sink for Found {
    fn needs_text(&self) -> bool {
        false
    }

    fn item(&mut self, item: &Item<'_>, _text_len: u64) -> io::Result<Flow> {
        let is_request = matches!(item.kind, Kind::Request { .. });
        let answers = item.kind.answers().map(|a| a.n);
        self.items
            .push((item.n, item.session.map(|s| s.id), is_request, answers));
        Ok(Flow::Continue)
    }
}

pub fn run(a: ShowArgs, _color: ColorChoice) -> Result<Done, Failure> {
    let (input, n) = operands(&a)?;
    let opened = Opened::new(&input)?;
    let target = match (n, &a.id) {
        (Some(n), _) => Selection {
            items: vec![n],
            ..Selection::default()
        },
        (None, Some(id)) => Selection {
            ids: vec![json_id(id)],
            sessions: a.session.into_iter().collect(),
            ..Selection::default()
        },
        (None, None) => {
            return Err(Failure::input(
                "show: which message? give its number (mcpspy show FILE N) or --id",
            ))
        }
    };
    let mut found = Found::default();
    run_query(&opened, &target, &mut found)?;
    // With --id, the request (or the lone message) is the one shown first.
    let firsts: Vec<&(u64, Option<u64>, bool, Option<u64>)> = if n.is_some() {
        found.items.iter().collect()
    } else {
        let requests: Vec<_> = found.items.iter().filter(|i| i.2).collect();
        if requests.is_empty() {
            found.items.iter().take(1).collect()
        } else {
            requests
        }
    };
    let first = match firsts[..] {
        [] => return Ok(Done::NothingMatched("no such message".into())),
        [one] => *one,
        _ => {
            let where_: Vec<String> = firsts
                .iter()
                .map(|i| {
                    format!(
                        "item {} (session {})",
                        i.0,
                        i.1.map_or("-".into(), |s| s.to_string())
                    )
                })
                .collect();
            return Err(Failure::input(format!(
                "show: several messages have that id: {}; add --session, or give the item's number",
                where_.join(", ")
            )));
        }
    };
    let (n, _, is_request, answers) = first;
    let processes = opened.reader.processes()?;
    let time = time_format(&a.time, &opened.span);
    let mut detail = Detail::new(opened.span.clock, time, processes, io::stdout().lock());
    run_query(
        &opened,
        &Selection {
            items: vec![n],
            ..Selection::default()
        },
        &mut detail,
    )?;
    let other = if is_request {
        detail.heading = Some("its response".into());
        Selection {
            answering: vec![n],
            ..Selection::default()
        }
    } else if let Some(req) = answers {
        detail.heading = Some("the request it answers".into());
        Selection {
            items: vec![req],
            ..Selection::default()
        }
    } else {
        return Ok(Done::Ok);
    };
    run_query(&opened, &other, &mut detail)?;
    Ok(Done::Ok)
}

fn run_query(opened: &Opened, sel: &Selection, sink: &mut dyn Sink) -> Result<(), Failure> {
    let index = if opened.reader.name() == opened.reader.path() {
        IndexUse::Always
    } else {
        IndexUse::Never
    };
    query::run(&opened.reader, sel, sink, index, &mut Bar::default())
        .map(drop)
        .map_err(|e| match e {
            query::QueryError::Capture(e) => e.into(),
            other => Failure::other(other.to_string()),
        })
}

/// The capture and the item number, from `FILE N`, `-r FILE N` or `FILE`.
fn operands(a: &ShowArgs) -> Result<(Input, Option<u64>), Failure> {
    let number = |s: &String| {
        s.parse::<u64>()
            .map_err(|_| Failure::input(format!("show: `{s}` is not an item number")))
    };
    let (file, n) = match (&a.read, &a.positional[..]) {
        (Some(_), []) => (None, None),
        (Some(_), [n]) => (None, Some(number(n)?)),
        (None, []) => (None, None),
        (None, [f]) => (Some(PathBuf::from(f)), None),
        (None, [f, n]) => (Some(PathBuf::from(f)), Some(number(n)?)),
        _ => return Err(Failure::input("show: FILE N, or -r FILE N")),
    };
    Ok((
        Input {
            file,
            read: a.read.clone(),
        },
        n,
    ))
}

/// An id as the user typed it, as JSON text: `7` stays, `abc` becomes `"abc"`.
fn json_id(id: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(id) {
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::String(_))) => v.to_string(),
        _ => serde_json::Value::String(id.to_string()).to_string(),
    }
}
