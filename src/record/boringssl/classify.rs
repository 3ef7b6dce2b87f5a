//! Which function is which, by the errors each reports (reason codes from
//! BoringSSL's include/openssl/ssl.h) and their order in ssl_lib.cc. Line
//! numbers move between builds; their order does not. Anything not unique
//! is not reported.

use super::elf::Image;
use super::funcs::{walk, CallTargets};
use super::sites::one;
use iced_x86::{FlowControl, InstructionInfoFactory, OpAccess, Register};
use std::collections::{BTreeMap, BTreeSet};

/// ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED (the QUIC checks).
const SHOULD_NOT: u32 = 66;
const UNINITIALIZED: u32 = 226;
const HANDSHAKE_FAILURE: u32 = 215;
const BAD_LENGTH: u32 = 111;
const NULL_SSL_CTX: u32 = 185;

/// Each function's reports: (reason, line), sorted.
pub type Reports = BTreeMap<u64, BTreeSet<(u32, u32)>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub write: u64,
    pub read: u64,
    /// SSL_new, whose return gives each new SSL* (BoringSSL's SSL_free reports nothing).
    pub new: Option<u64>,
}

fn reasons(r: &BTreeSet<(u32, u32)>) -> BTreeSet<u32> {
    r.iter().map(|p| p.0).collect()
}

/// SSL_write reports, in this order: the QUIC check, an unset handshake, a
/// failed implicit handshake, a negative length. SSL_read is SSL_peek (its
/// QUIC check, placed between ssl_read_impl and SSL_write) and calls or
/// inlines ssl_read_impl (an unset handshake, then a failed one).
pub fn classify(img: &Image, funcs: &Reports, targets: &CallTargets) -> Result<Found, String> {
    let write_set = BTreeSet::from([SHOULD_NOT, UNINITIALIZED, HANDSHAKE_FAILURE, BAD_LENGTH]);
    let writes: Vec<_> = funcs
        .iter()
        .filter(|(_, r)| reasons(r).is_superset(&write_set))
        .collect();
    let [(&write, write_reports)] = writes[..] else {
        return Err(format!(
            "{} candidates for SSL_write, not one",
            writes.len()
        ));
    };
    let write_first = write_reports.iter().map(|p| p.1).min().unwrap_or(0);
    let in_order = [SHOULD_NOT, UNINITIALIZED, HANDSHAKE_FAILURE, BAD_LENGTH]
        .iter()
        .map(|r| write_reports.iter().find(|p| p.0 == *r).map_or(0, |p| p.1))
        .collect::<Vec<_>>()
        .is_sorted();
    if !in_order {
        return Err("SSL_write's reports are not in the source's order".into());
    }
    // ssl_read_impl's two reports, the same lines in every copy of it.
    let mut impl_lines = BTreeSet::new();
    for r in funcs.values() {
        for &(_, u) in r
            .iter()
            .filter(|p| p.0 == UNINITIALIZED && p.1 < write_first)
        {
            for &(_, h) in r.iter().filter(|p| p.0 == HANDSHAKE_FAILURE) {
                if u < h && h < write_first {
                    impl_lines.insert((u, h));
                }
            }
        }
    }
    let [(u, h)] = impl_lines.iter().copied().collect::<Vec<_>>()[..] else {
        return Err(format!(
            "{} candidates for ssl_read_impl, not one",
            impl_lines.len()
        ));
    };
    let holds_impl: BTreeSet<u64> = funcs
        .iter()
        .filter(|(_, r)| r.contains(&(UNINITIALIZED, u)))
        .map(|(f, _)| *f)
        .collect();
    let read_set = BTreeSet::from([SHOULD_NOT, UNINITIALIZED, HANDSHAKE_FAILURE]);
    let reads: Vec<u64> = funcs
        .iter()
        .filter(|(_, r)| {
            let peek = r
                .iter()
                .filter(|p| p.0 == SHOULD_NOT && h < p.1 && p.1 < write_first);
            peek.count() == 1 && reasons(r).is_subset(&read_set)
        })
        .filter(|(f, _)| {
            holds_impl.contains(f)
                || walk(img, **f, targets)
                    .calls
                    .iter()
                    .any(|c| holds_impl.contains(c))
        })
        .map(|(f, _)| *f)
        .collect();
    let [read] = reads[..] else {
        return Err(format!("{} candidates for SSL_read, not one", reads.len()));
    };
    for (name, f) in [("SSL_write", write), ("SSL_read", read)] {
        if !takes_arguments(img, f) {
            return Err(format!(
                "{name} at {f:#x} does not read its three arguments on entry"
            ));
        }
    }
    let news: Vec<u64> = funcs
        .iter()
        .filter(|(_, r)| reasons(r) == BTreeSet::from([NULL_SSL_CTX]))
        .map(|(f, _)| *f)
        .collect();
    Ok(Found {
        write,
        read,
        new: (news.len() == 1).then(|| news[0]),
    })
}

/// Instructions of one path from a function's entry that are looked at.
const ENTRY: usize = 24;

/// Some path from the function's entry (both ways at each conditional
/// branch: the main path may be either) reads (ssl, buf, num) in rdi, rsi
/// and edx before anything writes them and before any call: it is a
/// function of three arguments.
fn takes_arguments(img: &Image, start: u64) -> bool {
    let mut factory = InstructionInfoFactory::new();
    let mut todo = vec![(start, vec![Register::RDI, Register::RSI, Register::RDX], 0)];
    while let Some((at, mut pending, depth)) = todo.pop() {
        if depth >= ENTRY {
            continue;
        }
        let Some(i) = one(img, at) else {
            continue;
        };
        let mut clobbered = false;
        for used in factory.info(&i).used_registers() {
            let reg = used.register().full_register();
            let Some(k) = pending.iter().position(|r| *r == reg) else {
                continue;
            };
            match used.access() {
                OpAccess::Read
                | OpAccess::CondRead
                | OpAccess::ReadWrite
                | OpAccess::ReadCondWrite => {
                    pending.remove(k);
                }
                OpAccess::Write | OpAccess::CondWrite => clobbered = true,
                _ => {}
            }
        }
        if pending.is_empty() {
            return true;
        }
        if clobbered {
            continue;
        }
        match i.flow_control() {
            FlowControl::Next => todo.push((i.next_ip(), pending, depth + 1)),
            FlowControl::ConditionalBranch => {
                todo.push((i.near_branch_target(), pending.clone(), depth + 1));
                todo.push((i.next_ip(), pending, depth + 1));
            }
            FlowControl::UnconditionalBranch if i.is_jmp_near() => {
                todo.push((i.near_branch_target(), pending, depth + 1))
            }
            _ => {}
        }
    }
    false
}
