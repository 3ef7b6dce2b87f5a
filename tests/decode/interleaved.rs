//! Two writers on one pipe whose lines the reader received mixed: the
//! reader's lines are shown as read, flagged `interleaved` with the pieces
//! of each writer's line they hold; the writers' lines as written, marked.

use crate::support::*;

#[test]
fn lines_of_two_writers_read_mixed_are_shown_as_read_with_their_writers() {
    let dir = tempfile::tempdir().unwrap();
    let (path, [a0, b0], a1) = two_writers(&dir.path().join("c.db"));
    let (items, _) = decode_file(&path);
    let text = |s: &str| s.trim_end_matches('\n').to_string();
    let (la, lb) = (a0.len() as u64 - 1, b0.len() as u64 - 1);

    // What the reader read: A's first 20 bytes and B's whole line, then the
    // rest of A's line on its own.
    let flagged: Vec<&Seen> = items.iter().filter(|i| i.flag.is_some()).collect();
    assert_eq!(flagged.len(), 2, "{items:#?}");
    let mixed = flagged.iter().find(|i| i.writers.len() == 2).unwrap();
    assert_eq!(mixed.flag.as_ref().unwrap().0, "interleaved");
    assert_eq!(
        mixed.text,
        format!(
            "{}{}{}{}",
            &a0[..10],
            &b0[..12],
            &a0[10..20],
            text(&b0[12..])
        )
    );
    assert_eq!(mixed.writers, vec![(301, 0, 20), (302, 0, lb)]);
    assert_eq!((mixed.from, mixed.to), (None, Some(SERVER.pid)));
    assert!(mixed.writer_seqs.is_empty() && !mixed.reader_seqs.is_empty());
    let detail = &mixed.flag.as_ref().unwrap().1;
    assert!(detail.contains("writer-a[301]") && detail.contains("writer-b[302]"));
    let rest = flagged.iter().find(|i| i.writers.len() == 1).unwrap();
    assert_eq!(rest.flag.as_ref().unwrap().0, "interleaved");
    assert_eq!(rest.text, text(&a0[20..]));
    assert_eq!(rest.writers, vec![(301, 20, la)]);

    // What the writers wrote: each line once, whole, marked.
    let requests: Vec<&Seen> = items.iter().filter(|i| i.kind == "request").collect();
    assert_eq!(requests.len(), 3, "{items:#?}");
    for (id, pid, line) in [("1", 301, &a0), ("2", 302, &b0)] {
        let r = requests
            .iter()
            .find(|r| r.id.as_deref() == Some(id))
            .unwrap();
        assert_eq!((r.from, r.text.as_str()), (Some(pid), text(line).as_str()));
        assert!(r.interleaved, "{r:?}");
        assert!(r.reader_seqs.is_empty(), "{r:?}");
    }
    // A line written whole, later, is read whole: a pair as ever.
    let whole = requests
        .iter()
        .find(|r| r.id.as_deref() == Some("3"))
        .unwrap();
    assert_eq!(whole.text, a1);
    assert!(!whole.interleaved && !whole.reader_seqs.is_empty());
    assert!(items
        .iter()
        .all(|i| i.writers.is_empty() || i.flag.is_some()));
}

/// A hostile mix: sixteen writers of 4,000 `x` each and, never captured,
/// a `y` the reader read among them. No interleaving of the writers' lines
/// explains the reader's 64,001-byte line, and many nearly do: the search
/// gives up within its budget, and the line is flagged as what it is.
/// Without the `y` the same line is explained, naming all sixteen.
#[test]
fn a_line_sixteen_writers_nearly_explain_is_given_up_and_flagged() {
    for hostile in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Synth::new(&dir.path().join("c.db"));
        let pipe = s.pipe();
        let writers: Vec<Proc> = (0..16)
            .map(|i| Proc {
                pid: 400 + i,
                comm: "w",
            })
            .collect();
        let x = "x".repeat(4000);
        for &w in &writers {
            s.write(w, pipe, x.as_bytes());
        }
        if hostile {
            s.write_lost(
                Proc {
                    pid: 499,
                    comm: "unseen",
                },
                pipe,
                b"y",
            );
        }
        for &w in &writers {
            s.write(w, pipe, b"\n");
        }
        s.drain(SERVER, pipe, 65536);
        let (items, _) = decode_file(&s.finish());
        let named: Vec<usize> = items
            .iter()
            .map(|i| i.writers.len())
            .filter(|&n| n > 0)
            .collect();
        let read = items.iter().filter(|i| i.reader_off.is_some()).count();
        if hostile {
            assert!(
                named.is_empty() && items.iter().all(|i| !i.interleaved),
                "{named:?}"
            );
            assert_eq!((items.len(), read), (17, 1), "hostile");
        } else {
            assert_eq!(named, [16], "{items:?}");
            assert_eq!(items.iter().filter(|i| i.interleaved).count(), 16);
        }
    }
}
