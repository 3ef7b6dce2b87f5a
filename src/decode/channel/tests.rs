//! The channel merge on hand-made frames: pairing, gaps, late copies.

use super::*;
use crate::decode::reassembly::Loss;

fn line(start: u64, text: &str, ts: u64) -> Frame {
    Frame::plain(
        start,
        start + text.len() as u64,
        ts,
        ts,
        vec![ts],
        FrameBody::Text {
            text: text.as_bytes().to_vec(),
            cut_start: None,
            cut_end: None,
        },
    )
}

fn lost(start: u64, end: u64, ts: u64) -> Frame {
    Frame::plain(
        start,
        end,
        ts,
        ts,
        vec![],
        FrameBody::Lost { why: Loss::Missing },
    )
}

#[derive(Debug, PartialEq)]
struct Out {
    text: String,
    w: bool,
    r: bool,
}

fn out_of(m: Merged) -> Out {
    let text = match &m.body {
        FrameBody::Text { text, .. } => String::from_utf8_lossy(text).into_owned(),
        FrameBody::Lost { .. } => "<lost>".into(),
        _ => "<other>".into(),
    };
    Out {
        text,
        w: m.writer.is_some(),
        r: m.reader.is_some(),
    }
}

fn o(text: &str, w: bool, r: bool) -> Out {
    Out {
        text: text.into(),
        w,
        r,
    }
}

const HOLD: Hold = Hold {
    normal: 500,
    first_contact: 500,
};

#[test]
fn pairs_copies_and_fills_a_gap_from_the_other_side() {
    let mut c = Channel::new(false);
    let mut v = Vec::new();
    let mut push = |c: &mut Channel, side, f: Frame, now| {
        c.push(
            side,
            if side == Side::Writer { 1 } else { 2 },
            f,
            now,
            HOLD,
            &mut |m| v.push(out_of(m)),
        )
    };
    // Reader offsets run 100 ahead of the writer's (it was watched earlier).
    push(&mut c, Side::Writer, line(0, "{a}", 1), 1);
    push(&mut c, Side::Reader, line(100, "{a}", 2), 2);
    // The reader lost the second message; the writer has it.
    push(&mut c, Side::Writer, line(4, "{bb}", 3), 3);
    push(&mut c, Side::Reader, lost(104, 109, 4), 4);
    push(&mut c, Side::Writer, line(9, "{c}", 5), 5);
    push(&mut c, Side::Reader, line(109, "{c}", 6), 6);
    assert_eq!(
        v,
        vec![
            o("{a}", true, true),
            o("{bb}", true, false),
            o("{c}", true, true)
        ]
    );
    assert_eq!(c.held_bytes(), 0);
}

#[test]
fn a_loss_both_copies_had_is_shown_once() {
    let mut c = Channel::new(false);
    let mut v = Vec::new();
    let mut push = |c: &mut Channel, side, f: Frame| {
        c.push(
            side,
            if side == Side::Writer { 1 } else { 2 },
            f,
            0,
            HOLD,
            &mut |m| v.push(out_of(m)),
        )
    };
    push(&mut c, Side::Writer, line(0, "{a}", 1));
    push(&mut c, Side::Reader, line(0, "{a}", 2));
    push(&mut c, Side::Writer, lost(4, 9, 3));
    push(&mut c, Side::Reader, lost(4, 9, 4));
    push(&mut c, Side::Writer, line(9, "{c}", 5));
    push(&mut c, Side::Reader, line(9, "{c}", 6));
    assert_eq!(
        v,
        vec![
            o("{a}", true, true),
            o("<lost>", true, true),
            o("{c}", true, true)
        ]
    );
}

#[test]
fn late_counterparts_are_absorbed() {
    let mut c = Channel::new(false);
    let mut v = Vec::new();
    let mut sink = |m| v.push(out_of(m));
    c.push(Side::Writer, 1, line(0, "{a}", 1), 1, HOLD, &mut sink);
    c.push(Side::Reader, 2, line(0, "{a}", 2), 2, HOLD, &mut sink);
    // The reader is busy: the writer's copy times out first.
    c.push(Side::Writer, 1, line(4, "{b}", 10), 10, HOLD, &mut sink);
    assert_eq!(c.deadline(), Some(10 + HOLD.normal));
    c.expire(10 + HOLD.normal, usize::MAX, &mut sink);
    c.push(Side::Reader, 2, line(4, "{b}", 900), 900, HOLD, &mut sink);
    c.push(Side::Writer, 1, line(8, "{c}", 901), 901, HOLD, &mut sink);
    c.push(Side::Reader, 2, line(8, "{c}", 902), 902, HOLD, &mut sink);
    c.finish(&mut sink);
    assert_eq!(
        v,
        vec![
            o("{a}", true, true),
            o("{b}", true, false),
            o("{c}", true, true)
        ]
    );
}

#[test]
fn content_pairing_skips_a_copy_the_other_side_never_had() {
    let mut c = Channel::new(false);
    let mut v = Vec::new();
    let mut sink = |m| v.push(out_of(m));
    // Two writers on one pipe: offsets cannot be aligned, content can.
    c.push(Side::Writer, 1, line(0, "{a}", 1), 1, HOLD, &mut sink);
    c.push(Side::Writer, 3, line(0, "{x}", 2), 2, HOLD, &mut sink);
    c.push(Side::Writer, 1, line(4, "{b}", 3), 3, HOLD, &mut sink);
    c.push(Side::Reader, 2, line(0, "{a}", 4), 4, HOLD, &mut sink);
    c.push(Side::Reader, 2, line(4, "{b}", 5), 5, HOLD, &mut sink);
    assert_eq!(
        v,
        vec![
            o("{a}", true, true),
            o("{x}", true, false),
            o("{b}", true, true)
        ]
    );
}

/// What the channel says of interleaving: the reader's lines with the
/// (stream, start, end) of each writer piece, and the writers' lines it
/// marks as sent in pieces.
fn interleaving(m: &Merged) -> (String, Vec<(usize, u64, u64)>, bool) {
    let pieces = match &m.interleaved {
        Interleaved::Received(p) => p.iter().map(|s| (s.stream, s.start, s.end)).collect(),
        _ => Vec::new(),
    };
    let sent = matches!(m.interleaved, Interleaved::Sent);
    (out_of_text(m), pieces, sent)
}

fn out_of_text(m: &Merged) -> String {
    match &m.body {
        FrameBody::Text { text, .. } => String::from_utf8_lossy(text).into_owned(),
        _ => "<other>".into(),
    }
}

/// Pushes each (side, stream, start, text, time) in turn, at its time.
fn feed(c: &mut Channel, steps: &[(Side, usize, u64, &str, u64)], sink: &mut impl FnMut(Merged)) {
    for &(side, stream, start, text, ts) in steps {
        c.push(side, stream, line(start, text, ts), ts, HOLD, sink);
    }
}

const W: Side = Side::Writer;
const R: Side = Side::Reader;

#[test]
fn lines_two_writers_wrote_in_pieces_are_taken_apart() {
    let mut c = Channel::new(false);
    let v = std::cell::RefCell::new(Vec::new());
    let mut sink = |m: Merged| v.borrow_mut().push(interleaving(&m));
    // Writer 1 wrote `{"a":1,"x":2}` as `{"a":1,` then `"x":2}\n`; writer 3
    // wrote `{"b":3}\n` between them. The reader (2) read
    // `{"a":1,{"b":3}\n"x":2}\n`: two lines, neither of them a message.
    let b = (W, 3, 0, r#"{"b":3}"#, 2);
    feed(&mut c, &[b, (R, 2, 0, r#"{"a":1,{"b":3}"#, 3)], &mut sink);
    assert!(v.borrow().is_empty(), "writer 1's line is not whole yet");
    let rest = [
        (W, 1, 0, r#"{"a":1,"x":2}"#, 4),
        (R, 2, 15, r#""x":2}"#, 5),
        (W, 1, 14, r#"{"c":4}"#, 6),
        (R, 2, 22, r#"{"c":4}"#, 7),
    ];
    feed(&mut c, &rest, &mut sink);
    c.finish(&mut sink);
    let s = |t: &str| t.to_string();
    assert_eq!(
        v.into_inner(),
        vec![
            (s(r#"{"a":1,{"b":3}"#), vec![(1, 0, 7), (3, 0, 7)], false),
            (s(r#"{"b":3}"#), vec![], true),
            (s(r#""x":2}"#), vec![(1, 7, 13)], false),
            (s(r#"{"a":1,"x":2}"#), vec![], true),
            // A line written whole and read whole pairs as ever.
            (s(r#"{"c":4}"#), vec![], false),
        ]
    );
}

#[test]
fn a_writers_line_read_only_in_part_is_shown_when_its_time_is_up() {
    let mut c = Channel::new(false);
    let v = std::cell::RefCell::new(Vec::new());
    let mut sink = |m: Merged| v.borrow_mut().push(interleaving(&m));
    let steps = [
        (W, 3, 0, r#"{"b":3}"#, 2),
        (W, 1, 0, r#"{"a":1,"x":2}"#, 3),
        (R, 2, 0, r#"{"a":1,{"b":3}"#, 4),
    ];
    feed(&mut c, &steps, &mut sink);
    assert_eq!(v.borrow().len(), 2, "{:?}", v.borrow());
    // The rest of writer 1's line never comes: it is shown, once.
    c.expire(3 + HOLD.normal, usize::MAX, &mut sink);
    let v = v.into_inner();
    assert_eq!(v.len(), 3, "{v:?}");
    assert_eq!(v[2], (r#"{"a":1,"x":2}"#.to_string(), vec![], true));
    assert_eq!(c.held_bytes(), 0);
    assert_eq!(c.deadline(), None);
}

#[test]
fn a_line_no_search_explained_is_searched_again_once_a_writers_line_left() {
    let mut c = Channel::new(false);
    let v = std::cell::RefCell::new(Vec::new());
    let mut sink = |m: Merged| v.borrow_mut().push(interleaving(&m));
    // Writer 1's first line never reaches the reader; its second does,
    // mixed with writer 3's.
    let steps = [
        (W, 1, 0, r#"{"a":0}"#, 1),
        (W, 1, 8, r#"{"a":1,"x":2}"#, 2),
        (W, 3, 0, r#"{"b":3}"#, 3),
        (R, 2, 0, r#"{"a":1,{"b":3}"#, 4),
    ];
    feed(&mut c, &steps, &mut sink);
    assert!(v.borrow().is_empty());
    // Writer 1's first line times out; its second is now its oldest.
    c.expire(1 + HOLD.normal, usize::MAX, &mut sink);
    feed(&mut c, &[(R, 2, 15, r#""x":2}"#, 5)], &mut sink);
    c.finish(&mut sink);
    let s = |t: &str| t.to_string();
    assert_eq!(
        v.into_inner(),
        vec![
            (s(r#"{"a":0}"#), vec![], false),
            (s(r#"{"a":1,{"b":3}"#), vec![(1, 8, 15), (3, 0, 7)], false),
            (s(r#"{"b":3}"#), vec![], true),
            (s(r#""x":2}"#), vec![(1, 15, 21)], false),
            (s(r#"{"a":1,"x":2}"#), vec![], true),
        ]
    );
}

#[test]
fn a_writer_that_gave_a_line_only_its_newline_is_named_with_an_empty_piece() {
    let mut c = Channel::new(false);
    let v = std::cell::RefCell::new(Vec::new());
    let mut sink = |m: Merged| v.borrow_mut().push(interleaving(&m));
    // Writer 1 wrote `{"a":1}`, then its newline after writer 3 had
    // written a whole line and the start of the next: the reader's second
    // line is `{"c` and writer 1's newline.
    let steps = [
        (W, 1, 0, r#"{"a":1}"#, 1),
        (W, 3, 0, r#"{"b":2}"#, 2),
        (R, 2, 0, r#"{"a":1}{"b":2}"#, 3),
        (R, 2, 15, r#"{"c"#, 4),
        (W, 3, 8, r#"{"c":3}"#, 5),
        (R, 2, 19, r#"":3}"#, 6),
    ];
    feed(&mut c, &steps, &mut sink);
    c.finish(&mut sink);
    let s = |t: &str| t.to_string();
    assert_eq!(
        v.into_inner(),
        vec![
            (s(r#"{"a":1}{"b":2}"#), vec![(1, 0, 7), (3, 0, 7)], false),
            (s(r#"{"b":2}"#), vec![], true),
            (s(r#"{"c"#), vec![(3, 8, 11), (1, 7, 7)], false),
            (s(r#"{"a":1}"#), vec![], true),
            (s(r#"":3}"#), vec![(3, 11, 15)], false),
            (s(r#"{"c":3}"#), vec![], true),
        ]
    );
}
