//! From error reports to functions: where each report's function starts,
//! without symbols or unwind tables, and what a function's code reaches.
//!
//! A start is accepted only when all hold: something calls it directly; the
//! bytes before it end a block (int3 or NOP padding, ret, jmp, or a call that
//! never returns); and a walk of its branches from there reaches the report
//! on an instruction boundary.

use super::elf::Image;
use super::sites::{one, up_to};
use iced_x86::{FlowControl, Mnemonic};
use std::collections::HashSet;

/// How far a function may stretch from its start to a report.
pub const REACH: u64 = 0x10000;
/// Instructions a walk decodes at most.
const WALK: usize = 20_000;
/// Prologues that start a function for sure: push rbp; mov rbp,rsp / endbr64.
const STRONG: [[u8; 4]; 2] = [[0x55, 0x48, 0x89, 0xe5], [0xf3, 0x0f, 0x1e, 0xfa]];

/// The targets of direct calls (`E8 rel32`) that land in code within
/// [`REACH`] of one of `near`: the candidates for function starts.
pub struct CallTargets(Vec<u64>);

impl CallTargets {
    pub fn near(img: &Image, near: &[u64]) -> CallTargets {
        let mut windows: Vec<(u64, u64)> = near
            .iter()
            .map(|&s| (s.saturating_sub(REACH), s + REACH))
            .collect();
        windows.sort_unstable();
        let inside = |t: u64| {
            let k = windows.partition_point(|w| w.0 <= t);
            windows[..k].iter().rev().take(64).any(|w| t <= w.1)
        };
        let mut out = Vec::new();
        for (va, seg) in img.code() {
            for at in memchr::memchr_iter(0xe8, seg) {
                let Some(rel) = seg.get(at + 1..at + 5) else {
                    continue;
                };
                let rel = i32::from_le_bytes(rel.try_into().unwrap_or_default()) as i64;
                let t = (va + at as u64 + 5).wrapping_add_signed(rel);
                if inside(t) && img.is_code(t) {
                    out.push(t);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        CallTargets(out)
    }

    pub fn contains(&self, va: u64) -> bool {
        self.0.binary_search(&va).is_ok()
    }

    /// Candidates at or before `va`, nearest first, within [`REACH`].
    fn before(&self, va: u64) -> impl Iterator<Item = u64> + '_ {
        let end = self.0.partition_point(|&t| t <= va);
        self.0[..end]
            .iter()
            .rev()
            .copied()
            .take_while(move |&t| va - t < REACH)
    }
}

fn strong_prologue(img: &Image, va: u64) -> bool {
    va.is_multiple_of(16)
        && img
            .bytes_at(va, 4)
            .is_some_and(|b| STRONG.iter().any(|p| b == p))
}

/// Do the bytes before `va` end a block, so that a function may start there?
fn ends_block_before(img: &Image, va: u64) -> bool {
    match img.bytes_at(va.wrapping_sub(1), 1) {
        Some([0xcc | 0xc3]) => return true,
        None => return false,
        _ => {}
    }
    if let Some(call) = va.checked_sub(5).and_then(|a| one(img, a)) {
        if call.next_ip() == va && call.is_call_near() {
            let t = call.near_branch_target();
            if img.is_noreturn(t) || strong_prologue(img, va) {
                return true;
            }
        }
    }
    // A jmp, ret or ud2 followed by NOPs, or NOPs alone.
    (1..16u64).any(|k| {
        let Some(ins) = va.checked_sub(k).and_then(|a| up_to(img, a, va)) else {
            return false;
        };
        let filler = |m: Mnemonic| matches!(m, Mnemonic::Nop | Mnemonic::Int3);
        let body: Vec<_> = ins.iter().filter(|i| !filler(i.mnemonic())).collect();
        let trailing_filler = ins.iter().skip(body.len()).all(|i| filler(i.mnemonic()));
        trailing_filler
            && match body.as_slice() {
                [] => true,
                [last] => matches!(
                    last.mnemonic(),
                    Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Ud2
                ),
                _ => false,
            }
    })
}

/// What a walk of a function's branches from `start` found.
pub struct Walk {
    pub visited: HashSet<u64>,
    pub calls: HashSet<u64>,
}

/// Follows branches from `start`: stops at returns, traps, calls that never
/// return, jumps to other functions (tail calls) and the next function's
/// prologue.
pub fn walk(img: &Image, start: u64, targets: &CallTargets) -> Walk {
    let mut w = Walk {
        visited: HashSet::new(),
        calls: HashSet::new(),
    };
    let mut todo = vec![start];
    while let Some(mut a) = todo.pop() {
        while a >= start && a - start < REACH && !w.visited.contains(&a) {
            if w.visited.len() >= WALK || (a != start && strong_prologue(img, a)) {
                break;
            }
            let Some(i) = one(img, a) else {
                break;
            };
            w.visited.insert(a);
            match i.flow_control() {
                FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => break,
                FlowControl::Call if i.is_call_near() => {
                    w.calls.insert(i.near_branch_target());
                    if img.is_noreturn(i.near_branch_target()) {
                        break;
                    }
                }
                FlowControl::UnconditionalBranch => {
                    let t = i.near_branch_target();
                    if i.is_jmp_near() && (t == start || !targets.contains(t)) {
                        todo.push(t);
                    }
                    break;
                }
                FlowControl::ConditionalBranch if i.is_jcc_short_or_near() => {
                    todo.push(i.near_branch_target())
                }
                FlowControl::IndirectBranch => break,
                _ => {}
            }
            a = i.next_ip();
        }
    }
    w
}

/// The start of the function holding the instruction at `site`, if one
/// passes every check.
pub fn start_of(img: &Image, site: u64, targets: &CallTargets) -> Option<u64> {
    targets
        .before(site)
        .find(|&a| ends_block_before(img, a) && walk(img, a, targets).visited.contains(&site))
}
